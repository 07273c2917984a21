"""``mlift batches RUN`` (list and cancel a folder's batch jobs), and the ``--batch`` flags
that ``run``, ``baseline translate`` and ``requests`` share (:func:`add_batch_args`,
:func:`batch_from_args`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from mlift.batch import BatchClient, BatchJournal, ChunkRecord, PollPolicy, StageBatches
from mlift.batch import batch_client as make_client
from mlift.batch.journal import JOURNAL_NAME
from mlift.batch.views import Shown, duration, expected_wait
from mlift.config import load_config, resolve_endpoint
from mlift.engine.core import Engine
from mlift.errors import ConfigError, ProviderError
from mlift.pipeline.batchrun import ALL, BatchOptions, BatchRun, parse_stages

DESCRIPTION = """\
mlift batches RUN: the batch jobs a --batch run sent, and cancelling them.

The list comes from the folder's journal (batches.jsonl), where every batch
is written before it is sent; --refresh asks the providers for the state of
those still running. --cancel cancels every running batch of the folder,
--cancel ID ... only those: their finished lines are still collected by the
next run, the others become rejects that the run after it tries again. Stop
the run (Ctrl-C) before cancelling its batches.
"""

EPILOG = """\
examples:
  mlift batches runs/demo                 # what was sent, and how far each batch is
  mlift batches runs/demo --refresh       # ask the providers for the latest state
  mlift batches runs/demo --cancel        # cancel every batch still running
  mlift batches out.jsonl --cancel batch_abc123    # `mlift requests --out out.jsonl`
"""


# ------------------------------------------------------------------ --batch

def add_batch_args(parser: argparse.ArgumentParser, stages: Sequence[str], *,
                   poll: bool = True) -> None:
    """``--batch [STAGE,…]`` and (``poll``) ``--batch-poll`` for a command whose stages are
    ``stages``."""
    g = parser.add_argument_group("batch APIs (half price; results within 24 h)")
    g.add_argument("--batch", nargs="?", const=ALL, metavar="STAGE,…",
                   help="send the model calls as batch jobs (OpenAI Batch, Anthropic "
                        "Message Batches) at half price: all stages, or those named "
                        f"({', '.join(stages)}); the others go online. Re-run the same "
                        "command after an interruption: batches already sent are picked "
                        "up, never sent twice (see `mlift batches`)")
    if not poll:
        return
    g.add_argument("--batch-poll", type=float, default=60.0, metavar="S",
                   help="longest wait between two looks at a running batch (default 60; "
                        "the first comes after 5 s, then they back off)")


def batch_stages(args: argparse.Namespace, stages: Sequence[str]) -> frozenset[str] | None:
    """The stages ``--batch`` names (every one of ``stages`` if none), None without it."""
    if args.batch is None:
        return None
    return parse_stages(args.batch, stages) or frozenset(stages)


def batch_from_args(args: argparse.Namespace, engine: Engine, stages: Sequence[str],
                    targets: Sequence[tuple[str, str]]) -> BatchRun | None:
    """The ``BatchRun`` the flags ask for (None without ``--batch``), checked against the
    (stage, NAME:MODEL) pairs the command will call."""
    if args.batch is None:
        return None
    if args.batch_poll <= 0:
        raise ConfigError(f"--batch-poll must be positive, got {args.batch_poll}")
    poll = PollPolicy(first_s=min(5.0, args.batch_poll), max_s=args.batch_poll)
    mode = BatchRun(engine, BatchOptions(stages=parse_stages(args.batch, stages), poll=poll))
    mode.check(targets)
    return mode


def warn_open_batches(folder: Path, command: str) -> None:
    """Say so when an online run starts on a folder whose batches are still running: it
    would pay again for what they will answer."""
    if not (folder / JOURNAL_NAME).is_file():
        return
    running = [c for c in BatchJournal(folder).load_sync() if c.open or c.in_doubt]
    if running:
        print(f"mlift {command}: {len(running)} batch(es) sent by an earlier --batch run of "
              f"this folder may still be running (`mlift batches {folder}`); what they "
              "answer is paid for: add --batch to use it, or cancel them "
              f"(`mlift batches {folder} --cancel`)", file=sys.stderr)


# ------------------------------------------------------------------ mlift batches

def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("batches", help="list (or cancel) the batch jobs of a run folder",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, metavar="RUN",
                   help="run folder (or the OUT.jsonl of `mlift requests`)")
    p.add_argument("--refresh", action="store_true",
                   help="ask the providers for the state of the batches still running")
    p.add_argument("--cancel", nargs="*", metavar="ID",
                   help="cancel these batches (by batch id), or every running one")
    p.add_argument("--config", metavar="FILE",
                   help="TOML config with the [providers.NAME] profiles the run used")
    p.add_argument("--base-url", metavar="URL", help="the --base-url the run was given")
    p.set_defaults(handler=handle)


def journal_dir(run: Path) -> Path:
    """The folder holding the journal: ``RUN`` itself, or ``OUT.run/`` for ``mlift requests``."""
    if (run / JOURNAL_NAME).is_file():
        return run
    beside = run.with_name(run.name + ".run")
    if (beside / JOURNAL_NAME).is_file():
        return beside
    if run.is_dir() or beside.is_dir():
        raise ConfigError(f"{run}: this run sent no batches (no {JOURNAL_NAME}); batches are "
                          "sent by `mlift run --batch` and the other commands' --batch")
    raise ConfigError(f"{run}: no such run folder")


def handle(args: argparse.Namespace) -> int:
    journal = BatchJournal(journal_dir(args.run))
    chunks = [c for c in journal.load_sync() if not c.abandoned]
    if args.cancel is not None or args.refresh:
        chunks = asyncio.run(_remote(args, journal, chunks))
    _print(chunks)
    return 0


def _shown(chunk: ChunkRecord, now: float) -> Shown:
    age = (chunk.ended_at or now) - chunk.submitted_at
    return Shown(chunk.stage, chunk.target, chunk.kind, chunk.batch_id, chunk.state,
                 chunk.total or len(chunk.custom_ids), chunk.done, chunk.failed, age,
                 chunk.ended or chunk.rejected is not None)


def _print(chunks: list[ChunkRecord]) -> None:
    if not chunks:
        print("no batches")
        return
    now = time.time()
    rows = [("STAGE", "PROVIDER", "BATCH", "STATE", "DONE/FAILED/TOTAL", "AGE", "EXPECTED")]
    for chunk in chunks:
        b = _shown(chunk, now)
        rows.append((b.stage, b.target, b.batch_id or "(not created)", b.state,
                     f"{b.done}/{b.failed}/{b.total}", duration(b.age_s), expected_wait(b)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


async def _remote(args: argparse.Namespace, journal: BatchJournal,
                  chunks: list[ChunkRecord]) -> list[ChunkRecord]:
    """Refresh or cancel through each target's batch API; returns the journal as it is now."""
    config = await asyncio.to_thread(load_config, args.config)
    wanted = set(args.cancel) if args.cancel else None
    if wanted is not None:
        unknown = wanted - {c.batch_id for c in chunks}
        if unknown:
            raise ConfigError(f"{', '.join(sorted(unknown))}: no such batch in {journal.path}")
    groups = sorted({(c.stage, c.target) for c in chunks
                     if c.open or (args.cancel is not None and c.in_doubt)})
    seen: dict[str, ChunkRecord] = {}
    clients: dict[str, BatchClient | None] = {}
    try:
        for stage, target in groups:
            if target not in clients:
                endpoint = resolve_endpoint(target, config, base_url=args.base_url)
                if endpoint.kind == "sim" and not endpoint.base_url:
                    print(f"mlift batches: {target}: the in-process simulator ended with the "
                          "run that started it; its batches are gone", file=sys.stderr)
                    clients[target] = None
                else:
                    # An SDK client reads its modules and CA certificates: in a thread.
                    clients[target] = await asyncio.to_thread(make_client, endpoint)
            client = clients[target]
            if client is None:
                continue
            driver = StageBatches(client, journal, stage=stage)
            try:
                if args.cancel is not None:
                    for status in await driver.cancel(wanted):
                        print(f"mlift batches: cancel requested for {status.batch_id} "
                              f"({stage}, {target}): now {status.state}", file=sys.stderr)
                else:
                    seen.update((c.chunk, c) for c in await driver.refresh())
            except ProviderError as exc:
                print(f"mlift batches: {target}: {exc}", file=sys.stderr)
    finally:
        for open_client in clients.values():
            if open_client is not None:
                await open_client.aclose()
    # Polled counts are kept in memory only (the journal records state changes).
    return [seen.get(c.chunk, c) for c in await journal.load() if not c.abandoned]
