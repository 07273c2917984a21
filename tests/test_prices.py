"""The price table: lookups, aliases, overrides, costs and file validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlift.errors import ConfigError
from mlift.prices import Price, PriceTable
from mlift.providers.base import Endpoint
from mlift.types import Usage

ROOT = Path(__file__).resolve().parent.parent

REQUIRED = {
    "openai": ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3-mini",
               "o4-mini", "gpt-3.5-turbo"],
    "anthropic": ["claude-3-5-haiku", "claude-3-5-sonnet", "claude-3-7-sonnet",
                  "claude-sonnet-4", "claude-opus-4", "claude-3-haiku"],
}


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_table_is_dated_and_versioned(table: PriceTable) -> None:
    assert table.version >= 1
    assert table.updated.startswith("2026-")


@pytest.mark.parametrize(("kind", "model"),
                         [(k, m) for k, models in REQUIRED.items() for m in models])
def test_shipped_table_prices_every_required_model_with_the_five_basic_prices(
        table: PriceTable, kind: str, model: str) -> None:
    price = table.lookup(kind, model)
    assert price.input > 0 and price.output > price.input
    assert price.cached_input is not None and price.cached_input <= price.input
    assert price.batch_input is not None and price.batch_input < price.input
    assert price.batch_output is not None and price.batch_output < price.output
    assert price.source.startswith("https://")


@pytest.mark.parametrize(("kind", "model", "entry"), [
    ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
    ("openai", "gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
    ("openai", "o3-mini-2025-01-31", "o3-mini"),
    ("anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku"),
    ("anthropic", "claude-3-5-haiku-20241022", "claude-3-5-haiku"),
    ("anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4"),
    ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("anthropic", "claude-sonnet-4-0", "claude-sonnet-4"),
])
def test_snapshots_and_aliases_resolve_to_the_longest_matching_entry(
        table: PriceTable, kind: str, model: str, entry: str) -> None:
    assert table.lookup(kind, model).model == entry


def test_an_exact_snapshot_entry_wins_over_its_base_model(table: PriceTable) -> None:
    assert table.lookup("openai", "gpt-4o-2024-05-13").input == 5.0
    assert table.lookup("openai", "gpt-4o").input == 2.5


@pytest.mark.parametrize("model", ["gpt-4o-audio-preview", "claude-opus-4-9", "qwen2.5-7b",
                                   "gpt-4o-minis"])
def test_a_model_without_a_price_is_an_error_that_says_how_to_add_one(
        table: PriceTable, model: str) -> None:
    with pytest.raises(ConfigError) as info:
        table.lookup("openai", model)
    message = str(info.value)
    assert f"openai:{model}" in message
    assert "--price IN,OUT" in message and "prices = { input = IN, output = OUT }" in message


def test_unknown_kind_is_an_error(table: PriceTable) -> None:
    with pytest.raises(ConfigError, match="no price for vllm:gpt-4o"):
        table.lookup("vllm", "gpt-4o")


def test_every_sim_model_has_the_fictitious_demo_price(table: PriceTable) -> None:
    price = table.lookup("sim", "any-model-name")
    assert price == table.lookup("sim", "default")
    assert (price.input, price.output) == (0.15, 0.60)
    assert "fictitious" in price.source


def test_cost_bills_fresh_cached_and_output_tokens_at_their_rates() -> None:
    price = Price(input=2.0, output=8.0, cached_input=0.5, batch_input=1.0, batch_output=4.0)
    usage = Usage(input_tokens=1_000_000, output_tokens=500_000)
    assert price.cost(usage) == pytest.approx(2.0 + 4.0)
    cached = Usage(1_000_000, 500_000, cached_input_tokens=400_000)
    assert price.cost(cached) == pytest.approx(1.2 + 0.2 + 4.0)
    assert price.cost(usage, batch=True) == pytest.approx(1.0 + 2.0)


def test_missing_cached_and_batch_prices_fall_back_to_the_plain_prices() -> None:
    price = Price(input=1.0, output=3.0)
    usage = Usage(1_000_000, 1_000_000)
    assert price.cost(usage, batch=True) == price.cost(usage) == pytest.approx(4.0)
    assert price.cost(Usage(1_000_000, 1_000_000, 1_000_000)) == pytest.approx(4.0)
    assert price.cost(Usage(1_000_000, 1_000_000, 0, 1_000_000)) == pytest.approx(4.0)


def test_a_batch_without_a_batch_cached_price_bills_cache_reads_as_batch_input() -> None:
    # OpenAI's older models list no cached-input price inside a batch.
    price = Price(input=2.0, output=8.0, cached_input=0.5, batch_input=1.0, batch_output=4.0)
    assert price.cost(Usage(1_000_000, 0, 1_000_000), batch=True) == pytest.approx(1.0)


def test_anthropic_usage_on_claude_3_5_haiku_costs_what_the_pricing_page_says(
        table: PriceTable) -> None:
    # 10,000 input tokens: 6,000 read from the cache, 2,500 written to it, 1,500 fresh.
    # Online, $ per 1M: fresh 0.80, read 0.08, write 1.00, output 4.00:
    #   1,500 x 0.80 + 6,000 x 0.08 + 2,500 x 1.00 + 1,000 x 4.00 = 8,180 -> $0.008180.
    # Batch halves every rate: 600 + 240 + 1,250 + 2,000 = 4,090 -> $0.004090.
    price = table.lookup("anthropic", "claude-3-5-haiku-latest")
    usage = Usage(input_tokens=10_000, output_tokens=1_000, cached_input_tokens=6_000,
                  cache_write_tokens=2_500)
    assert price.cost(usage) == pytest.approx(0.008180, abs=1e-12)
    assert price.cost(usage, batch=True) == pytest.approx(0.004090, abs=1e-12)


def test_openai_usage_on_gpt_4o_mini_costs_what_the_pricing_page_says(
        table: PriceTable) -> None:
    # 3,000 prompt tokens of which 2,048 cached (1,024 + 8 x 128), 500 completion.
    # Online: 952 x 0.15 + 2,048 x 0.075 + 500 x 0.60 = 596.4 -> $0.0005964.
    # Batch (no batch cached price: cache reads at batch input 0.075):
    #   952 x 0.075 + 2,048 x 0.075 + 500 x 0.30 = 375.0 -> $0.000375.
    price = table.lookup("openai", "gpt-4o-mini-2024-07-18")
    usage = Usage(input_tokens=3_000, output_tokens=500, cached_input_tokens=2_048)
    assert price.cost(usage) == pytest.approx(0.0005964, abs=1e-12)
    assert price.cost(usage, batch=True) == pytest.approx(0.000375, abs=1e-12)


def test_gpt_5_mini_batch_cache_reads_stack_both_discounts(table: PriceTable) -> None:
    # 10,000 prompt tokens, 8,192 cached, 2,000 completion.
    # Online: 1,808 x 0.25 + 8,192 x 0.025 + 2,000 x 2.00 = 4,656.8 -> $0.0046568.
    # Batch:  1,808 x 0.125 + 8,192 x 0.0125 + 2,000 x 1.00 = 2,328.4 -> $0.0023284.
    price = table.lookup("openai", "gpt-5-mini")
    usage = Usage(input_tokens=10_000, output_tokens=2_000, cached_input_tokens=8_192)
    assert price.cost(usage) == pytest.approx(0.0046568, abs=1e-12)
    assert price.cost(usage, batch=True) == pytest.approx(0.0023284, abs=1e-12)


@pytest.mark.parametrize("model", REQUIRED["anthropic"])
def test_anthropic_cache_prices_follow_the_published_multipliers(
        table: PriceTable, model: str) -> None:
    price = table.lookup("anthropic", model)
    assert price.cache_write is not None and price.batch_input is not None
    assert price.cached_input_rate == pytest.approx(0.1 * price.input, rel=0.21)
    assert price.cache_write_rate == pytest.approx(1.25 * price.input, rel=0.05)
    assert price.batch_cached_input_rate == pytest.approx(price.cached_input_rate / 2)
    assert price.batch_cache_write_rate == pytest.approx(price.cache_write_rate / 2)


def test_cached_tokens_beyond_the_input_are_clamped_not_a_crash() -> None:
    price = Price(input=1.0, output=1.0, cached_input=0.1, cache_write=2.0)
    assert price.cost(Usage(10, 0, cached_input_tokens=11)) == pytest.approx(10 * 0.1 / 1e6)
    assert price.cost(Usage(10, 0, 6, 6)) == pytest.approx((6 * 0.1 + 4 * 2.0) / 1e6)


def test_max_cost_is_every_prompt_token_uncached_plus_max_tokens_of_output() -> None:
    price = Price(input=0.15, output=0.60, cached_input=0.075)
    assert price.max_cost(1000, 512) == pytest.approx((1000 * 0.15 + 512 * 0.60) / 1e6)


def test_max_cost_covers_a_prompt_written_to_the_cache_at_a_premium() -> None:
    price = Price(input=1.0, output=4.0, cache_write=1.25, batch_input=0.5, batch_output=2.0,
                  batch_cache_write=0.625)
    worst = price.max_cost(1000, 100)
    assert worst == pytest.approx((1000 * 1.25 + 100 * 4.0) / 1e6)
    assert price.cost(Usage(1000, 100, cache_write_tokens=1000)) <= worst
    assert price.max_cost(1000, 100, batch=True) == pytest.approx(worst / 2)


def test_negative_or_nan_prices_are_refused() -> None:
    with pytest.raises(ConfigError):
        Price(input=-1.0, output=1.0)
    with pytest.raises(ConfigError):
        Price(input=1.0, output=float("nan"))


@pytest.mark.parametrize(("text", "expected"), [("0.15,0.60", (0.15, 0.60)),
                                                 (" 3 , 15 ", (3.0, 15.0))])
def test_price_flag_parses_in_and_out(text: str, expected: tuple[float, float]) -> None:
    price = Price.parse(text)
    assert (price.input, price.output) == expected


@pytest.mark.parametrize("text", ["0.15", "a,b", "1,2,3", "-1,2", "inf,1", ""])
def test_bad_price_flag_is_a_config_error_naming_the_flag(text: str) -> None:
    with pytest.raises(ConfigError, match="--price"):
        Price.parse(text)


def test_overrides_win_over_the_table_and_can_price_unknown_models(table: PriceTable) -> None:
    custom = PriceTable.load(overrides={"openai:gpt-4o-mini": Price(1.0, 2.0),
                                        "openai:qwen2.5-7b": Price(0.0, 0.0, source="local")})
    assert custom.lookup("openai", "gpt-4o-mini-2024-07-18").input == 1.0
    assert custom.lookup("openai", "qwen2.5-7b").source == "local"
    assert custom.lookup("openai", "gpt-4o") == table.lookup("openai", "gpt-4o")


def test_override_keys_must_be_kind_colon_model() -> None:
    with pytest.raises(ConfigError, match="KIND:MODEL"):
        PriceTable.load(overrides={"gpt-4o": Price(1.0, 2.0)})


def test_profile_prices_take_precedence(table: PriceTable) -> None:
    endpoint = Endpoint(name="cheap", kind="openai", model="gpt-4o",
                        input_price=1.0, output_price=2.0)
    price = table.price_for(endpoint)
    assert (price.input, price.output) == (1.0, 2.0)
    assert "cheap" in price.source


def test_profile_without_prices_uses_the_table(table: PriceTable) -> None:
    endpoint = Endpoint(name="work", kind="anthropic", model="claude-3-5-haiku-latest")
    assert table.price_for(endpoint) == table.lookup("anthropic", "claude-3-5-haiku")


def test_profile_with_one_price_takes_the_other_from_the_table(table: PriceTable) -> None:
    endpoint = Endpoint(name="p", kind="openai", model="gpt-4o-mini", output_price=1.0)
    price = table.price_for(endpoint)
    assert (price.input, price.output) == (0.15, 1.0)


def test_profile_with_one_price_and_no_table_entry_asks_for_the_other(
        table: PriceTable) -> None:
    endpoint = Endpoint(name="local", kind="openai", model="qwen2.5-7b", input_price=0.1)
    with pytest.raises(ConfigError, match="output_price"):
        table.price_for(endpoint)


def test_local_model_without_any_price_is_an_error_not_zero(table: PriceTable) -> None:
    endpoint = Endpoint(name="local", kind="openai", model="qwen2.5-7b",
                        base_url="http://127.0.0.1:8000/v1")
    with pytest.raises(ConfigError, match="never assumes \\$0"):
        table.price_for(endpoint)


HEADER = 'version = 2\nupdated = "2026-11-01"\ncurrency = "USD"\nunit = "per 1M tokens"\n'


def test_a_custom_price_file_loads(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + '[openai."m"]\ninput = 1\noutput = 2\n'
                 'aliases = ["m-alias"]\n')
    custom = PriceTable.load(path)
    assert custom.version == 2 and custom.source == str(path)
    assert custom.lookup("openai", "m-alias").output == 2.0
    assert custom.models("openai") == ["m", "m-alias"]


@pytest.mark.parametrize(("body", "complaint"), [
    ('[openai."m"]\ninput = 1\n', "field 'output' is required"),
    ('[openai."m"]\ninput = -1\noutput = 2\n', "field 'input' must be a number >= 0"),
    ('[openai."m"]\ninput = "1"\noutput = 2\n', "field 'input' must be a number"),
    ('[openai."m"]\ninput = 1\noutput = 2\nouptut = 3\n', "unknown field(s) 'ouptut'"),
    ('[openai."m"]\ninput = 1\noutput = 2\naliases = ["m"]\n', "priced twice"),
    ('[openai]\nm = 3\n', "must be a table"),
    ('[openai."m"\n', "invalid TOML"),
])
def test_bad_price_files_name_the_file_and_table(tmp_path: Path, body: str,
                                                 complaint: str) -> None:
    path = write(tmp_path, HEADER + body)
    with pytest.raises(ConfigError) as info:
        PriceTable.load(path)
    assert str(path) in str(info.value)
    assert complaint in str(info.value)


def test_price_file_needs_version_and_date(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'version'"):
        PriceTable.load(write(tmp_path, 'updated = "2026-11-01"\n'))
    with pytest.raises(ConfigError, match="'updated'"):
        PriceTable.load(write(tmp_path, "version = 1\n"))


def test_price_file_in_another_currency_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="currency"):
        PriceTable.load(write(tmp_path, HEADER.replace("USD", "EUR")))


def test_missing_price_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        PriceTable.load(tmp_path / "nope.toml")


def test_the_no_price_message_names_the_profile_and_its_fix_works(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlift.cli import main

    config = tmp_path / "mlift.toml"
    config.write_text('[providers.local]\nkind = "openai"\n'
                      'base_url = "http://127.0.0.1:9/v1"\n', encoding="utf-8")
    args = ["estimate", str(ROOT / "samples" / "hi.jsonl"), "--provider", "local:my-finetune",
            "--config", str(config), "--no-cache"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no price for local:my-finetune" in err and "[providers.local]" in err
    # Do what the message says, either way, and it works.
    assert main([*args, "--price", "0.5,1.5"]) == 0
    with config.open("a", encoding="utf-8") as fh:
        fh.write("prices = { input = 0.5, output = 1.5 }\n")
    assert main(args) == 0
