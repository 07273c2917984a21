"""Versioned prompt files: load and validate, render (pure), hash, draw, lock.

A prompt is data: one TOML file per (stage, task, version) at
``<stage>/<task>/v<N>.toml`` under a prompt folder (the bundled ``prompts/``
folder, shipped inside the wheel as ``mlift._prompts``, plus any ``--prompts
DIR``). Each file declares its variables; loading checks that the message and
simulator-marker placeholders are exactly the declared ones, so a typo fails
at load time, not after a thousand paid requests.

The content hash (sha256 of the canonical JSON of the parsed file, so comments
and layout do not count) goes into the cache key and onto every output row via
``PromptTemplate.ref``. ``prompts.lock`` records the hash of every released
version; editing one without adding ``v<N+1>.toml`` is what ``check_lock``
reports. ``instruct/styles.toml`` holds the styles and length hints drawn with
each instruction prompt; it is versioned and locked the same way.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

from mlift.errors import MissingVariablesError, PromptError, PromptLockError, UnknownNameError
from mlift.types import Message

STAGES = ("translate", "instruct", "judge")
OUTPUTS = ("text", "json")
STYLES_ID = "instruct/styles"
LOCK_NAME = "prompts.lock"
CONTEXT_SUFFIX = "_context"

_FIELDS = {"id", "version", "stage", "task", "description", "variables", "output", "params",
           "sim", "messages"}
_STYLE_FIELDS = {"id", "version", "description", "styles", "length_hints"}
_NAME = r"[a-z][a-z0-9_]*"
_PROMPT_PATH = re.compile(rf"({_NAME})/({_NAME})/v([1-9][0-9]*)\.toml")
# One pass over a template: "{{" and "}}" are literal braces, "{name}" a
# placeholder, and any other brace is an error (no attribute/index access as
# str.format would allow).
_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")
_MARKER_PART = re.compile(r"[a-z_]+=\S+")
# Marker values must stay single tokens the simulator can split on spaces.
_MARKER_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/@+-]")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """One prompt file, validated. ``ref`` identifies its exact content."""

    id: str
    version: int
    stage: str
    task: str
    description: str
    variables: tuple[str, ...]
    output: str
    params: Mapping[str, Any] = field(compare=False, repr=False)
    sim: str
    messages: tuple[Message, ...] = field(repr=False)
    content_hash: str
    path: Path = field(compare=False)

    @property
    def ref(self) -> str:
        """``id@vN#<12 hex>``: what the cache key and output rows record."""
        return f"{self.id}@v{self.version}#{self.content_hash[:12]}"

    @property
    def name(self) -> str:
        return f"{self.id}@v{self.version}"

    @property
    def has_context(self) -> bool:
        """Context variants write the instruction for (context, response)."""
        return "context_en" in self.variables


@dataclass(frozen=True, slots=True)
class Choice:
    """A style or length hint: its name, the text given to the model, its weight."""

    name: str
    hint: str
    weight: float


@dataclass(frozen=True, slots=True)
class StyleData:
    """``instruct/styles.toml``: the styles and length hints drawn per item."""

    version: int
    description: str
    styles: tuple[Choice, ...]
    length_hints: tuple[Choice, ...]
    content_hash: str
    path: Path = field(compare=False)

    id = STYLES_ID

    @property
    def name(self) -> str:
        return f"{self.id}@v{self.version}"

    @property
    def ref(self) -> str:
        return f"{self.id}@v{self.version}#{self.content_hash[:12]}"


@dataclass(frozen=True, slots=True)
class Draw:
    """What one item drew: the instruction prompt, a style and a length hint."""

    template: PromptTemplate
    style: Choice
    length: Choice
    styles_ref: str

    def variables(self, response_en: str, context_en: str | None = None) -> dict[str, str]:
        """The variables ``render`` needs for this draw's template."""
        values = {"response_en": response_en, "style": self.style.name,
                  "style_hint": self.style.hint, "length_hint": self.length.hint}
        if context_en is not None:
            values["context_en"] = context_en
        return values


class PromptLibrary:
    """Every loaded prompt version, the style data, and lookups over them."""

    def __init__(self, templates: Iterable[PromptTemplate], style_data: StyleData | None,
                 roots: Sequence[Path] = ()) -> None:
        self._by_id: dict[str, dict[int, PromptTemplate]] = {}
        for t in templates:
            self._by_id.setdefault(t.id, {})[t.version] = t
        self._style_data = style_data
        self.roots = tuple(roots)
        self._pools: dict[tuple[str, tuple[str, ...] | None], tuple[PromptTemplate, ...]] = {}

    def __iter__(self) -> Iterator[PromptTemplate]:
        for pid in sorted(self._by_id):
            versions = self._by_id[pid]
            yield from (versions[v] for v in sorted(versions))

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_id.values())

    def get(self, name: str, version: int | None = None) -> PromptTemplate:
        """The prompt ``name`` (``id`` or ``id@vN``), latest version by default."""
        if "@" in name:
            name, _, vtext = name.partition("@")
            vtext = vtext.split("#", 1)[0]
            if not re.fullmatch(r"v?[1-9][0-9]*", vtext):
                raise UnknownNameError("prompt version", f"{name}@{vtext}",
                                       [t.name for t in self])
            version = int(vtext.lstrip("v"))
        versions = self._by_id.get(name)
        if versions is None:
            raise UnknownNameError("prompt", name, list(self._by_id))
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise UnknownNameError("prompt version", f"{name}@v{version}",
                                   [f"{name}@v{v}" for v in versions])
        return versions[version]

    def pool(self, stage: str, tasks: Iterable[str] | None = None) -> list[PromptTemplate]:
        """Latest version of each task of ``stage``, sorted by task.

        A name in ``tasks`` selects that task and its context variant
        (``summary`` selects ``summary`` and ``summary_context``).
        """
        key = (stage, None if tasks is None else tuple(tasks))
        if key not in self._pools:  # draw() asks once per item: compute each pool once
            self._pools[key] = self._select(stage, key[1])
        return list(self._pools[key])

    def _select(self, stage: str, wanted: tuple[str, ...] | None) -> tuple[PromptTemplate, ...]:
        latest = [self.get(pid) for pid in sorted(self._by_id)]
        found = [t for t in latest if t.stage == stage]
        if wanted is None:
            return tuple(found)
        known = {t.task for t in found} | {t.task.removesuffix(CONTEXT_SUFFIX) for t in found}
        for name in wanted:
            if name not in known:
                raise UnknownNameError(f"{stage} task", name, sorted(known))
        return tuple(t for t in found
                     if t.task in wanted or t.task.removesuffix(CONTEXT_SUFFIX) in wanted)

    @property
    def style_data(self) -> StyleData:
        if self._style_data is None:
            raise PromptError(f"no {STYLES_ID}.toml in any prompt folder "
                              f"({', '.join(map(str, self.roots)) or 'none'})")
        return self._style_data

    @property
    def has_style_data(self) -> bool:
        return self._style_data is not None

    @property
    def styles(self) -> tuple[Choice, ...]:
        return self.style_data.styles

    @property
    def length_hints(self) -> tuple[Choice, ...]:
        return self.style_data.length_hints


# ---------------------------------------------------------------- rendering

def placeholders(text: str) -> list[str]:
    """The ``{name}`` placeholders of a template, in order; bad braces raise ValueError."""
    names = []
    for m in _TOKEN.finditer(text):
        if m.group(1):
            names.append(m.group(1))
        elif m.group(0) in "{}":
            raise ValueError(f"unescaped {m.group(0)!r} at offset {m.start()} "
                             "(write {{ or }} for a literal brace)")
    return names


@functools.lru_cache(maxsize=1024)
def _segments(text: str) -> tuple[tuple[str, str | None], ...]:
    """``text`` split once into (literal, placeholder-or-None) pairs, so render only joins."""
    parts: list[tuple[str, str | None]] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        literal = text[pos:m.start()]
        if m.group(1):
            parts.append((literal, m.group(1)))
        else:
            parts.append((literal + m.group(0)[0], None))  # "{{" -> "{", "}}" -> "}"
        pos = m.end()
    parts.append((text[pos:], None))
    return tuple(parts)


def _substitute(text: str, values: Mapping[str, str], escape: bool = False) -> str:
    out = []
    for literal, name in _segments(text):
        out.append(literal)
        if name is not None:
            out.append(_MARKER_UNSAFE.sub("_", values[name]) if escape else values[name])
    return "".join(out)


def check_variables(template: PromptTemplate, names: Iterable[str]) -> None:
    """Raise ``MissingVariablesError`` listing every declared variable not in ``names``."""
    have = set(names)
    missing = [v for v in template.variables if v not in have]
    if missing:
        raise MissingVariablesError(template.name, missing)


def render(template: PromptTemplate, variables: Mapping[str, str]) -> tuple[Message, ...]:
    """The messages to send, with the simulator marker closing the system message.

    Pure. Every declared variable is required (all missing ones are reported
    at once); extra variables are ignored. Values are inserted verbatim: braces
    inside a value are never interpreted.
    """
    check_variables(template, variables)
    for name in template.variables:
        if not isinstance(variables[name], str):
            raise PromptError(f"prompt {template.name}: variable {name!r} must be a string, "
                              f"got {type(variables[name]).__name__}")
    marker = f"<!-- mlift:{_substitute(template.sim, variables, escape=True)} -->"
    out = []
    for i, msg in enumerate(template.messages):
        text = _substitute(msg.content, variables)
        if i == 0:  # load() guarantees messages[0] is the system message
            text = f"{text.rstrip()}\n\n{marker}"
        out.append(Message(msg.role, text))
    return tuple(out)


# ------------------------------------------------------------------ drawing

def _uniforms(seed: int, item_id: str) -> tuple[float, float, float]:
    """Three independent uniforms in [0, 1) fixed by (seed, item): for task, style, length.

    sha256, not hash() (salted per process) nor a shared RNG stream (order-
    dependent), so a resumed or reordered run draws the same for each item.
    """
    digest = hashlib.sha256(f"mlift-draw\x1f{seed}\x1f{item_id}".encode()).digest()
    u_task, u_style, u_length = (int.from_bytes(digest[i:i + 8], "big") / 2**64
                                 for i in (0, 8, 16))
    return u_task, u_style, u_length


def _weighted(items: Sequence[T], weights: Sequence[float], u: float) -> T:
    target, acc = u * sum(weights), 0.0
    for item, w in zip(items, weights, strict=True):
        acc += w
        if target < acc:
            return item
    return items[-1]  # only reachable through float rounding at u -> 1


def draw(seed: int, item_id: str, library: PromptLibrary, tasks: Iterable[str] | None = None,
         *, context: bool = False) -> Draw:
    """Pick the instruction prompt, style and length hint for one item.

    Deterministic per (seed, item_id), so a resumed or reordered run draws
    the same; tasks are equally likely, styles and length
    hints follow their weights. Items with a context draw from the context
    variants only, items without from the stand-alone prompts only.
    """
    tasks = None if tasks is None else tuple(tasks)
    candidates = [t for t in library.pool("instruct", tasks) if t.has_context == context]
    if not candidates:
        kind = "context variants" if context else "stand-alone prompts"
        chosen = ", ".join(tasks) if tasks is not None else "all tasks"
        raise PromptError(f"no instruct {kind} among {chosen}")
    data = library.style_data
    u_task, u_style, u_length = _uniforms(seed, item_id)
    template = candidates[int(u_task * len(candidates))]
    style = _weighted(data.styles, [c.weight for c in data.styles], u_style)
    length = _weighted(data.length_hints, [c.weight for c in data.length_hints], u_length)
    return Draw(template, style, length, data.ref)


# ------------------------------------------------------------------ loading

def bundled_dir() -> Path:
    """The prompt folder shipped with mlift (``mlift._prompts`` → top-level ``prompts/``)."""
    try:
        module = importlib.import_module("mlift._prompts")
    except ModuleNotFoundError:
        # A source checkout without the mlift/_prompts link (e.g. symlinks off).
        return Path(__file__).resolve().parent.parent / "prompts"
    return Path(str(module.__file__)).resolve().parent


def canonical_hash(data: Mapping[str, Any]) -> str:
    """sha256 of the parsed file as canonical JSON: comments and layout don't count."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _fail(path: Path, fld: str, message: str) -> PromptError:
    return PromptError(f"{path}: field {fld!r}: {message}")


def _get(data: Mapping[str, Any], path: Path, fld: str, kind: type | tuple[type, ...],
         prefix: str = "") -> Any:
    if fld not in data:
        raise _fail(path, prefix + fld, "missing")
    value = data[fld]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _fail(path, prefix + fld, f"must be {names}, got {type(value).__name__}")
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise PromptError(f"{path}: invalid TOML: {exc}") from exc
    except OSError as exc:
        raise PromptError(f"{path}: cannot read: {exc}") from exc


def _parse_messages(raw: Any, path: Path) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise _fail(path, "messages", "needs at least a system and a user message")
    msgs = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            raise _fail(path, where, "must have exactly 'role' and 'content'")
        if not isinstance(m["content"], str) or not m["content"].strip():
            raise _fail(path, f"{where}.content", "must be a non-empty string")
        expected = "system" if i == 0 else ("user" if i % 2 else "assistant")
        if m["role"] != expected:
            raise _fail(path, f"{where}.role", f"must be {expected!r} (one system message, "
                        "then user/assistant turns alternating, starting with user)")
        msgs.append(Message(m["role"], m["content"]))
    if msgs[-1].role != "user":
        raise _fail(path, "messages", "the last message must be a user message")
    return tuple(msgs)


def _parse_params(raw: Any, path: Path) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(path, "params", "must be a table")
    max_tokens = _get(raw, path, "max_tokens", int, "params.")
    temperature = _get(raw, path, "temperature", (int, float), "params.")
    if max_tokens < 1:
        raise _fail(path, "params.max_tokens", "must be >= 1")
    if not 0 <= temperature <= 2:
        raise _fail(path, "params.temperature", "must be between 0 and 2")
    for key, value in raw.items():
        if not isinstance(value, str | int | float | bool):
            raise _fail(path, f"params.{key}", "must be a string, number or boolean")
    return MappingProxyType(dict(raw))


def parse_template(data: Mapping[str, Any], path: Path, rel: str | None = None) -> PromptTemplate:
    """Validate one parsed prompt file; ``rel`` is its path inside its prompt folder."""
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise _fail(path, unknown[0], f"unknown field (known: {', '.join(sorted(_FIELDS))})")
    pid = _get(data, path, "id", str)
    version = _get(data, path, "version", int)
    stage = _get(data, path, "stage", str)
    task = _get(data, path, "task", str)
    if stage not in STAGES:
        raise _fail(path, "stage", f"must be one of {', '.join(STAGES)}")
    if not re.fullmatch(_NAME, task):
        raise _fail(path, "task", "must be lower_snake_case")
    if pid != f"{stage}/{task}":
        raise _fail(path, "id", f"must be {stage}/{task!s} (stage/task)")
    if version < 1:
        raise _fail(path, "version", "must be >= 1")
    if rel is not None and rel != f"{stage}/{task}/v{version}.toml":
        raise _fail(path, "version", f"file must live at {stage}/{task}/v{version}.toml "
                    f"inside its prompt folder, not {rel}")
    output = _get(data, path, "output", str)
    if output not in OUTPUTS:
        raise _fail(path, "output", f"must be one of {', '.join(OUTPUTS)}")
    variables = _get(data, path, "variables", list)
    if not all(isinstance(v, str) for v in variables) or len(set(variables)) != len(variables):
        raise _fail(path, "variables", "must be a list of distinct names")
    sim = _get(data, path, "sim", str)
    parts = sim.split()
    if not parts or parts[0] != stage or not all(_MARKER_PART.fullmatch(p) for p in parts[1:]):
        raise _fail(path, "sim", f"must look like '{stage} key=value ...'")
    messages = _parse_messages(data.get("messages"), path)
    used: list[str] = []
    for fld, text in [("sim", sim)] + [(f"messages[{i}].content", m.content)
                                       for i, m in enumerate(messages)]:
        try:
            used += placeholders(text)
        except ValueError as exc:
            raise _fail(path, fld, str(exc)) from None
    undeclared = sorted(set(used) - set(variables))
    if undeclared:
        raise _fail(path, "variables", f"placeholders not declared: {', '.join(undeclared)}")
    unused = sorted(set(variables) - set(used))
    if unused:
        raise _fail(path, "variables", f"declared but never used: {', '.join(unused)}")
    return PromptTemplate(
        id=pid, version=version, stage=stage, task=task,
        description=_get(data, path, "description", str), variables=tuple(variables),
        output=output, params=_parse_params(data.get("params"), path), sim=sim,
        messages=messages, content_hash=canonical_hash(data), path=path)


def _parse_choices(raw: Any, path: Path, fld: str) -> tuple[Choice, ...]:
    if not isinstance(raw, dict) or not raw:
        raise _fail(path, fld, "must be a non-empty table of named entries")
    out = []
    for name, entry in raw.items():
        where = f"{fld}.{name}"
        if not isinstance(entry, dict) or set(entry) != {"hint", "weight"}:
            raise _fail(path, where, "must have exactly 'hint' and 'weight'")
        hint = _get(entry, path, "hint", str, f"{where}.")
        weight = _get(entry, path, "weight", (int, float), f"{where}.")
        if weight <= 0:
            raise _fail(path, f"{where}.weight", "must be > 0")
        out.append(Choice(name, hint, float(weight)))
    return tuple(out)


def parse_style_data(data: Mapping[str, Any], path: Path) -> StyleData:
    """Validate ``instruct/styles.toml``."""
    unknown = sorted(set(data) - _STYLE_FIELDS)
    if unknown:
        raise _fail(path, unknown[0], "unknown field")
    if _get(data, path, "id", str) != STYLES_ID:
        raise _fail(path, "id", f"must be {STYLES_ID!r}")
    version = _get(data, path, "version", int)
    if version < 1:
        raise _fail(path, "version", "must be >= 1")
    return StyleData(version=version, description=_get(data, path, "description", str),
                     styles=_parse_choices(data.get("styles"), path, "styles"),
                     length_hints=_parse_choices(data.get("length_hints"), path, "length_hints"),
                     content_hash=canonical_hash(data), path=path)


def load_prompts(dirs: Sequence[Path] | None = None, *, bundled: bool = True) -> PromptLibrary:
    """Load the bundled prompts (unless ``bundled=False``) and then each of ``dirs``.

    Later folders add versions and override the style data; a version that
    already exists with different content is an error (one ``id@vN`` is one
    content, everywhere). Invalid files raise ``PromptError`` naming the file
    and the field.
    """
    roots = ([bundled_dir()] if bundled else []) + [Path(d) for d in dirs or ()]
    templates: dict[tuple[str, int], PromptTemplate] = {}
    style_data: StyleData | None = None
    for root in roots:
        if not root.is_dir():
            raise PromptError(f"{root}: prompt folder not found")
        for path in sorted(root.rglob("*.toml")):
            rel = path.relative_to(root).as_posix()
            data = _read_toml(path)
            if rel == f"{STYLES_ID}.toml":
                new_styles = parse_style_data(data, path)
                if (style_data is not None and style_data.version == new_styles.version
                        and style_data.content_hash != new_styles.content_hash):
                    raise _fail(path, "version", f"{new_styles.name} is already defined by "
                                f"{style_data.path} with different content; use a new version")
                style_data = new_styles
                continue
            if not _PROMPT_PATH.fullmatch(rel):
                raise PromptError(f"{path}: not a prompt file: prompt files live at "
                                  f"<stage>/<task>/v<N>.toml (styles at {STYLES_ID}.toml)")
            t = parse_template(data, path, rel)
            old = templates.get((t.id, t.version))
            if old is not None and old.content_hash != t.content_hash:
                raise _fail(path, "version", f"{t.name} is already defined by {old.path} "
                            "with different content; give yours a new version or a new id")
            templates.setdefault((t.id, t.version), t)
    return PromptLibrary(templates.values(), style_data, roots)


# --------------------------------------------------------------------- lock

class LockProblem(NamedTuple):
    kind: str  # "changed" | "missing" | "new"
    name: str
    message: str


def _lock_path(root: Path | None) -> Path:
    return (root if root is not None else bundled_dir()) / LOCK_NAME


def read_lock(path: Path) -> dict[str, str]:
    """``id@vN`` → sha256 from a lock file; a missing file is an empty lock."""
    if not path.exists():
        return {}
    data = _read_toml(path)
    entries = data.get("prompts", {})
    if set(data) - {"prompts"} or not isinstance(entries, dict) or not all(
            isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for v in entries.values()):
        raise PromptError(f"{path}: field 'prompts': must be a table of \"id@vN\" = "
                          "\"<sha256 hex>\" and nothing else")
    return dict(entries)


def _current(library: PromptLibrary, root: Path) -> dict[str, tuple[str, bool]]:
    """Name → (hash, is_style_data) for everything in ``library`` loaded from ``root``."""
    root = root.resolve()
    items: list[tuple[str, str, Path, bool]] = [
        (t.name, t.content_hash, t.path, False) for t in library]
    if library.has_style_data:
        s = library.style_data
        items.append((s.name, s.content_hash, s.path, True))
    return {name: (h, style) for name, h, path, style in items
            if path.resolve().is_relative_to(root)}


def lock_problems(library: PromptLibrary, root: Path | None = None) -> list[LockProblem]:
    """Compare ``library``'s files under ``root`` (default: bundled) with ``root``/prompts.lock."""
    path = _lock_path(root)
    locked = read_lock(path)
    current = _current(library, path.parent)
    problems = []
    for name, (digest, _) in sorted(current.items()):
        if name not in locked:
            problems.append(LockProblem("new", name, f"{name}: new, run `mlift prompts lock`"))
        elif locked[name] != digest:
            problems.append(LockProblem(
                "changed", name,
                f"{name}: content changed since it was released (locked {locked[name][:12]}, "
                f"now {digest[:12]}); released versions are frozen: revert the edit and put "
                "the change in a new version file"))
    has_styles = any(style for _, style in current.values())
    for name in sorted(set(locked) - set(current)):
        if name.startswith(f"{STYLES_ID}@") and has_styles:
            continue  # the one styles file moved to a new version; the old one retires
        problems.append(LockProblem(
            "missing", name, f"{name}: released but its file is gone; restore it (outputs "
            "record this version) or run `mlift prompts lock --force` to drop it"))
    return problems


def check_lock(library: PromptLibrary, root: Path | None = None) -> list[str]:
    """Every lock problem as a message; empty when the lock matches."""
    return [p.message for p in lock_problems(library, root)]


def write_lock(library: PromptLibrary, root: Path | None = None, *,
               force: bool = False) -> Path:
    """Record the current hashes in ``root``/prompts.lock and return its path.

    Refuses (``PromptLockError``) to overwrite the hash of a changed released
    version or drop a missing one unless ``force``.
    """
    path = _lock_path(root)
    blocking = [p for p in lock_problems(library, root) if p.kind != "new"]
    if blocking and not force:
        raise PromptLockError("refusing to rewrite released versions (use --force if you "
                              "really mean to):\n  " + "\n  ".join(p.message for p in blocking))
    current = _current(library, path.parent)
    lines = ["# mlift prompt lock: sha256 of every released prompt version (canonical JSON",
             "# of the parsed file). Never edit a released version: add v<N+1>.toml, then",
             "# run `mlift prompts lock`. `mlift prompts check` compares files to this list.",
             "", "[prompts]"]
    lines += [f"{json.dumps(name)} = {json.dumps(digest)}"
              for name, (digest, _) in sorted(current.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
