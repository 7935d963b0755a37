"""Running the real daemon as a subprocess against both sandboxes, for the tests in this folder.

- :class:`Sandboxes` serves the e-conomic and Moment sandboxes on 127.0.0.1 from an event loop in
  a background thread, so that synchronous tests (and module-scoped fixtures) can drive
  subprocesses while the sandboxes answer. :meth:`Sandboxes.call` runs a function on that loop
  (the sandboxes' state is only ever touched from there).
- :func:`write_config` writes a config with short intervals and four secret files.
- :class:`Daemon` is ``python -m daemon run -c CONFIG`` with its stdout and stderr in files and a
  fake ``NOTIFY_SOCKET`` (a datagram socket bound by the test) that a reader thread drains as
  messages arrive, so the daemon never meets a full queue.
- :func:`cli` runs ``python -m daemon ARGS``; talking HTTP is :mod:`tests.daemon.speaking`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from daemon.sandbox import economic as economic_sandbox
from daemon.sandbox import moment as moment_sandbox
from tests.daemon.speaking import Reply, ask

REPO = Path(__file__).resolve().parent.parent.parent
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


#: Directories made by :func:`short_dir`, removed when the test session ends (conftest.py).
MADE_DIRS: list[Path] = []


def short_dir(prefix: str) -> Path:
    """A fresh directory under /tmp: AF_UNIX paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    MADE_DIRS.append(path)
    return path


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str,
               every: float = 0.05) -> None:
    """Poll ``predicate`` until it holds; fail saying ``what`` did not happen in time."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


# --- sandboxes -----------------------------------------------------------------------------


class Sandboxes:
    """Both sandboxes on a background event loop; a context manager."""

    def __init__(self, *, economic: Mapping[str, Any] | None = None,
                 moment: Mapping[str, Any] | None = None,
                 customers: int = 4, projects: int = 2, invoices: int = 3) -> None:
        self._economic_kwargs = dict(economic or {})
        self._moment_kwargs = dict(moment or {})
        self._counts = (customers, projects, invoices)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="sandboxes", daemon=True)
        self._stack = contextlib.AsyncExitStack()
        self._economic: economic_sandbox.EconomicSandbox | None = None
        self._moment: moment_sandbox.MomentSandbox | None = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    @property
    def economic(self) -> economic_sandbox.EconomicSandbox:
        assert self._economic is not None, "the sandboxes are not running"
        return self._economic

    @property
    def moment(self) -> moment_sandbox.MomentSandbox:
        assert self._moment is not None, "the sandboxes are not running"
        return self._moment

    def run(self, coro: Awaitable[T], *, timeout: float = 30.0) -> T:
        """Await ``coro`` on the sandboxes' loop and return its result."""
        async def wrapped() -> T:
            return await coro
        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` on the sandboxes' loop (their state belongs to that thread)."""
        async def wrapped() -> T:
            return fn()
        return self.run(wrapped())

    async def _start(self) -> None:
        self._economic = await self._stack.enter_async_context(
            economic_sandbox.EconomicSandbox.running(**self._economic_kwargs))
        self._moment = await self._stack.enter_async_context(
            moment_sandbox.MomentSandbox.running(**self._moment_kwargs))
        customers, projects, invoices = self._counts
        if customers:
            self._moment.populate(customers=customers, projects=projects, invoices=invoices,
                                  seed=1)

    def __enter__(self) -> Sandboxes:
        self._thread.start()
        try:
            self.run(self._start())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        with contextlib.suppress(Exception):
            self.run(self._stack.aclose(), timeout=60.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def economic_requests(self) -> list[economic_sandbox.Served]:
        return self.call(lambda: list(self.economic.served))


# --- config --------------------------------------------------------------------------------


@dataclass
class Setup:
    """Where one daemon keeps everything: state, socket, config, secrets."""

    root: Path
    config: Path
    socket: Path
    listen_port: int
    webhook_token: str
    secrets: dict[str, str] = field(default_factory=dict)

    @property
    def db(self) -> Path:
        return self.root / "state" / "events.db"

    def webhook_url(self, token: str | None = None) -> str:
        return (f"http://127.0.0.1:{self.listen_port}/webhooks/moment/"
                f"{self.webhook_token if token is None else token}")


def config_text(setup: Setup, sb: Sandboxes, *, extra: str = "") -> str:
    s = setup.root / "secrets"
    return f"""
[daemon]
state_dir = "{setup.root / 'state'}"
status_socket = "{setup.socket}"
listen = "127.0.0.1:{setup.listen_port}"
log_format = "json"

[moment]
api_url = "{sb.moment.api_url}"
company = "{sb.moment.company}"
api_key_file = "{s / 'moment-api-key'}"
webhook_token_file = "{s / 'webhook-token'}"
poll_interval = "2s"
full_scan_interval = "1h"

[economic]
rest_url = "{sb.economic.rest_url}"
apis_url = "{sb.economic.apis_url}"
app_secret_token_file = "{s / 'economic-app'}"
agreement_grant_token_file = "{s / 'economic-grant'}"
reconcile_interval = "2s"
full_reconcile_interval = "1h"
{extra}
"""


def write_config(sb: Sandboxes, *, prefix: str = "ms-", webhook_token: str | None = None,
                 economic_app: str | None = None, economic_grant: str | None = None,
                 moment_api_key: str | None = None, extra: str = "",
                 economic_webhook_token: str | None = None) -> Setup:
    """A config for ``sb`` with the sandboxes' own tokens unless others are given; with
    ``economic_webhook_token``, e-conomic webhooks to the daemon's own listener (the sandbox
    takes ``http://`` on loopback)."""
    root = short_dir(prefix)
    webhook_token = webhook_token or "hook-" + uuid.uuid4().hex
    secrets = root / "secrets"
    secrets.mkdir(mode=0o700)
    values = {
        "economic-app": sb.economic.app_secret_token if economic_app is None else economic_app,
        "economic-grant": (sb.economic.agreement_grant_token if economic_grant is None
                           else economic_grant),
        "moment-api-key": sb.moment.api_key if moment_api_key is None else moment_api_key,
        "webhook-token": webhook_token,
    }
    if economic_webhook_token is not None:
        values["economic-webhook-token"] = economic_webhook_token
    for name, value in values.items():
        (secrets / name).write_text(value + "\n")
        (secrets / name).chmod(0o600)
    setup = Setup(root=root, config=root / "config.toml", socket=root / "status.sock",
                  listen_port=free_port(), webhook_token=webhook_token, secrets=values)
    if economic_webhook_token is not None:
        extra = (f'webhook_url = "http://127.0.0.1:{setup.listen_port}"\n'
                 f'webhook_token_file = "{secrets / "economic-webhook-token"}"\n{extra}')
    setup.config.write_text(config_text(setup, sb, extra=extra))
    return setup


# --- the status socket ---------------------------------------------------------------------


def in_sync(daemon: Daemon) -> dict[str, Any]:
    """Wait until every kind is desired, in sync and nothing is pending; the status then."""
    seen: list[dict[str, Any]] = []

    def converged() -> bool:
        status: dict[str, Any] = daemon.ask("GET", "/status").json()
        seen[:] = [status]
        return all(c["desired"] > 0 and c["in_sync"] == c["desired"] and c["pending"] == 0
                   for c in status["entities"].values())

    wait_until(converged, timeout=30, what="the daemon to bring e-conomic in sync")
    return seen[0]


# --- subprocesses --------------------------------------------------------------------------


def clean_environ(**extra: str) -> dict[str, str]:
    """The test's environment without anything that would steer the daemon, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MOMENT_SYNC_", "NOTIFY_", "WATCHDOG_", "LISTEN_"))
           and k not in ("CREDENTIALS_DIRECTORY",)}
    env.update(extra)
    return env


def cli(*args: str, env: Mapping[str, str] | None = None,
        timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``python -m daemon ARGS``; its output as text."""
    return subprocess.run([sys.executable, "-m", "daemon", *args], cwd=REPO,
                          env=clean_environ(**(env or {})), capture_output=True, text=True,
                          timeout=timeout, check=False)


class Daemon:
    """``python -m daemon run -c CONFIG`` under a fake ``NOTIFY_SOCKET``."""

    def __init__(self, setup: Setup, *, watchdog_usec: int | None = 2_000_000,
                 watchdog_pid: str | None = None, env: Mapping[str, str] | None = None) -> None:
        """``watchdog_pid``: ``None`` leaves ``WATCHDOG_PID`` unset, ``"self"`` sets it to the
        daemon's own pid (as systemd does), anything else is set as given."""
        self.setup = setup
        self.notify_path = setup.root / "notify.sock"
        self.stdout_path = setup.root / "daemon.stdout"
        self.stderr_path = setup.root / "daemon.stderr"
        self.messages: list[tuple[float, str]] = []
        extra = {"NOTIFY_SOCKET": str(self.notify_path), **(env or {})}
        if watchdog_usec is not None:
            extra["WATCHDOG_USEC"] = str(watchdog_usec)
        if watchdog_pid is not None and watchdog_pid != "self":
            extra["WATCHDOG_PID"] = watchdog_pid
        self._own_pid = watchdog_pid == "self"
        self._env = clean_environ(**extra)
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._closing = threading.Event()
        self._arrived = threading.Condition()
        self._next = 0  # index in :attr:`messages` of the next one :meth:`receive` returns
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        if self._sock is None:
            with contextlib.suppress(FileNotFoundError):
                self.notify_path.unlink()
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.bind(str(self.notify_path))
            self._sock.settimeout(0.1)  # how soon the reader notices close()
            self._closing.clear()
            self._reader = threading.Thread(target=self._read, args=(self._sock,),
                                            name="notify-reader", daemon=True)
            self._reader.start()
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            command = [sys.executable, "-m", "daemon", "run", "-c", str(self.setup.config)]
            if self._own_pid:  # the shell's pid is the daemon's once it execs
                command = ["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$0" "$@"', *command]
            self.proc = subprocess.Popen(command, cwd=REPO, env=self._env, stdout=out,
                                         stderr=err, stdin=subprocess.DEVNULL)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _read(self, sock: socket.socket) -> None:
        """Collect every notify datagram as it arrives, as systemd does: a reader that only
        reads while a test waits lets the socket's queue (``net.unix.max_dgram_qlen``, 10)
        fill, and the daemon's nonblocking sends then fail."""
        while not self._closing.is_set():
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:  # closed under us
                return
            with self._arrived:
                self.messages.append((time.monotonic(), data.decode()))
                self._arrived.notify_all()

    def receive(self, timeout: float) -> str | None:
        """The next notify datagram not yet returned, waiting up to ``timeout`` seconds for
        one (all of them are kept in :attr:`messages`)."""
        assert self._sock is not None
        with self._arrived:
            if not self._arrived.wait_for(lambda: self._next < len(self.messages),
                                          timeout=max(timeout, 0.0)):
                return None
            text = self.messages[self._next][1]
            self._next += 1
            return text

    def wait_for(self, field_: str, *, timeout: float = 30.0) -> str:
        """Read notify datagrams until one carries the line ``field_`` (``READY=1``, ...)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {field_} within {timeout:g}s; got "
                                     f"{[m for _t, m in self.messages]}; {self.tail()}")
            if self.proc is not None and self.proc.poll() is not None:
                # the process is gone: read what it left, then give up
                message = self.receive(0.05)
                if message is None:
                    raise AssertionError(f"the daemon exited ({self.proc.returncode}) before "
                                         f"{field_}; {self.tail()}")
            else:
                message = self.receive(min(left, 0.5))
            if message is not None and field_ in message.split("\n"):
                return message

    def drain(self, seconds: float) -> list[str]:
        """Every notify datagram received during the next ``seconds``."""
        got: list[str] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None:
                got.append(message)
        return got

    def ask(self, method: str, target: str) -> Reply:
        return ask(self.setup.socket, method, target)

    def signal(self, signum: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, *, timeout: float = 30.0) -> int:
        """SIGTERM and wait; the exit code (SIGKILL after ``timeout``, which fails tests)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the daemon did not stop within {timeout:g}s; "
                                 f"{self.tail()}") from None

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def close(self) -> None:
        """Kill the process if it still runs; close the notify socket."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._sock is not None:
            self._closing.set()
            if self._reader is not None:
                self._reader.join(timeout=5)
            self._sock.close()
            self._sock = None

    def output(self) -> bytes:
        """Everything the daemon wrote to stdout and stderr so far."""
        return self.stdout_path.read_bytes() + self.stderr_path.read_bytes()

    def tail(self, lines: int = 15) -> str:
        text = self.output().decode(errors="replace").splitlines()
        return "daemon output:\n" + "\n".join(text[-lines:])


@contextlib.contextmanager
def running(setup: Setup, **kwargs: Any) -> Iterator[Daemon]:
    """A started daemon that has sent ``READY=1``; killed on the way out if still alive."""
    daemon = Daemon(setup, **kwargs).start()
    try:
        daemon.wait_for("READY=1")
        yield daemon
    finally:
        daemon.close()


def start_on_a_taken_port(setup: Setup, variable: str) -> tuple[int, str]:
    """Start a daemon whose address in the environment ``variable`` (a ``host:port`` setting)
    is held by another socket, and wait for it to exit 1; returns the port and its output."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        daemon = Daemon(setup, env={variable: f"127.0.0.1:{port}"}).start()
        try:
            assert daemon.wait(timeout=60) == 1
        finally:
            daemon.close()
    return port, daemon.output().decode()
