"""The prompt data model: templates, styles and length hints, the library of versions."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mlift.errors import PromptError, UnknownNameError
from mlift.types import Message, OutputSchema

STAGES = ("translate", "instruct", "judge", "eval")
OUTPUTS = ("text", "json")
STYLES_ID = "instruct/styles"
LOCK_NAME = "prompts.lock"
CONTEXT_SUFFIX = "_context"

_FIELDS = {"id", "version", "stage", "task", "description", "variables", "output", "params",
           "sim", "messages", "schema"}
_STYLE_FIELDS = {"id", "version", "description", "styles", "length_hints"}
_NAME = r"[a-z][a-z0-9_]*"
_PROMPT_PATH = re.compile(rf"({_NAME})/({_NAME})/v([1-9][0-9]*)\.toml")
# One pass over a template: "{{" and "}}" are literal braces, "{name}" a
# placeholder, and any other brace is an error (no attribute/index access as
# str.format would allow).
_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")
_MARKER_PART = re.compile(r"[a-z_]+=[A-Za-z0-9_.:/@+{}-]+")
# Values in the routing hint (``sim``) must stay single tokens the simulator
# can split on spaces, and header-safe ASCII.
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
    output_schema: OutputSchema | None = field(default=None, compare=False, repr=False)
    """The JSON Schema its answer must match (``output = "json"`` prompts may declare one)."""

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


