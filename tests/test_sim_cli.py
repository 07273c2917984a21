"""``mlift sim serve`` flags reach the simulator's settings."""

from __future__ import annotations

import pytest

from mlift.cli import build_parser, main
from mlift.cli.sim import _config
from mlift.sim import SimConfig


def test_batch_and_caching_flags_become_sim_settings() -> None:
    args = build_parser().parse_args([
        "sim", "serve", "--no-prompt-cache", "--batch-validate-s", "0.5",
        "--batch-delay-s", "30", "--batch-finalize-s", "2", "--batch-cancel-s", "3",
        "--batch-window-s", "600", "--batch-fail-rate", "0.1",
        "--batch-max-requests", "100", "--batch-max-bytes", "4096"])
    config = _config(args)
    assert (config.prompt_cache, config.batch_validate_s, config.batch_delay_s,
            config.batch_finalize_s, config.batch_cancel_s, config.batch_window_s,
            config.batch_fail_rate, config.batch_max_requests,
            config.batch_max_bytes) == (False, 0.5, 30.0, 2.0, 3.0, 600.0, 0.1, 100, 4096)


def test_without_flags_the_sim_keeps_the_providers_behaviour() -> None:
    config = _config(build_parser().parse_args(["sim", "serve"]))
    defaults = SimConfig()
    assert config.prompt_cache and config.batch_window_s == 86_400.0
    assert (config.batch_max_requests, config.batch_max_bytes) == (None, None)
    assert config.batch_delay_s == defaults.batch_delay_s


def test_a_bad_batch_setting_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "serve", "--batch-fail-rate", "2"]) == 2
    assert "batch_fail_rate must be between 0 and 1" in capsys.readouterr().err
