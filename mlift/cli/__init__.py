"""The ``mlift`` command: a thin shell over the library.

Each sub-command lives in its own module under ``mlift.cli`` and exposes
``register(subparsers)``, which adds its parser and sets ``handler`` to a
function ``(args) -> int``. This module is the only place errors become
messages and exit codes: usage 2, auth 3, partial failure 4, endpoint unusable 5
(every request failed the same permanent way: a wrong base URL or model),
interrupted 130.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import re
import sys
from collections.abc import Sequence

from mlift.errors import (
    AuthError,
    BudgetExceeded,
    ConfigError,
    EndpointMisconfigured,
    MliftError,
    PromptError,
)

# Sub-command modules, in the order `mlift --help` lists them.
COMMANDS = ("run", "filter", "estimate", "requests", "batches", "baseline", "eval", "report",
            "export", "review", "judge", "agree", "prompts", "cache", "sim")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_AUTH, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_ENDPOINT = 5


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with ``only`` just that sub-command: importing every
    command module (numpy, the simulator's server, the eval metrics...) is most of a
    command's start-up, and a command needs only its own."""
    parser = argparse.ArgumentParser(
        prog="mlift",
        description="Build multilingual instruction-finetuning datasets from natural text.",
    )
    from mlift import __version__

    parser.add_argument("--version", action="version", version=f"mlift {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS if only is None else (only,):
        try:
            module = importlib.import_module(f"mlift.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"mlift.cli.{name}":
                raise
            continue  # not built yet
        module.register(sub)
    _plain_help(parser)
    return parser


_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def _plain(text: str | None) -> str | None:
    """Help text without the reStructuredText markup of the docstrings it comes from."""
    if not text:
        return text
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text)
    return text.replace("``", "")


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """Clean every description, epilog and option help of ``parser`` and its sub-commands."""
    parser.description, parser.epilog = _plain(parser.description), _plain(parser.epilog)
    for action in parser._actions:
        action.help = _plain(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = _plain(choice.help)
            for child in action.choices.values():
                _plain_help(child)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # `mlift requests ...` parses as the whole command line would (sub-command names are
    # never abbreviated); anything else (`mlift`, `--help`, a typo) gets every command.
    parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
    # What start-up made (modules, classes, the parser) lives as long as the process: out
    # of the collector's sight, so its full passes walk only what the run itself creates.
    gc.freeze()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        print("mlift: interrupted; finished work is saved, re-run the same command to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except AuthError as exc:
        print(f"mlift: authentication failed: {exc}", file=sys.stderr)
        return EXIT_AUTH
    except EndpointMisconfigured as exc:
        print(f"mlift: stopped: the endpoint cannot serve any request: {exc}", file=sys.stderr)
        return EXIT_ENDPOINT
    except (ConfigError, PromptError) as exc:
        print(f"mlift: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BudgetExceeded as exc:
        print(f"mlift: stopped: {exc}", file=sys.stderr)
        return EXIT_PARTIAL
    except MliftError as exc:
        print(f"mlift: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
