"""The estimator runs the real stages on a dry-run engine: it follows the run, and cannot drift.

Each test sets ``mlift estimate`` beside ``mlift run`` on the same small input
against the simulator, or changes the pipeline (a prompt folder, an extra
request in a stage, the re-ask message) and checks that the estimate moves as
the run does.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlift.cli import main
from mlift.config import load_config, resolve_endpoint
from mlift.engine.cache import ResponseCache
from mlift.estimate.estimator import dry_run, new_engine
from mlift.estimate.ledger import Ledger
from mlift.estimate.model import sample, stage_figures
from mlift.estimate.pilot import rate_factor
from mlift.estimate.priors import LENGTHS, RATES, Factor, prior_factors
from mlift.pipeline import stages
from mlift.pipeline.runner import RunOptions
from mlift.pipeline.stages import Models, Stages
from mlift.pipeline.verdict import Verdict
from mlift.prices import Price, PriceTable
from mlift.prompts import load_prompts
from mlift.providers.base import Endpoint
from mlift.sim import SimConfig
from mlift.tokens import count_tokens
from mlift.types import Message

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
EDGE = ROOT / "tests" / "fixtures" / "estimate"
SIM = "sim:default"
EDGE_IDS = ("edge-hi-short", "edge-te-long", "edge-en-1", "edge-fr", "edge-rej-short",
            "edge-rej-script", "edge-rej-dup")


def _lines(path: Path, n: int | None = None, ids: tuple[str, ...] = ()) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [ln for ln in lines if any(f'"id": "{i}"' in ln for i in ids)] if ids else lines[:n]


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """3 paragraphs per language, edge cases (short, long, English, French, three the
    selection rejects) and an unreadable line: 16 items to process."""
    rows = [ln for lang in ("hi", "te", "ja", "es") for ln in _lines(SAMPLES / f"{lang}.jsonl", 3)]
    rows += _lines(EDGE / "edge.jsonl", ids=EDGE_IDS)
    rows.append('{"id": "broken", "text": "no end')
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def world(remote_sim: Callable[[SimConfig], Any]) -> Callable[..., list[str]]:
    """Flags pointing ``run`` and ``estimate`` at a simulator with these settings."""

    def start(seed: int = 0, **config: Any) -> list[str]:
        return ["--base-url", remote_sim(SimConfig(seed=seed, **config)).url, "--seed",
                str(seed), "-q"]

    return start


def _estimate(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> dict[str, Any]:
    assert main(["estimate", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def _run(capsys: pytest.CaptureFixture[str], out: Path, *argv: str | Path) -> dict[str, Any]:
    assert main(["run", *map(str, argv), "--out", str(out)]) in (0, 4)
    capsys.readouterr()
    accounting: dict[str, Any] = json.loads((out / "run.json").read_text())["accounting"]
    return accounting


@pytest.mark.parametrize("seed", [0, 1])
def test_with_a_pilot_the_estimate_is_within_10_percent_and_brackets_the_run(
        seed: int, mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        world: Callable[..., list[str]]) -> None:
    flags = [mixed, "--cache-dir", tmp_path / "cache", *world(seed)]
    est = _estimate(capsys, *flags, "--pilot", "4")
    assert est["pilot"]["items"] == 4
    actual = _run(capsys, tmp_path / "run", *flags)["totals"]["cost_usd"]
    cost = est["total"]["cost_usd"]
    assert cost["expected"] == pytest.approx(actual, rel=0.10)
    assert cost["low"] <= actual <= cost["high"]


def test_the_dry_run_books_the_requests_the_run_sends(
        mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        world: Callable[..., list[str]]) -> None:
    flags = [mixed, "--cache-dir", tmp_path / "cache", *world(bad_verdict_rate=0.0)]
    est = _estimate(capsys, *flags)["stages"]
    run = _run(capsys, tmp_path / "run", *flags)["stages"]
    # 16 items, one of them English (no translation); every request as the run sends it.
    assert est["to_en"]["requests"]["expected"] == run["to_en"]["requests"] == 15
    assert est["instruct"]["requests"]["expected"] == run["instruct"]["requests"] == 16
    assert est["to_en"]["input_tokens"]["expected"] == run["to_en"]["input_tokens"]
    # The instruct prompts carry the predicted English; the rest of them is counted exactly.
    assert est["instruct"]["input_tokens"]["expected"] == pytest.approx(
        run["instruct"]["input_tokens"], rel=0.03)
    # Judged once each: the judge prompt's schema is enforced, so no verdict needs a re-ask.
    assert est["judge"]["requests"]["expected"] == run["judge"]["requests"] == 16
    # Back translations are gated by the pass rate.
    assert est["back"]["requests"]["low"] <= run["back"]["requests"] <= \
        est["back"]["requests"]["high"]


def test_an_extra_request_in_a_stage_shows_in_the_estimate_as_in_the_run(
        mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        world: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    flags = [mixed, *world(bad_verdict_rate=0.0)]
    base_est = _estimate(capsys, *flags, "--cache-dir", tmp_path / "c1")["stages"]["judge"]
    base_run = _run(capsys, tmp_path / "r1", *flags, "--cache-dir", tmp_path / "c1")
    judge = Stages.judge

    async def judge_twice(self: Stages, item_id: str, instruction_en: str, response_en: str,
                          trace: Any) -> Verdict:
        """A second opinion: the judge sees the pair again, phrased as a follow-up."""
        await judge(self, item_id, instruction_en + "\n(second opinion)", response_en, trace)
        return await judge(self, item_id, instruction_en, response_en, trace)

    monkeypatch.setattr(Stages, "judge", judge_twice)
    est = _estimate(capsys, *flags, "--cache-dir", tmp_path / "c2")["stages"]["judge"]
    run = _run(capsys, tmp_path / "r2", *flags, "--cache-dir", tmp_path / "c2")
    assert run["stages"]["judge"]["requests"] == 2 * base_run["stages"]["judge"]["requests"]
    assert est["requests"]["expected"] == pytest.approx(2 * base_est["requests"]["expected"])
    grew_est = est["input_tokens"]["expected"] - base_est["input_tokens"]["expected"]
    grew_run = (run["stages"]["judge"]["input_tokens"]
                - base_run["stages"]["judge"]["input_tokens"])
    # The same extra prompts; in them, the instruction has the prior's length (40 tokens,
    # the simulator writes ~15).
    assert grew_est == pytest.approx(grew_run, rel=0.10)


def _prompt_folder(tmp_path: Path, prompt: str, edit: Callable[[str], str]) -> Path:
    """A prompt folder with the next version of a bundled prompt, changed by ``edit``."""
    latest = load_prompts().get(prompt)
    n = latest.version + 1
    dst = tmp_path / "prompts" / prompt / f"v{n}.toml"
    dst.parent.mkdir(parents=True)
    text = latest.path.read_text(encoding="utf-8")
    dst.write_text(edit(text.replace(f"version = {latest.version}", f"version = {n}", 1)),
                   encoding="utf-8")
    return tmp_path / "prompts"


def test_a_prompt_whose_max_tokens_cuts_every_instruction_ends_items_in_both(
        mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        world: Callable[..., list[str]]) -> None:
    folder = _prompt_folder(tmp_path, "instruct/summary",
                            lambda t: t.replace("max_tokens = 400", "max_tokens = 3"))
    flags = [mixed, "--tasks", "summary", "--prompts", folder, "--cache-dir",
             tmp_path / "cache", *world()]
    est = _estimate(capsys, *flags)
    run = _run(capsys, tmp_path / "run", *flags)
    # Every instruction is cut at 3 tokens, so no item reaches the judge: in both.
    assert set(est["stages"]) == set(run["stages"]) == {"to_en", "instruct"}
    assert est["stages"]["instruct"]["output_tokens"]["expected"] == \
        run["stages"]["instruct"]["output_tokens"] == 16 * 3
    assert est["total"]["cost_usd"]["expected"] == pytest.approx(run["totals"]["cost_usd"],
                                                                 rel=0.10)


def test_a_longer_judge_prompt_costs_the_estimate_what_it_costs_the_run(
        mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        world: Callable[..., list[str]]) -> None:
    extra = " Weigh every requirement of the instruction on its own before you decide." * 20
    folder = _prompt_folder(tmp_path, "judge/fit",
                            lambda t: t.replace("Reply with a single JSON object",
                                                extra + "\n\nReply with a single JSON object"))
    flags = [mixed, *world(bad_verdict_rate=0.0)]
    base_est = _estimate(capsys, *flags, "--cache-dir", tmp_path / "c1")["stages"]["judge"]
    base_run = _run(capsys, tmp_path / "r1", *flags, "--cache-dir", tmp_path / "c1")
    flags += ["--prompts", folder]
    est = _estimate(capsys, *flags, "--cache-dir", tmp_path / "c2")["stages"]["judge"]
    run = _run(capsys, tmp_path / "r2", *flags, "--cache-dir", tmp_path / "c2")
    grew_run = (run["stages"]["judge"]["input_tokens"]
                - base_run["stages"]["judge"]["input_tokens"])
    grew_est = est["input_tokens"]["expected"] - base_est["input_tokens"]["expected"]
    assert grew_run > 16 * 200
    assert grew_est == pytest.approx(grew_run, rel=0.01)


@pytest.fixture
def resolve() -> Callable[[str], Endpoint]:
    """Endpoints as the CLI resolves them (the simulator needs no key)."""
    config = load_config(None)
    return lambda spec: resolve_endpoint(spec, config, env={})


def _options(inputs: list[Path], tmp_path: Path, judge_prompt: str) -> RunOptions:
    return RunOptions(inputs=tuple(inputs), out_dir=tmp_path / "unused",
                      models=Models(SIM, SIM, SIM), judge_prompt=judge_prompt)


def _ledger(inputs: list[Path], tmp_path: Path, resolve: Any, cache_dir: Path,
            judge_prompt: str = "judge/fit") -> Ledger:
    """The dry run's ledger of ``inputs`` (priors, ``cache_dir`` consulted)."""
    return asyncio.run(_dry(inputs, tmp_path, resolve, cache_dir, judge_prompt))


async def _dry(inputs: list[Path], tmp_path: Path, resolve: Any, cache_dir: Path,
               judge_prompt: str) -> Ledger:
    library = load_prompts()
    options = _options(inputs, tmp_path, judge_prompt)
    cache = await ResponseCache.open(cache_dir)
    try:
        engine = new_engine(resolve, library, options, cache, PriceTable.load())
        await dry_run(options, library, engine)
    finally:
        await cache.aclose()
    return engine.ledger


def _sum(ledger: Ledger, stage: str, what: str, factors: tuple[str, ...]) -> float:
    return sum(t.amount for (s, _, w, f), t in ledger.terms.items()
               if s == stage and w == what and f == factors)


def test_cached_answers_flow_on_into_later_requests_exactly(
        tmp_path: Path, resolve: Any, remote_sim: Callable[[SimConfig], Any]) -> None:
    """An earlier run with another judge prompt left every translation and instruction in
    the cache: the estimate's judge prompts are then the run's, token for token."""
    url = remote_sim(SimConfig(bad_verdict_rate=0.0)).url
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(_lines(SAMPLES / "te.jsonl", 5)) + "\n", encoding="utf-8")
    cache = tmp_path / "cache"
    common = [str(inp), "--cache-dir", str(cache), "--base-url", url, "-q"]
    assert main(["run", *common, "--out", str(tmp_path / "warm"),
                 "--judge-prompt", "judge/fit_line"]) == 0
    ledger = _ledger([inp], tmp_path, resolve, cache)
    assert ledger.cached["to_en"] == ledger.cached["instruct"] == 5
    assert main(["run", *common, "--out", str(tmp_path / "run")]) == 0
    run = json.loads((tmp_path / "run" / "run.json").read_text())["accounting"]["stages"]
    assert _sum(ledger, "judge", "input", ()) == run["judge"]["input_tokens"]


def test_the_reask_the_estimate_books_is_the_one_the_stage_builds(
        tmp_path: Path, resolve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(_lines(SAMPLES / "hi.jsonl", 4)) + "\n", encoding="utf-8")
    booked = []
    for message in ("Say it again as JSON.", "Your answer could not be read. " * 40):
        monkeypatch.setattr(stages, "reask_message", lambda error, output, m=message: m)
        # A prompt without a schema to enforce: its verdicts may not parse.
        ledger = _ledger([inp], tmp_path, resolve, tmp_path / "cache", "judge/fit_line")
        assert ledger.units["reask"] == 4  # one possible re-ask per judged pair
        booked.append(_sum(ledger, "judge", "input", ("reask",)))
    longer = count_tokens("Your answer could not be read. " * 40, "default") - count_tokens(
        "Say it again as JSON.", "default")
    assert booked[1] - booked[0] == pytest.approx(4 * longer, abs=1e-6)


def test_fewer_items_give_a_wider_range(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    def width(n: int) -> float:
        inp = tmp_path / f"in{n}.jsonl"
        inp.write_text("\n".join(ln for lang in ("hi", "te", "ja", "es")
                                 for ln in _lines(SAMPLES / f"{lang}.jsonl", n)) + "\n",
                       encoding="utf-8")
        cost = _estimate(capsys, inp, "--cache-dir", tmp_path / "cache")["total"]["cost_usd"]
        return float((cost["high"] - cost["low"]) / cost["expected"])

    # The priors' own uncertainty stays; the items' variation around them averages out.
    assert width(1) > 1.2 * width(25)


@pytest.mark.parametrize("n", [4, 100])
def test_the_range_from_per_item_variation_shrinks_as_one_over_root_n(n: int) -> None:
    """With the factors' means known, what is left is the items' variation: ~1/sqrt(n)."""
    known = {name: Factor(1.0, 0.999, 1.001, spread=0.3) for name in LENGTHS}
    known |= {name: Factor.rate(5000, 5000, "known") for name in RATES}

    def relative_width(items: int) -> float:
        ledger = Ledger()
        for i in range(items):
            ledger.open(str(i))
            ledger.add(str(i), "instruct", SIM, "output", 40.0, ("ins",))
            ledger.close(str(i))
        _, total = stage_figures(ledger, sample(known, ledger.units),
                                       {SIM: Price(input=1.0, output=1.0)})
        return (total.high - total.low) / total.expected

    assert relative_width(n) == pytest.approx(2 * 1.96 * 0.3 / n ** 0.5, rel=0.12)


def test_an_answer_cut_at_max_tokens_ends_the_item_in_the_estimate_too(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(_lines(EDGE / "edge.jsonl", ids=("edge-es-huge", "edge-fr")))
                   + "\n", encoding="utf-8")
    flags = [inp, "--max-chars", "30000", "--cache-dir", tmp_path / "cache", "-q"]
    est = _estimate(capsys, *flags)["stages"]
    run = _run(capsys, tmp_path / "run", *flags)["stages"]
    # The 24,000-character text's English passes to_en's 4096-token cap: cut, then rejected.
    assert est["to_en"]["output_tokens"]["low"] >= 4096
    assert est["instruct"]["requests"]["expected"] == run["instruct"]["requests"] == 1


def test_estimate_writes_no_run_folder_and_pilot_shows_progress(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(_lines(SAMPLES / "ja.jsonl", 6)) + "\n", encoding="utf-8")
    out = tmp_path / "planned"
    assert main(["estimate", str(inp), "--cache-dir", str(tmp_path / "cache"), "--out",
                 str(out), "--pilot", "2"]) == 0
    err = capsys.readouterr().err
    assert "2/2 items" in err  # the pilot's progress line, as `mlift run` draws it
    assert sorted(p.name for p in out.iterdir()) == ["estimate.json"]


def test_a_resumed_folder_is_estimated_as_the_run_resumes_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(_lines(SAMPLES / "es.jsonl", 6)) + "\n", encoding="utf-8")
    out, cache = tmp_path / "run", tmp_path / "cache"
    half = tmp_path / "half.jsonl"
    half.write_text("\n".join(_lines(SAMPLES / "es.jsonl", 3)) + "\n", encoding="utf-8")
    _run(capsys, out, half, "--cache-dir", cache, "-q")
    shutil.copy(inp, half)  # the same input file, now with all 6 records
    est = _estimate(capsys, half, "--cache-dir", cache, "--out", out)
    assert est["items"]["selection"]["already_done"] == 3
    assert est["stages"]["to_en"]["requests"]["expected"] == 3


def test_what_only_a_failing_verdict_sends_scales_with_one_minus_the_pass_rate(
        mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        world: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A stage that asks for a repair of every instruction the judge scored low: the
    estimate learns it by taking each item through a passing and a failing verdict."""
    judge = Stages.judge

    async def judge_then_repair(self: Stages, item_id: str, instruction_en: str,
                                response_en: str, trace: Any) -> Verdict:
        verdict = await judge(self, item_id, instruction_en, response_en, trace)
        if verdict.score < 4:
            messages = (Message("system", "Rewrite the request so it fits the answer."),
                        Message("user", instruction_en))
            await stages.call_model(self.engine, "repair", self.models.generator,
                                    self.judge_prompt, messages, item_id, trace)
        return verdict

    monkeypatch.setattr(Stages, "judge", judge_then_repair)
    flags = [mixed, "--cache-dir", tmp_path / "cache", *world(bad_verdict_rate=0.0)]
    est = _estimate(capsys, *flags)
    run = _run(capsys, tmp_path / "run", *flags)["stages"]
    repair = est["stages"]["repair"]["requests"]
    assert repair["expected"] == pytest.approx(16 * (1 - est["pass_rate"]["value"]))
    assert repair["low"] <= run["repair"]["requests"] <= repair["high"]
    # Back translations only follow a passing verdict (and the English item needs none).
    assert est["stages"]["back"]["requests"]["expected"] == pytest.approx(
        15 * est["pass_rate"]["value"])
    assert any("'repair' has no output prior" in n for n in est["notes"])


def test_a_pilot_s_counts_update_the_prior_beta() -> None:
    prior = prior_factors(4)["pass"]
    assert prior.beta is not None
    few = rate_factor(2, 2, "passed", prior)
    many = rate_factor(130, 200, "passed", prior)
    # 2 of 2 barely moves a prior worth 6 pairs; 130 of 200 all but replaces it.
    assert prior.value < few.value < 0.8
    assert many.value == pytest.approx((prior.beta[0] + 130) / (sum(prior.beta) + 200))
    assert many.high - many.low < 0.15 < few.high - few.low
    # No re-ask among 2 verdicts stays near the prior's 3 %.
    assert rate_factor(0, 2, "re-asks", prior_factors(4)["reask"]).value < 0.03


def test_a_judge_prompt_long_enough_for_the_prompt_cache_is_priced_as_the_run_pays(
        mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        world: Callable[..., list[str]]) -> None:
    # A system prompt past OpenAI's 1,024-token caching threshold: every judge call
    # after the first reads it from the provider's prompt cache at the cached price.
    extra = " Weigh every requirement of the instruction on its own before you decide." * 90
    folder = _prompt_folder(tmp_path, "judge/fit",
                            lambda t: t.replace("Reply with a single JSON object",
                                                extra + "\n\nReply with a single JSON object"))
    flags = [mixed, *world(bad_verdict_rate=0.0), "--prompts", folder, "--cache-dir",
             tmp_path / "cache"]
    est = _estimate(capsys, *flags)
    run = _run(capsys, tmp_path / "run", *flags)
    judged = est["stages"]["judge"]
    assert run["stages"]["judge"]["cached_input_tokens"] > 0  # the simulator cached it
    assert judged["input_tokens"]["expected"] == pytest.approx(
        run["stages"]["judge"]["input_tokens"], rel=0.03)  # predicted instructions
    assert judged["cached_input_tokens"]["expected"] == pytest.approx(
        run["stages"]["judge"]["cached_input_tokens"], rel=0.10)
    # ... and priced lower than fresh input (the answer-length priors are another matter).
    price = judged["price_per_1m"]
    all_fresh = (judged["input_tokens"]["expected"] * price["input"]
                 + judged["output_tokens"]["expected"] * price["output"]) / 1e6
    saved = judged["cached_input_tokens"]["expected"] * price["input"] / 1e6
    assert judged["cost_usd"]["expected"] < all_fresh - 0.5 * saved
    # The other stages' prompts are too short to be cached, in both.
    assert est["stages"]["to_en"]["cached_input_tokens"]["expected"] == 0
    assert run["stages"]["to_en"]["cached_input_tokens"] == 0


def test_an_anthropic_batch_reads_no_cache_so_its_cached_share_is_priced_as_writes() -> None:
    from mlift.estimate.ledger import Term
    from mlift.estimate.model import batch_costs

    table = PriceTable.load()
    price = table.lookup("anthropic", "claude-3-5-haiku-latest")
    ledger = Ledger()
    ledger.targets["judge"] = "anthropic:claude-3-5-haiku-latest"
    ledger.terms[("judge", "anthropic:claude-3-5-haiku-latest", "cached_input", ())] = \
        Term(1_000_000.0, 1.0)
    draws = sample(prior_factors(4), {})
    prices = {"anthropic:claude-3-5-haiku-latest": price}
    online, _ = stage_figures(ledger, draws, prices)
    _, read, _, _ = price.rates()
    _, _, batch_write, _ = price.rates(batch=True)
    assert online["judge"].cost_usd.expected == pytest.approx(read)
    batched, _ = batch_costs(ledger, draws, prices, {"judge"},
                             {"anthropic:claude-3-5-haiku-latest": "anthropic"})
    assert batched["judge"].expected == pytest.approx(batch_write)
    assert batch_write > read  # a cold batch costs more than reading a warm cache online
