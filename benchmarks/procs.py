"""Processes the benchmarks start: the simulator, and measured client commands.

The simulator always runs as a separate ``mlift sim serve`` process on an
ephemeral loopback port, so the client's CPU and memory are measured alone.
A client command is measured with ``os.wait4``: wall time, user+system CPU
seconds and peak RSS of exactly that child.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PYTHON = sys.executable
MLIFT = [PYTHON, "-m", "mlift"]


class Sim:
    """``mlift sim serve`` in its own process; use as a context manager."""

    def __init__(self, *flags: str) -> None:
        self.flags = [str(f) for f in flags]
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Sim:
        cmd = [*MLIFT, "sim", "serve", "--host", "127.0.0.1", "--port", "0", *self.flags]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # "mlift sim: serving on http://127.0.0.1:PORT ..."
        if "serving on " not in line:
            self.__exit__()
            raise RuntimeError(f"simulator did not start: {line!r}")
        self.url = line.split("serving on ", 1)[1].split()[0]
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def api(self) -> str:
        return self.url + "/v1"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/stats", timeout=30) as resp:
            data: dict[str, Any] = json.load(resp)
        return data

    def reset(self) -> None:
        req = urllib.request.Request(self.url + "/stats/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=30):
            pass


@dataclass(frozen=True, slots=True)
class Measured:
    """One client run: exit code, wall seconds, CPU seconds, peak RSS in MiB."""

    returncode: int
    wall_s: float
    cpu_s: float
    rss_mib: float
    stderr: str


def measure(cmd: Sequence[str], *, env: dict[str, str] | None = None,
            timeout_s: float = 900.0) -> Measured:
    """Run ``cmd`` to completion and measure exactly that child process."""
    err_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"mlift-bench-{os.getpid()}.err"
    with err_path.open("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, **(env or {})})
        deadline = start + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
            time.sleep(0.02)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read()
    err_path.unlink(missing_ok=True)
    return Measured(proc.returncode, wall, usage.ru_utime + usage.ru_stime,
                    usage.ru_maxrss / 1024, text)
