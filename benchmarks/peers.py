"""Optional peer column: bespokelabs-curator on scenarios 1, 4 and 5.

Curator pins its own dependencies, so it lives in its own virtualenv and is
only run when ``python -m benchmarks.run --curator PYTHON`` names that
virtualenv's interpreter (``python -m venv /tmp/cur && /tmp/cur/bin/pip
install bespokelabs-curator``).
"""

from __future__ import annotations

from benchmarks.clients import run_curator
from benchmarks.common import Ctx, Row
from benchmarks.limits import _limit_row
from benchmarks.procs import Sim

# "No limit" for curator, which always paces by rpm and tpm (defaults when unset).
UNLIMITED_RPM, UNLIMITED_TPM = "1000000", "1000000000"


def curator(ctx: Ctx) -> list[Row]:
    python = ctx.notes.get("curator_python")
    if not python:
        return [Row("peers", "curator", "not run: pass --curator PYTHON")]
    rows: list[Row] = []
    n = ctx.n(2000, 200)
    inp = ctx.workload("req", n)
    with Sim("--rpm", "3000", "--latency-ms", "400") as sim:
        # Told the rpm, like mlift; its token limit set out of the way (curator
        # otherwise assumes a default tpm that would bind first).
        run = run_curator(python, sim.api, inp, ctx.tmp / "rpm-curator.out", "--rpm", "3000",
                          "--tpm", UNLIMITED_TPM)
        rows.append(_limit_row("1 rpm-bound", run, sim.stats(), n, n / 50, 1.03,
                               rpm=3000, tpm=None))
    hang = ctx.n(90, 20)
    with Sim("--error-rate", "0.10", "--timeout-rate", "0.01", "--hang-s", str(hang),
             "--drop-rate", "0.01", "--malformed-rate", "0.01", "--latency-ms", "100",
             "--seed", "1") as sim:
        run = run_curator(python, sim.api, inp, ctx.tmp / "faults-curator.out",
                          "--rpm", UNLIMITED_RPM, "--tpm", UNLIMITED_TPM)
        c = run.check
        rows.append(Row("4 faults", run.client,
                        f"{c.lines}/{n} result lines, in order: {c.in_order}, error records "
                        f"{c.errors}; wall {run.elapsed_s:.1f}s",
                        f"one line per input in order, ~0 errors, wall ≪ hang {hang} s",
                        c.complete(n) and c.errors <= n // 1000 and run.elapsed_s < hang / 2))
    n5 = ctx.n(5000, 500)
    with Sim("--latency-ms", "20") as sim:
        run = run_curator(python, sim.api, ctx.workload("req", n5), ctx.tmp / "ovh-cur.out",
                          "--rpm", UNLIMITED_RPM, "--tpm", UNLIMITED_TPM)
        rows.append(Row("5 overhead", run.client,
                        f"{run.check.lines / run.elapsed_s:.0f} req/s on its own clock, "
                        f"{1000 * run.measured.cpu_s / n5:.2f} ms CPU/request (start-up "
                        f"included), peak RSS {run.measured.rss_mib:.0f} MiB, "
                        f"errors {run.check.errors}"))
    return rows
