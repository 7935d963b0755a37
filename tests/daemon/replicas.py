"""The real replication parts for the drill tests: moto's S3 server and Litestream (v0.3.13,
from the npm package ``@flydotio/litestream-linux-x64``; ``make test`` downloads it into
``~/.cache/moment-sync``, :data:`tests.tools.LITESTREAM`), run as Litestream runs beside
the daemon under systemd: through the shipped ``systemd/moment-sync-replicate`` with the shipped
``systemd/litestream.yml``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from http.client import HTTPConnection
from pathlib import Path

from daemon.ops import replicating
from tests import tools
from tests.daemon import harness

LITESTREAM = tools.LITESTREAM
UNITS = harness.REPO / "systemd"
ACCESS_KEY, SECRET_KEY = "drill-access-key", "drill-secret-key"


def request(method: str, port: int, path: str, *, timeout: float = 2.0) -> tuple[int, bytes]:
    """One plain HTTP request to 127.0.0.1:``port``: its status and body."""
    conn = HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def entry_point() -> Path:
    """The ``moment-sync`` this checkout installed (what ``MOMENT_SYNC`` points the scripts at)."""
    return Path(sys.executable).parent / "moment-sync"


def _end(proc: subprocess.Popen[bytes], *, grace: float) -> None:
    """SIGTERM ``proc`` if it still runs; SIGKILL it when it has not exited ``grace`` seconds
    later."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class S3:
    """``python -m moto.server`` on a loopback port: an S3-compatible store."""

    def __init__(self, root: Path) -> None:
        self.port = harness.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "moto.log"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        harness.wait_until(self._answers, timeout=30, what="moto's S3 server to answer")

    def _answers(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        try:
            request("GET", self.port, "/", timeout=1)
            return True
        except OSError:
            return False

    def create_bucket(self, name: str) -> None:
        status, body = request("PUT", self.port, f"/{name}", timeout=10)
        assert status == 200, body

    def close(self) -> None:
        _end(self.proc, grace=10)


class Litestream:
    """``systemd/moment-sync-replicate systemd/litestream.yml`` for one state directory, with
    the environment moment-sync-replica@NAME.service gives it."""

    def __init__(self, s3: S3, state_dir: Path, *, bucket: str, root: Path) -> None:
        self.metrics_port = harness.free_port()
        self.state_dir = state_dir
        self.config = UNITS / "litestream.yml"
        self.log = root / "litestream.log"
        self.env = harness.clean_environ(
            LITESTREAM=str(LITESTREAM), AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY, REPLICA_BUCKET=bucket, REPLICA_ENDPOINT=s3.url,
            REPLICA_REGION="us-east-1", REPLICA_NAME="acme", REPLICA_DB_DIR=str(state_dir),
            LITESTREAM_METRICS_PORT=str(self.metrics_port), MOMENT_SYNC=str(entry_point()))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def db(self) -> Path:
        return self.state_dir / "events.db"

    def start(self) -> Litestream:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(UNITS / "moment-sync-replicate"), str(self.config)], env=self.env,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def sample(self) -> replicating.Sample | None:
        try:
            status, body = request("GET", self.metrics_port, "/metrics")
        except OSError:
            return None
        return replicating.read_sample(body.decode(), str(self.db)) if status == 200 else None

    def caught_up(self) -> bool:
        """The replica holds all of the log Litestream has taken, and the log is quiet."""
        sample = self.sample()
        return sample is not None and sample.shadow is not None and \
            sample.replicas.get("s3") == sample.shadow

    def kill(self) -> None:
        """SIGKILL: the host died with it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            _end(self.proc, grace=20)

    def restore(self, output: Path) -> subprocess.CompletedProcess[str]:
        """``litestream restore -o OUTPUT``: the replica as it is now."""
        return subprocess.run(
            [str(LITESTREAM), "restore", "-config", str(self.config), "-o", str(output),
             str(self.db)], env=self.env, capture_output=True, text=True, timeout=60,
            check=False)

    def restore_from_replica(self, config: Path) -> subprocess.CompletedProcess[str]:
        """The shipped ``ExecStartPre=`` script: restore a missing log, then mark it."""
        return subprocess.run(
            [str(UNITS / "moment-sync-restore-from-replica"), str(config), str(self.config),
             str(self.db)], env=self.env, capture_output=True, text=True, timeout=90,
            check=False)

    def tail(self) -> str:
        return "litestream output:\n" + "\n".join(self.log.read_text(
            errors="replace").splitlines()[-15:])


def wait_replicated(litestream: Litestream, *, timeout: float = 30.0, quiet: float = 2.5) -> None:
    """Wait until the replica holds all of the log Litestream has taken, and has held it for
    ``quiet`` seconds: Litestream looks at the WAL once a second (its monitor interval), so a
    commit made just before the call is not yet in what it has taken, and "caught up" read at
    once would be read too early."""
    deadline = time.monotonic() + timeout
    since: float | None = None
    while True:
        now = time.monotonic()
        if litestream.caught_up():
            since = now if since is None else since
            if now - since >= quiet:
                return
        else:
            since = None
        if now > deadline:
            raise AssertionError(f"the replica did not catch up in {timeout:g}s; "
                                 f"{litestream.tail()}")
        time.sleep(0.2)
