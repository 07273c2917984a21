"""Batch mode through the Python API: the in-process simulator, and passes capped in size."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batch_helpers import Clocked
from test_batch_run import outputs, subset

from mlift.batch import BatchJournal, PollPolicy
from mlift.config import load_config, resolve_endpoint
from mlift.engine.accounting import Accounting, Budget
from mlift.engine.cache import ResponseCache
from mlift.engine.core import Engine
from mlift.pipeline.batchrun import BatchOptions, BatchRun
from mlift.pipeline.runner import Pipeline, RunOptions
from mlift.pipeline.stages import Models
from mlift.prompts import load_prompts
from mlift.providers.base import Endpoint, Provider
from mlift.providers.sim import SimProvider
from mlift.sim import SimConfig

FAST = SimConfig(batch_validate_s=0.01, batch_delay_s=0.05, batch_finalize_s=0.01)
SIM = Models("sim:default", "sim:default", "sim:default")


async def build(inputs: list[str], out: Path, cache: Path, *, batch: BatchOptions | None,
                workers: int = 64, base_url: str | None = None) -> dict[str, Any]:
    """One run on an in-process simulator the engine starts itself (no URL anywhere), or
    on the one at ``base_url``."""
    def factory(endpoint: Endpoint) -> Provider:
        return SimProvider(endpoint, sim_config=FAST)

    config = load_config(None)
    engine = Engine(lambda spec: resolve_endpoint(spec, config, base_url=base_url),
                    cache=await ResponseCache.open(cache), accounting=Accounting(),
                    budget=Budget(None), provider_factory=factory)
    async with engine:
        mode = BatchRun(engine, batch) if batch is not None else None
        options = RunOptions(inputs=[Path(i) for i in inputs], out_dir=out, models=SIM,
                             workers=workers, select_workers=1)
        report = await Pipeline(options, engine, load_prompts(), batch=mode).run()
        assert report.balanced
        assert engine.endpoint("sim:default").base_url == base_url  # None: its own simulator
        assert engine.cache is not None
        await engine.cache.aclose()
    run: dict[str, Any] = json.loads((out / "run.json").read_text())
    return run


async def test_the_in_process_simulator_answers_batches_as_it_answers_online(
        tmp_path: Path) -> None:
    inputs = subset(tmp_path, 3)
    online = await build(inputs, tmp_path / "online", tmp_path / "c1", batch=None)
    batch = await build(inputs, tmp_path / "batch", tmp_path / "c2",
                        batch=BatchOptions(poll=PollPolicy(0.02, 1.5, 0.05)))
    assert outputs(tmp_path / "batch") == outputs(tmp_path / "online")
    totals = [r["accounting"]["totals"] for r in (online, batch)]
    assert totals[1]["batch_requests"] == totals[0]["requests"] > 0
    assert abs(totals[1]["cost_usd"] - totals[0]["cost_usd"] / 2) < 1e-9


async def test_a_pass_ends_once_max_pending_requests_wait_and_the_next_takes_up(
        tmp_path: Path) -> None:
    inputs = subset(tmp_path, 3)  # 12 items, 4 at a time, at most 5 requests per pass
    await build(inputs, tmp_path / "online", tmp_path / "c1", batch=None)
    await build(inputs, tmp_path / "capped", tmp_path / "c2", workers=4,
                batch=BatchOptions(max_pending=5, poll=PollPolicy(0.02, 1.5, 0.05)))
    assert outputs(tmp_path / "capped") == outputs(tmp_path / "online")
    chunks = BatchJournal(tmp_path / "capped").load_sync()
    # what a pass holds: up to the cap, plus what the items in flight at the cap add
    assert max(len(c.custom_ids) for c in chunks) <= 5 + 4
    assert sum(len(c.custom_ids) for c in chunks if c.stage == "to_en") == 12
    assert len({c.stage for c in chunks}) == 4 and len(chunks) > 8


async def test_batches_that_take_the_provider_hours_are_waited_for_on_virtual_time(
        tmp_path: Path, sim: Any, clock: Any) -> None:
    # Each batch takes 5 hours on the simulator's clock, which the run's sleeps move.
    server = await sim(SimConfig(batch_validate_s=60, batch_delay_s=5 * 3600,
                                 batch_finalize_s=60), clock=clock)
    inputs = subset(tmp_path, 1)
    start = clock.now
    await build(inputs, tmp_path / "batch", tmp_path / "c", base_url=server.base_url,
                batch=BatchOptions(sleep=Clocked(clock), poll=PollPolicy(60, 2, 1800)))
    chunks = BatchJournal(tmp_path / "batch").load_sync()
    assert [c.stage for c in chunks] == ["to_en", "instruct", "judge", "back"]
    assert all(c.state == "completed" for c in chunks)
    assert clock.now - start >= 4 * 5 * 3600  # four stages, one after the other
    assert server.stats()["batch"]["lines_submitted"] == sum(len(c.custom_ids) for c in chunks)
