"""A run folder's identity: what changes its outputs, so a resume can be refused when it differs.

An identity is a JSON object, built by each command from its settings:
input fingerprints, the endpoint behind each model stage, the prompt refs and
every parameter that changes what is written (seed, tasks, selection, field
names). Settings that change only *how* a run goes — the threshold,
concurrency, rate limits, the budget, the cache, the transport — are not in
it and may change between invocations.

Comparison is per dotted key, so the refusal can say exactly what differs.
An input file may have grown (records appended) or moved: neither changes the
records already processed, so neither is a difference.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class Difference:
    key: str
    was: Any
    now: Any

    def __str__(self) -> str:
        return f"{self.key}: was {_show(self.was)}, now {_show(self.now)}"


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, str):
        return value
    return repr(value)


def fingerprint(path: Path, *, known: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{"name", "size", "mtime_ns", "sha256"}`` of an input file.

    With ``known`` (the fingerprint stored last time), the hash is reused when
    size and mtime are unchanged, and ``prefix_sha256`` — the hash of the file's
    first ``known["size"]`` bytes — is added when the file grew, so a caller can
    tell "records appended" from "records changed".
    """
    stat = path.stat()
    if known and known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns \
            and isinstance(known.get("sha256"), str):
        return {"name": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "sha256": known["sha256"]}
    grown_from = known.get("size") if known else None
    digest, prefix = hashlib.sha256(), None
    done = 0
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            if isinstance(grown_from, int) and prefix is None and done + len(block) >= grown_from:
                cut = grown_from - done
                digest.update(block[:cut])
                prefix = digest.copy().hexdigest()
                digest.update(block[cut:])
            else:
                digest.update(block)
            done += len(block)
    out = {"name": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
           "sha256": digest.hexdigest()}
    if prefix is not None and isinstance(grown_from, int) and stat.st_size > grown_from:
        out["prefix_sha256"] = prefix
    return out


def fingerprints(paths: Sequence[Path],
                 known: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    old = list(known or [])
    return [fingerprint(p, known=old[i] if i < len(old) else None) for i, p in enumerate(paths)]


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key in sorted(value):
            yield from _flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _same_input(was: Mapping[str, Any], now: Mapping[str, Any]) -> bool:
    """The same records: the same content, or the old content with records appended."""
    if was.get("sha256") == now.get("sha256"):
        return True
    return bool(now.get("prefix_sha256")) and now.get("prefix_sha256") == was.get("sha256")


def compare(was: Mapping[str, Any], now: Mapping[str, Any]) -> list[Difference]:
    """What differs between two identities (inputs compared by content, in order)."""
    diffs: list[Difference] = []
    old_inputs, new_inputs = was.get("inputs") or [], now.get("inputs") or []
    if len(old_inputs) != len(new_inputs):
        diffs.append(Difference("inputs", [i.get("name") for i in old_inputs],
                                [i.get("name") for i in new_inputs]))
    else:
        for i, (a, b) in enumerate(zip(old_inputs, new_inputs, strict=True)):
            if not _same_input(a, b):
                diffs.append(Difference(f"inputs[{i}] ({b.get('name')})", _content(a),
                                        _content(b) + " (changed, not just appended to)"))
    rest_was = dict(_flatten({k: v for k, v in was.items() if k != "inputs"}))
    rest_now = dict(_flatten({k: v for k, v in now.items() if k != "inputs"}))
    diffs.extend(Difference(key, rest_was.get(key), rest_now.get(key))
                 for key in sorted(set(rest_was) | set(rest_now))
                 if rest_was.get(key) != rest_now.get(key))
    return diffs


def _content(fp: Mapping[str, Any]) -> str:
    return f"{fp.get('size')} bytes, sha256 {str(fp.get('sha256'))[:12]}"
