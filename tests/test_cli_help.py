"""What a newcomer reads in `--help`: plain text, every command."""

from __future__ import annotations

import argparse

import pytest

from mlift.cli import build_parser


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _parsers(child)
    return found


def test_no_help_text_shows_restructuredtext_markup() -> None:
    parsers = _parsers(build_parser())
    assert len(parsers) > 15  # every command and sub-command
    for parser in parsers:
        text = parser.format_help()
        assert "``" not in text, parser.prog
        assert ":class:`" not in text and ":mod:`" not in text, parser.prog


def test_a_command_alone_parses_and_helps_exactly_as_in_the_whole_command_line() -> None:
    # `mlift NAME ...` builds only NAME's parser (start-up); it must be the same parser.
    from mlift.cli import COMMANDS

    whole = {p.prog: p for p in _parsers(build_parser())}
    for name in COMMANDS:
        alone = [p for p in _parsers(build_parser(name)) if p.prog != "mlift"]
        assert alone, name
        for parser in alone:
            assert parser.format_help() == whole[parser.prog].format_help(), parser.prog


def test_the_top_level_help_still_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    from mlift.cli import COMMANDS, main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_the_eta_neither_jumps_by_minutes_nor_wanders_from_the_truth() -> None:
    from mlift.cli.common import Eta

    # 64 workers with 10 s latency: items finish in bursts of 64 every 10 s (6.4/s).
    total, eta, previous = 2000, Eta(), None
    for tick in range(1, 300):
        now = float(tick)
        done = min(total, 64 * (tick // 10))
        value = eta.update(now, done, total)
        truth = (total - done) / 6.4
        naive = (total - done) * now / done if done else None
        if value is not None and previous is not None:
            assert abs(value - previous) <= 60.0, (tick, previous, value)
        if tick >= 60 and done < total:
            assert value is not None and abs(value - truth) <= 0.25 * truth + 15, \
                (tick, value, truth, naive)
        previous = value
    assert eta.update(301.0, total, total) == 0.0
