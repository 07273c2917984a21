"""Loading and validating prompt files; the bundled folder; content hashes."""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mlift.errors import PromptError
from mlift.prompts.model import (
    _FIELDS,
    _MARKER_PART,
    _NAME,
    _PROMPT_PATH,
    _STYLE_FIELDS,
    OUTPUTS,
    STAGES,
    STYLES_ID,
    Choice,
    PromptLibrary,
    PromptTemplate,
    StyleData,
)
from mlift.prompts.render import (
    placeholders,
)
from mlift.types import Message, OutputSchema

# JSON Schema keywords every schema-enforcing endpoint accepts: OpenAI's strict
# mode, Anthropic's tool input_schema, llama.cpp's and vLLM's grammars.
# Numeric and length constraints (minimum, maxLength, …) are left out on
# purpose: not every endpoint enforces them; put such checks in the parser.
_SCHEMA_KEYWORDS = {"type", "properties", "required", "additionalProperties", "items", "enum",
                    "description", "title", "anyOf", "const"}
_SCHEMA_TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}


def bundled_dir() -> Path:
    """The prompt folder shipped with mlift (``mlift._prompts`` → top-level ``prompts/``)."""
    try:
        module = importlib.import_module("mlift._prompts")
    except ModuleNotFoundError:
        # A source checkout without the mlift/_prompts link (e.g. symlinks off).
        return Path(__file__).resolve().parents[2] / "prompts"
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


def _check_schema_node(node: Any, path: Path, where: str) -> None:
    if not isinstance(node, dict):
        raise _fail(path, where, "must be a table (a JSON Schema object)")
    unknown = sorted(set(node) - _SCHEMA_KEYWORDS)
    if unknown:
        raise _fail(path, f"{where}.{unknown[0]}", "not in the JSON Schema subset every "
                    f"schema-enforcing endpoint accepts ({', '.join(sorted(_SCHEMA_KEYWORDS))}); "
                    "check ranges and lengths in the answer's parser instead")
    types = node.get("type")
    for t in types if isinstance(types, list) else [types]:
        if t is not None and t not in _SCHEMA_TYPES:
            raise _fail(path, f"{where}.type", f"must be one of {', '.join(sorted(_SCHEMA_TYPES))}")
    if "enum" in node and (not isinstance(node["enum"], list) or not node["enum"]):
        raise _fail(path, f"{where}.enum", "must be a non-empty list")
    if types == "object" or "properties" in node:
        props = node.get("properties")
        if not isinstance(props, dict) or not props:
            raise _fail(path, f"{where}.properties", "an object needs its properties listed")
        # OpenAI's strict mode demands both; stating them keeps every endpoint strict.
        if node.get("additionalProperties") is not False:
            raise _fail(path, f"{where}.additionalProperties", "must be false (strict outputs "
                        "allow no keys beyond the listed properties)")
        if not isinstance(node.get("required"), list) or set(node["required"]) != set(props):
            raise _fail(path, f"{where}.required", "must list every property (strict outputs "
                        f"require all of them): {sorted(props)}")
        for name, sub in props.items():
            _check_schema_node(sub, path, f"{where}.properties.{name}")
    if "items" in node:
        _check_schema_node(node["items"], path, f"{where}.items")
    for i, sub in enumerate(node.get("anyOf", [])):
        _check_schema_node(sub, path, f"{where}.anyOf[{i}]")


def _parse_schema(data: Mapping[str, Any], path: Path, pid: str, output: str,
                  description: str) -> OutputSchema | None:
    if "schema" not in data:
        return None
    if output != "json":
        raise _fail(path, "schema", 'only prompts with output = "json" can declare a schema')
    raw = data["schema"]
    _check_schema_node(raw, path, "schema")
    if raw.get("type") != "object":
        raise _fail(path, "schema.type", 'must be "object" (the answer is one JSON object)')
    # A plain copy (TOML tables are dicts already): JSON-serialisable, detached from data.
    schema = json.loads(json.dumps(raw))
    return OutputSchema(name=pid.replace("/", "_"), schema=schema, description=description)


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
    description = _get(data, path, "description", str)
    return PromptTemplate(
        id=pid, version=version, stage=stage, task=task,
        description=description, variables=tuple(variables),
        output=output, params=_parse_params(data.get("params"), path), sim=sim,
        messages=messages, content_hash=canonical_hash(data), path=path,
        output_schema=_parse_schema(data, path, pid, output, description))


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


