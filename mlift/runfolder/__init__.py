"""The run-folder component: identity, resume, records on disk, the ledger, the run skeleton.

Every command that writes a run folder — ``run``, ``filter``, both
baselines, ``requests`` (and later batch, review labels, eval) — goes
through this package, so a folder means the same thing whichever command
made it (DESIGN.md §3.5b):

* :class:`RunFolder` — open (refusing another identity) or load a folder; scan
  what is finished; move provider-failure rejects aside for retry;
* :class:`Run` — one invocation: ledger entry, writer thread, scheduler,
  budget stop, ``run.json``;
* :mod:`~mlift.runfolder.identity` — input fingerprints and identity diffs;
* :mod:`~mlift.runfolder.ledger` — the cumulative ledger of every invocation.
"""

from __future__ import annotations

from typing import Any

from mlift.providers.base import Endpoint
from mlift.runfolder.folder import GENERATIONS, MANIFEST, RETRIED, RUN, Finished, RunFolder
from mlift.runfolder.identity import Difference, compare, fingerprint, fingerprints
from mlift.runfolder.ledger import LEDGER, Ledger, merge_snapshots
from mlift.runfolder.run import Run


def endpoint_identity(endpoint: Endpoint) -> dict[str, Any]:
    """What of an endpoint changes the answers beyond its ``NAME:MODEL`` spec: its kind of API.

    Not its base URL: another replica, proxy or a corrected ``--base-url`` serves
    the same model (a run whose every call failed at a wrong URL must be able to
    finish at the right one). Nor limits, keys or the transport. The model is
    in the spec, recorded beside this.
    """
    return {"kind": endpoint.kind}


__all__ = ["GENERATIONS", "LEDGER", "MANIFEST", "RETRIED", "RUN", "Difference", "Finished",
           "Ledger", "Run", "RunFolder", "compare", "endpoint_identity", "fingerprint",
           "fingerprints", "merge_snapshots"]
