"""A throw-away Debian 12 machine booted by ``systemd-nspawn --boot``, for the tests that run the
shipped units under a real systemd (issue 16).

What is cached, outside the repository, under ``~/.cache/moment-sync`` (``$XDG_CACHE_HOME``):
the Debian root that ``debootstrap`` builds (named after its package list, built once) and the
wheels of the project's pinned dependencies (named after the list, fetched once with pip). A
run boots the cached root with ``--volatile=overlay``: everything the run writes goes to a
tmpfs over it and is gone when the machine stops, so every run installs on a fresh machine.

How the machine is driven: the host here is itself a container whose PID 1 is not systemd, so
there is no ``systemd-machined`` to register with and ``machinectl shell`` or ``systemd-run
--machine`` cannot reach the machine (both go through the host's machined). The machine is
booted with ``--register=no --keep-unit`` instead, and every command enters all its namespaces
with ``nsenter --target <its PID 1> --all``: ``systemctl`` and ``journalctl`` there talk to the
machine's own systemd over its private socket, as an operator's shell on it would.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parents[2]
CACHE: Final = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "moment-sync"
SUITE: Final = "bookworm"
MIRROR: Final = "http://deb.debian.org/debian"
#: What the machine has besides debootstrap's minimal base: systemd as PID 1 with its bus, the
#: Python the README's venv is made from, curl to reach the sandboxes' admin pages and ss.
PACKAGES: Final = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "curl",
                   "iproute2")
#: The host's tools: systemd-nspawn (Debian: systemd-container), debootstrap, nsenter.
HOST_TOOLS: Final = {"systemd-nspawn": "systemd-container", "debootstrap": "debootstrap",
                     "nsenter": "util-linux"}
PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class MachineError(Exception):
    """The machine could not be built, booted or driven; the message says what and why."""


def why_not_here() -> str | None:
    """Why the machine cannot be had on this host, or ``None`` when it can (root with apt, as CI
    is: the missing tools are installed with apt-get)."""
    if sys.platform != "linux":
        return "systemd-nspawn needs Linux"
    if os.geteuid() != 0:
        return ("booting a Debian 12 machine with systemd-nspawn needs root (CI runs as root); "
                "run `sudo make systemd-test`")
    if shutil.which("apt-get") is None and any(shutil.which(t) is None for t in HOST_TOOLS):
        missing = ", ".join(t for t in HOST_TOOLS if shutil.which(t) is None)
        return f"{missing} not installed and no apt-get to install them (Debian or Ubuntu)"
    return None


def _run(argv: Sequence[str], *, what: str, timeout: float,
         env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(list(argv), capture_output=True, text=True, errors="replace",
                            timeout=timeout, env=env, cwd=cwd, check=False)
    if result.returncode != 0:
        raise MachineError(f"{what} failed (exit {result.returncode}): "
                           f"{(result.stdout + result.stderr).strip()[-3000:]}")
    return result.stdout


def install_host_tools() -> None:
    """apt-get the tools that are missing (the project's own files install what it needs)."""
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], what="apt-get update", timeout=600, env=env)
    _run(["apt-get", "install", "-y", "-qq", *missing], what=f"apt-get install {missing}",
         timeout=900, env=env)


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """One builder at a time for a cached thing (two test runs may start together)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def debian_root() -> Path:
    """The cached Debian 12 root, built by debootstrap on first use (about a minute)."""
    root = CACHE / f"debian12-root-{_digest(SUITE, *PACKAGES)}"
    with _locked("debian12-root"):
        if (root / "usr/lib/systemd/systemd").exists():
            return root
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
              str(partial), MIRROR], what=f"debootstrap {SUITE} into {partial}", timeout=900)
        shutil.rmtree(partial / "var/cache/apt/archives", ignore_errors=True)
        (partial / "etc/machine-id").write_text("")  # systemd makes one per boot
        partial.rename(root)
    return root


def dependencies() -> list[str]:
    """The project's pinned runtime dependencies, as pyproject.toml lists them."""
    with (REPO / "pyproject.toml").open("rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def wheelhouse() -> Path:
    """Wheels of the dependencies (and theirs), fetched once for this Python, which is the
    machine's (3.11 on Debian 12, x86-64): the machine has no network, so pip there installs
    from this folder alone."""
    deps = dependencies()
    house = CACHE / f"wheels-{_digest(*deps)}"
    with _locked("wheels"):
        if (house / ".complete").exists():
            return house
        shutil.rmtree(house, ignore_errors=True)
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
              "--dest", str(house), *deps],
             what="pip download of the dependencies' wheels", timeout=900)
        (house / ".complete").write_text("")
    return house


def build_wheel(dest: Path) -> Path:
    """The wheel of this checkout, as ``pip wheel --no-deps`` builds it: from a copy of what
    goes into it (setuptools builds in the source tree, whose ``build/`` may hold modules of an
    older checkout, and two runs at once would share it)."""
    dest.mkdir(parents=True, exist_ok=True)
    source = dest.parent / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "daemon", source / "daemon", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "schema.sql"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
          "--wheel-dir", str(dest), str(source)], what="building the wheel", timeout=300)
    shutil.rmtree(source)
    wheels = sorted(dest.glob("moment_sync-*.whl"))
    if len(wheels) != 1:
        raise MachineError(f"expected one moment_sync wheel in {dest}, found {wheels}")
    return wheels[0]


def unpack(wheels: Sequence[Path], dest: Path) -> Path:
    """The wheels unpacked into one folder, importable with ``PYTHONPATH=dest`` (what pip would
    install, without a venv or pip's time: for the sandboxes, which are not under test)."""
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(dest)
    return dest


def shell_block(markdown: Path, heading: str, index: int = 0) -> str:
    """The ``index``-th fenced ``bash`` block under ``heading`` (up to the next heading of the
    same or a higher level, outside code blocks) in ``markdown``."""
    level = len(heading.split(" ", 1)[0])
    blocks: list[list[str]] = []
    inside = False
    fence: str | None = None  # the opening line of the code block we are in
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if fence is None and line.startswith("```"):
            fence = line
            if inside and line == "```bash":
                blocks.append([])
        elif fence is not None and line == "```":
            fence = None
        elif fence is None and re.match(rf"#{{1,{level}}} ", line):
            inside = line == heading
        elif inside and fence == "```bash":
            blocks[-1].append(line)
    if len(blocks) <= index:
        raise MachineError(f"{markdown.name}, {heading!r}: no bash block #{index + 1}")
    return "\n".join(blocks[index]) + "\n"


class Completed:
    """A command's exit status and output, with a sentence for a failure message."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return (f"`{' '.join(self.argv)}` exited {self.returncode}\n--- stdout\n"
                f"{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}")


class Machine:
    """The booted machine. :meth:`boot` starts it; :meth:`run` runs a command on it;
    :meth:`journal_wait` waits for a journal entry; :meth:`stop` powers it off."""

    def __init__(self, root: Path, *, name: str, binds: dict[Path, str], log: Path) -> None:
        self.root = root
        self.name = name
        self.binds = binds
        self.log = log
        self._nspawn: subprocess.Popen[bytes] | None = None
        self.leader = 0

    def boot(self, timeout: float = 90.0) -> None:
        argv = ["systemd-nspawn", "--quiet", "--boot", "--private-network", "--register=no",
                "--keep-unit", "--volatile=overlay", "--console=pipe",
                f"--directory={self.root}", f"--machine={self.name}"]
        argv += [f"--bind-ro={host}:{inside}" for host, inside in self.binds.items()]
        with self.log.open("wb") as out:
            self._nspawn = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        self.leader = self._find_leader(deadline)
        # --wait returns once the boot is over (running, or degraded naming what failed)
        while True:
            state = self.run(["systemctl", "is-system-running", "--wait"],
                             timeout=max(1.0, deadline - time.monotonic()), check=False)
            if state.stdout.strip() in ("running", "degraded"):
                break
            if time.monotonic() > deadline or self._nspawn.poll() is not None:
                raise MachineError(f"the machine did not finish booting: {state}\n"
                                   f"{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)  # its bus is not up yet: systemctl cannot connect
        if state.stdout.strip() == "degraded":
            failed = self.run(["systemctl", "--failed", "--no-legend"], check=False).stdout
            raise MachineError(f"the machine booted degraded: {failed}")

    def _find_leader(self, deadline: float) -> int:
        assert self._nspawn is not None
        pid = self._nspawn.pid
        while time.monotonic() < deadline:
            if self._nspawn.poll() is not None:
                raise MachineError(f"systemd-nspawn exited {self._nspawn.returncode}: "
                                   f"{self.log.read_text(errors='replace')[-3000:]}")
            children = Path(f"/proc/{pid}/task/{pid}/children")
            with contextlib.suppress(OSError):
                for child in children.read_text().split():
                    if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                        return int(child)
            time.sleep(0.05)  # nspawn sets up the namespaces before it starts PID 1
        raise MachineError("systemd-nspawn started no systemd within the boot timeout")

    def argv(self, command: Sequence[str], *, user: str | None = None,
             env: dict[str, str] | None = None, cwd: str = "/") -> list[str]:
        """``command`` as run on the machine: in all its namespaces, with a clean environment."""
        environ = {"PATH": PATH, "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0",
                   "HOME": "/root", **(env or {})}
        # env -C, not nsenter --wd: that one changes directory before it enters the mount
        # namespace, and the process is left in a directory it cannot name
        prefix = ["nsenter", f"--target={self.leader}", "--all", "env", "-i", f"--chdir={cwd}",
                  *(f"{k}={v}" for k, v in environ.items())]
        if user is not None:
            prefix += ["runuser", "-u", user, "--"]
        return [*prefix, *command]

    def run(self, command: Sequence[str], *, check: bool = True, input: str | None = None,
            timeout: float = 60.0, user: str | None = None,
            env: dict[str, str] | None = None, cwd: str = "/") -> Completed:
        argv = self.argv(command, user=user, env=env, cwd=cwd)
        try:
            result = subprocess.run(argv, input=input, capture_output=True, text=True,
                                    errors="replace", timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise MachineError(f"`{' '.join(command)}` did not finish in {timeout:.0f} s "
                               f"on the machine") from exc
        done = Completed(command, result.returncode, result.stdout, result.stderr)
        if check and done.returncode != 0:
            raise MachineError(str(done))
        return done

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """``systemctl show`` of ``unit``: the properties asked for."""
        out = self.run(["systemctl", "show", unit, *(f"--property={p}" for p in properties)])
        return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)

    def http(self, method: str, url: str, body: Any = None, *,
             headers: dict[str, str] | None = None) -> Any:
        """A JSON request to a sandbox on the machine (its loopback is its own); the answer."""
        argv = ["curl", "--silent", "--show-error", "--fail-with-body", "-X", method, url]
        for k, v in (headers or {}).items():
            argv += ["-H", f"{k}: {v}"]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
        done = self.run(argv, input=None if body is None else json.dumps(body))
        return json.loads(done.stdout) if done.stdout.strip() else None

    def cursor(self) -> str:
        """Where the journal ends now: :meth:`journal_wait` looks only at what follows."""
        out = self.run(["journalctl", "--lines=1", "--output=json", "--quiet"]).stdout
        return str(json.loads(out.splitlines()[-1])["__CURSOR"])

    def journal(self, *, after: str | None = None, units: Sequence[str] = (),
                matches: Sequence[str] = ()) -> list[dict[str, Any]]:
        """The journal's entries (after ``after``; of ``units``; matching ``FIELD=value``
        ``matches``), as JSON objects."""
        argv = ["journalctl", "--output=json", "--quiet", "--no-pager"]
        argv += [f"--after-cursor={after}"] if after else []
        argv += [f"--unit={u}" for u in units]
        argv += list(matches)
        return [json.loads(line) for line in self.run(argv).stdout.splitlines() if line]

    def journal_wait(self, match: Callable[[dict[str, Any]], bool], *, after: str, what: str,
                     units: Sequence[str] = (), timeout: float = 30.0) -> dict[str, Any]:
        """The first journal entry after ``after`` that ``match``es, as it is written (``journalctl
        --follow``); fails with ``what`` and the last lines seen when none comes in time."""
        argv = self.argv(["journalctl", "--follow", "--output=json", "--quiet",
                          f"--after-cursor={after}", *(f"--unit={u}" for u in units)])
        seen: list[str] = []
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as follow:
            assert follow.stdout is not None
            try:
                with selectors.DefaultSelector() as sel:
                    sel.register(follow.stdout, selectors.EVENT_READ)
                    deadline = time.monotonic() + timeout
                    pending = b""
                    while (left := deadline - time.monotonic()) > 0:
                        if not sel.select(left):
                            break
                        chunk = os.read(follow.stdout.fileno(), 65536)
                        if not chunk:
                            break
                        *lines, pending = (pending + chunk).split(b"\n")
                        for line in lines:
                            entry = json.loads(line)
                            seen.append(f"{entry.get('_SYSTEMD_UNIT', '')}: {message(entry)}")
                            if match(entry):
                                return dict(entry)
            finally:
                follow.kill()
        tail = "\n".join(seen[-25:])
        raise AssertionError(f"{what}: not in the journal within {timeout:.0f} s; "
                             f"its last lines:\n{tail}")

    def stop(self, timeout: float = 30.0) -> None:
        """Power off (its services stop in order), or kill it when that takes too long."""
        if self._nspawn is None or self._nspawn.poll() is not None:
            return
        self._nspawn.send_signal(signal.SIGTERM)  # nspawn asks PID 1 to power off
        try:
            self._nspawn.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self._nspawn.pid, signal.SIGKILL)
            self._nspawn.wait(10)


def message(entry: dict[str, Any]) -> str:
    """An entry's MESSAGE as text (journalctl gives bytes that are not UTF-8 as a list)."""
    raw = entry.get("MESSAGE", "")
    return bytes(raw).decode(errors="replace") if isinstance(raw, list) else str(raw)


def logged(entry: dict[str, Any]) -> dict[str, Any]:
    """The daemon's JSON log line of ``entry`` as an object ({} for other lines)."""
    text = message(entry)
    if not text.startswith("{"):
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
