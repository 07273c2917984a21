"""Versioned prompt files: load and validate, render (pure), hash, draw, lock.

A prompt is data: one TOML file per (stage, task, version) at
``<stage>/<task>/v<N>.toml`` under a prompt folder (the bundled ``prompts/``
folder, shipped inside the wheel as ``mlift._prompts``, plus any ``--prompts
DIR``). Each file declares its variables; loading checks that the message and
routing-hint (``sim``) placeholders are exactly the declared ones, so a typo
fails at load time, not after a thousand paid requests. A prompt whose output
is JSON may declare the JSON Schema of its answer (``[schema]``), which
providers send where the endpoint can enforce it.

The content hash (sha256 of the canonical JSON of the parsed file, so comments
and layout do not count) goes into the cache key and onto every output row via
``PromptTemplate.ref``. ``prompts.lock`` records the hash of every released
version; editing one without adding ``v<N+1>.toml`` is what ``check_lock``
reports. ``instruct/styles.toml`` holds the styles and length hints drawn with
each instruction prompt; it is versioned and locked the same way.
"""

from mlift.prompts.load import (
    bundled_dir,
    canonical_hash,
    load_prompts,
    parse_style_data,
    parse_template,
)
from mlift.prompts.lock import (
    LockProblem,
    check_lock,
    lock_problems,
    read_lock,
    write_lock,
)
from mlift.prompts.model import (
    CONTEXT_SUFFIX,
    LOCK_NAME,
    OUTPUTS,
    STAGES,
    STYLES_ID,
    Choice,
    Draw,
    PromptLibrary,
    PromptTemplate,
    StyleData,
)
from mlift.prompts.render import (
    check_variables,
    draw,
    placeholders,
    render,
    route,
)

__all__ = [
    "CONTEXT_SUFFIX",
    "LOCK_NAME",
    "OUTPUTS",
    "STAGES",
    "STYLES_ID",
    "Choice",
    "Draw",
    "LockProblem",
    "PromptLibrary",
    "PromptTemplate",
    "StyleData",
    "bundled_dir",
    "canonical_hash",
    "check_lock",
    "check_variables",
    "draw",
    "load_prompts",
    "lock_problems",
    "parse_style_data",
    "parse_template",
    "placeholders",
    "read_lock",
    "render",
    "route",
    "write_lock",
]
