"""``mlift prompts``: list, show, check and lock the versioned prompt files.

A thin shell over ``mlift.prompts``: errors propagate to ``mlift.cli.main``,
which turns them into messages and exit codes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mlift.cli import EXIT_ERROR, EXIT_OK
from mlift.errors import ConfigError
from mlift.prompts import (
    STAGES,
    STYLES_ID,
    PromptLibrary,
    PromptTemplate,
    StyleData,
    bundled_dir,
    check_lock,
    load_prompts,
    render,
    write_lock,
)
from mlift.types import ROUTE_HEADER


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "prompts", help="list, show, check and lock prompt files",
        description="Inspect the versioned prompt files and keep prompts.lock in step.")
    actions = parser.add_subparsers(dest="prompts_action", metavar="ACTION", required=True)

    p = actions.add_parser("list", help="table of every prompt version")
    p.add_argument("--stage", choices=STAGES, help="only this stage")
    _add_prompts_dirs(p)
    p.set_defaults(handler=cmd_list)

    p = actions.add_parser("show", help="print one prompt, raw or rendered")
    p.add_argument("name", metavar="ID[@vN]", help="e.g. instruct/summary or judge/fit@v1")
    p.add_argument("--render", nargs="+", metavar="VAR=VALUE", default=None,
                   help="render with these variable values (every declared one is required)")
    _add_prompts_dirs(p)
    p.set_defaults(handler=cmd_show)

    p = actions.add_parser("check", help="compare prompt files with prompts.lock (exit 1 if not)")
    _add_root(p)
    p.set_defaults(handler=cmd_check)

    p = actions.add_parser("lock", help="record the current hashes in prompts.lock")
    _add_root(p)
    p.add_argument("--force", action="store_true",
                   help="also overwrite changed or drop missing released versions")
    p.set_defaults(handler=cmd_lock)


def _add_prompts_dirs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompts", action="append", type=Path, metavar="DIR", default=[],
                        help="extra prompt folder (repeatable); adds or overrides versions")


def _add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, metavar="DIR", default=None,
                        help="prompt folder holding the prompts.lock (default: the bundled one)")


def _library_for_root(root: Path | None) -> PromptLibrary:
    return load_prompts() if root is None else load_prompts([root], bundled=False)


def cmd_list(args: argparse.Namespace) -> int:
    library = load_prompts(args.prompts)
    rows: list[tuple[str, str, str, str, str]] = [
        (t.id, f"v{t.version}", t.stage, t.output, t.content_hash[:12])
        for t in library if args.stage in (None, t.stage)]
    if library.has_style_data and args.stage in (None, "instruct"):
        s = library.style_data
        rows.append((s.id, f"v{s.version}", "instruct", "data", s.content_hash[:12]))
    rows.sort()
    header = ("ID", "VERSION", "STAGE", "OUTPUT", "HASH")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def _parse_assignments(items: list[str]) -> dict[str, str]:
    values = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--render expects VAR=VALUE, got {item!r}")
        values[name] = value
    return values


def _show_styles(data: StyleData) -> None:
    print(data.ref)
    print(f"description: {data.description}")
    print(f"file: {data.path}")
    for title, choices in (("styles", data.styles), ("length hints", data.length_hints)):
        total = sum(c.weight for c in choices)
        print(f"\n{title}:")
        for c in choices:
            print(f"  {c.name:<12} {c.weight / total:6.1%}  {c.hint}")


def _show_template(t: PromptTemplate, values: dict[str, str] | None) -> None:
    # Render before printing anything, so a missing variable leaves no half output.
    messages = render(t, values) if values is not None else t.messages
    print(t.ref)
    print(f"description: {t.description}")
    print(f"stage: {t.stage}  task: {t.task}  output: {t.output}")
    print(f"variables: {', '.join(t.variables)}")
    print("params: " + "  ".join(f"{k}={v}" for k, v in t.params.items()))
    print(f"sim route hint: {t.sim}")
    if values is not None:
        print(f"route (sent as the {ROUTE_HEADER} header): {messages[0].route}")
    if t.output_schema is not None:
        print(f"schema ({t.output_schema.name}): "
              + json.dumps(t.output_schema.schema, ensure_ascii=False))
    print(f"file: {t.path}")
    for m in messages:
        print(f"\n--- {m.role} ---")
        print(m.content.rstrip())


def cmd_show(args: argparse.Namespace) -> int:
    library = load_prompts(args.prompts)
    values = _parse_assignments(args.render) if args.render is not None else None
    if args.name.split("@", 1)[0] == STYLES_ID:
        _show_styles(library.style_data)
    else:
        _show_template(library.get(args.name), values)
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    root = args.root if args.root is not None else bundled_dir()
    library = _library_for_root(args.root)
    problems = check_lock(library, root)
    if problems:
        print(f"{root / 'prompts.lock'}: {len(problems)} problem(s):")
        for problem in problems:
            print(f"  {problem}")
        return EXIT_ERROR
    print(f"{root / 'prompts.lock'}: all prompt versions match")
    return EXIT_OK


def cmd_lock(args: argparse.Namespace) -> int:
    root = args.root if args.root is not None else bundled_dir()
    path = write_lock(_library_for_root(args.root), root, force=args.force)
    print(f"wrote {path}")
    return EXIT_OK
