"""Many agreements on one host: N = 50 daemons, as ``moment-sync@NAME`` would run them.

Each daemon is ``python -m daemon run -c etc/NAME.toml`` with what the template unit gives it:
its own state directory, status socket, webhook port and ``metrics_listen`` port, its four
secrets in a credentials directory (``$CREDENTIALS_DIRECTORY``, as ``LoadCredential=`` makes
it), ``$WATCHDOG_USEC`` of the unit's ``WatchdogSec=60s`` and a notify socket of its own; the
intervals are config.example.toml's defaults. The daemon's modules are byte-compiled first, as
an installed package's are (pip compiles them at install; this checkout is an editable install
and ``$PYTHONDONTWRITEBYTECODE`` may be set, which would make every daemon compile ~90 modules
from source at each start). Each runs against its own agreement: an
e-conomic sandbox and a Moment sandbox (company ``agreement-NN``, with 10 customers, 5 projects
and 8 invoices) of its own, all served from this process's event loop, each on its own port
(one sandbox serves one agreement or company). The sandboxes stand in for services on other
hosts, so this process runs at nice 19 and, as root, puts each daemon back at nice 0: the
daemons do not wait for the sandboxes' CPU, and the sandboxes answer when the daemons leave
them room (which slows the first syncs on a busy host, not the start).

``run()`` returns:
- ``fleet.start_s``: from spawning all N at once (as systemd does at boot) until the last one
  said ``READY=1``, as stamped by the daemon's ``running`` log line (goal <= 30 s);
  ``fleet.ready_cpu_s``: the CPU time (user + system) a daemon used until its ``READY=1``,
  mean over the fleet; on a host of C idle cores start_s is about N * ready_cpu_s / C,
  whatever else ran when this bench did; ``fleet.start_host_share``: the part of the CPU the
  host spent (all cores) from the spawn until the last READY that went to starting the
  daemons (near 1 on a host of their own; the rest went to the sandboxes, the first syncs of
  the daemons already READY, and other work);
- ``fleet.converge_s``: from the spawn until every daemon's ``/status`` shows every kind in
  sync with nothing pending;
- ``fleet.cpu_ms_per_call``: the daemons' CPU time from READY to convergence (their first
  sync: reads, writes, PDFs, bookings) divided by the calls they made to e-conomic and Moment
  in it: what a day's work costs, since e-conomic bounds an agreement's calls;
- ``fleet.rss_mb_per_daemon``: the mean resident memory (VmRSS) of a daemon, idle after
  convergence (goal <= 60 MB); ``fleet.rss_mb_max`` the largest; ``fleet.pss_mb_per_daemon``
  the proportional share (Pss: shared pages split among the processes that map them), which is
  what the host pays per daemon;
- ``fleet.idle_cpu_pct``: CPU time (user + system) a daemon used over 60 s of idling after
  convergence, as a percentage of one core, mean over the fleet (goal <= 0.2 %);
  ``fleet.idle_cpu_pct_max`` the busiest one;
- ``fleet.load_1m``: the host's 1-minute load average just before the spawn, the other work on
  a shared machine (a start time means little without it).
"""

from __future__ import annotations

import asyncio
import compileall
import contextlib
import datetime as dt
import json
import os
import random
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp

from daemon.sandbox.economic import EconomicSandbox
from daemon.sandbox.moment import MomentSandbox

N: Final = int(os.environ.get("BENCH_FLEET_N", "50"))
IDLE_WINDOW_S: Final = 60.0
SETTLE_S: Final = 5.0
REPO: Final = Path(__file__).resolve().parent.parent
WATCHDOG_USEC: Final = 60_000_000  # the template unit's WatchdogSec=60s
CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
#: The sandboxes stand in for services on other hosts: they run at the lowest priority, the
#: daemons at the normal one (when the bench runs as root, which may raise a priority).
NICE_SANDBOXES: Final = 19
NICE_DAEMON: Final = 0


def _ports(count: int) -> list[int]:
    """``count`` ports that nothing listens on now, below the kernel's ephemeral range (as
    ports assigned per agreement would be): a port the kernel hands out for an outgoing
    connection, or to a listener on port 0, could be taken between now and a daemon's start."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    found: list[int] = []
    port = random.randrange(10_000, max(10_001, low - 4 * count))
    while len(found) < count:
        port += 1
        if port >= low:
            raise RuntimeError(f"no {count} free ports below {low}")
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
    return found


@dataclass
class Member:
    """One daemon of the fleet and the files the template unit would give it."""

    name: str
    root: Path
    economic: EconomicSandbox
    moment: MomentSandbox
    proc: asyncio.subprocess.Process | None = None
    notify: socket.socket | None = None
    ready_at: float | None = None
    ready_cpu_s: float = 0.0

    @property
    def config(self) -> Path:
        return self.root / "etc" / f"{self.name}.toml"

    @property
    def socket_path(self) -> Path:
        return self.root / "run" / self.name / "status.sock"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials" / self.name

    def write(self, *, listen: int, metrics: int) -> None:
        """The config and credentials ``moment-sync@NAME`` would find, with its webhook port
        ``listen`` and its ``metrics`` port."""
        state = self.root / "lib" / self.name
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.credentials.mkdir(parents=True, mode=0o700)
        secrets = {"moment-api-key": self.moment.api_key,
                   "moment-webhook-token": f"hook-{self.name}-7c1e",
                   "economic-app-secret-token": self.economic.app_secret_token,
                   "economic-agreement-grant-token": self.economic.agreement_grant_token}
        for credential, value in secrets.items():
            path = self.credentials / credential
            path.write_text(value + "\n")
            path.chmod(0o600)
        self.config.write_text(f"""
[daemon]
state_dir = "{state}"
status_socket = "{self.socket_path}"
listen = "127.0.0.1:{listen}"
metrics_listen = "127.0.0.1:{metrics}"
log_format = "json"

[moment]
api_url = "{self.moment.api_url}"
company = "{self.moment.company}"

[economic]
rest_url = "{self.economic.rest_url}"
apis_url = "{self.economic.apis_url}"
""")

    async def start(self) -> None:
        notify_path = self.root / "run" / f"{self.name}.notify"
        notify_path.parent.mkdir(parents=True, exist_ok=True)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(notify_path))
        self.notify.setblocking(False)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MOMENT_SYNC_", "NOTIFY_", "WATCHDOG_", "LISTEN_"))}
        env.update(CREDENTIALS_DIRECTORY=str(self.credentials), NOTIFY_SOCKET=str(notify_path),
                   WATCHDOG_USEC=str(WATCHDOG_USEC))
        log = (self.root / f"{self.name}.log").open("ab")
        with log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "daemon", "run", "-c", str(self.config), cwd=REPO,
                env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
        if os.getpriority(os.PRIO_PROCESS, 0) != NICE_DAEMON:
            with contextlib.suppress(PermissionError):  # only root may raise a priority
                os.setpriority(os.PRIO_PROCESS, self.proc.pid, NICE_DAEMON)

    async def listen(self) -> None:
        """Read the notify socket for as long as the daemon runs (as systemd does); note
        when ``READY=1`` came."""
        assert self.notify is not None
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.notify, 4096)
            if self.ready_at is None and "READY=1" in data.decode().split("\n"):
                self.ready_at = time.monotonic()
                assert self.proc is not None
                self.ready_cpu_s = _cpu_ticks(self.proc.pid) / CLK_TCK

    def running_logged_at(self) -> float:
        """The wall time of the daemon's ``running`` log line, written right after READY=1 (its
        own clock, so it does not depend on when this process got to read the notify
        socket)."""
        for line in (self.root / f"{self.name}.log").read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") == "running":
                stamp = str(entry["timestamp"]).replace("Z", "+00:00")
                return dt.datetime.fromisoformat(stamp).timestamp()
        raise RuntimeError(f"{self.name} said READY=1 but logged no 'running': {self.tail()}")

    def tail(self) -> str:
        path = self.root / f"{self.name}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS and Pss of ``pid``, in kB."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                found["rss"] = int(line.split()[1])
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                found["pss"] = int(line.split()[1])
    return found


def _host_busy_ticks() -> int:
    """CPU time the whole host spent busy (every core; not idle, not waiting for I/O)."""
    with open("/proc/stat") as stat:
        fields = [int(f) for f in stat.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # less idle and iowait


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


async def _in_sync(member: Member) -> bool:
    """Whether the daemon's ``/status`` shows every kind in sync with nothing pending."""
    connector = aiohttp.UnixConnector(path=str(member.socket_path))
    async with aiohttp.ClientSession(connector=connector) as unix, \
            unix.get("http://localhost/status") as response:
        status = await response.json()
    return all(c["desired"] > 0 and c["in_sync"] == c["desired"] and c["pending"] == 0
               for c in status["entities"].values())


@contextlib.asynccontextmanager
async def _agreements(root: Path) -> AsyncIterator[list[Member]]:
    async with contextlib.AsyncExitStack() as stack:
        members = []
        for n in range(N):
            name = f"agreement-{n:02d}"
            economic = await stack.enter_async_context(EconomicSandbox.running())
            moment = await stack.enter_async_context(
                MomentSandbox.running(company=name, api_key=f"moment-key-{name}"))
            moment.populate(customers=10, projects=5, invoices=8, seed=n + 1)
            members.append(Member(name=name, root=root, economic=economic, moment=moment))
        yield members


async def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="ms-fleet-", dir="/tmp") as tmp:
        root = Path(tmp)
        compileall.compile_dir(REPO / "daemon", quiet=1)
        os.setpriority(os.PRIO_PROCESS, 0, max(NICE_SANDBOXES, os.getpriority(os.PRIO_PROCESS, 0)))
        async with _agreements(root) as members:
            ports = _ports(2 * len(members))
            for n, member in enumerate(members):
                member.write(listen=ports[2 * n], metrics=ports[2 * n + 1])
            listeners: list[asyncio.Task[None]] = []
            try:
                load = os.getloadavg()[0]
                host_before = _host_busy_ticks()
                spawned, spawned_wall = time.monotonic(), time.time()
                for member in members:
                    await member.start()
                    listeners.append(asyncio.create_task(member.listen()))
                while any(m.ready_at is None for m in members):
                    for m in members:
                        assert m.proc is not None
                        if m.proc.returncode is not None:
                            raise RuntimeError(f"{m.name} exited: {m.tail()}")
                    if time.monotonic() - spawned > 300:
                        raise RuntimeError("not all daemons were READY within 300 s")
                    await asyncio.sleep(0.05)
                start_s = max(m.running_logged_at() for m in members) - spawned_wall
                host_busy_s = (_host_busy_ticks() - host_before) / CLK_TCK
                pending = {m.name: m for m in members}
                while pending:
                    for name, m in list(pending.items()):
                        if await _in_sync(m):
                            del pending[name]
                    if time.monotonic() - spawned > 600:
                        raise RuntimeError(f"not in sync after 600 s: {sorted(pending)}")
                    if pending:
                        await asyncio.sleep(0.5)
                converge_s = time.monotonic() - spawned
                sync_cpu_s = sum(_cpu_ticks(m.proc.pid) / CLK_TCK - m.ready_cpu_s
                                 for m in members if m.proc is not None)
                calls = sum(len(m.economic.served) + len(m.moment.requests) for m in members)
                await asyncio.sleep(SETTLE_S)
                pids = [m.proc.pid for m in members if m.proc is not None]
                memory = [_proc_status(pid) for pid in pids]
                before = [_cpu_ticks(pid) for pid in pids]
                await asyncio.sleep(IDLE_WINDOW_S)
                after = [_cpu_ticks(pid) for pid in pids]
                cpu = [100.0 * (b - a) / CLK_TCK / IDLE_WINDOW_S
                       for a, b in zip(before, after, strict=True)]
            finally:
                for m in members:
                    if m.proc is not None and m.proc.returncode is None:
                        m.proc.send_signal(signal.SIGTERM)
                for m in members:
                    if m.proc is not None:
                        try:
                            await asyncio.wait_for(m.proc.wait(), 60)
                        except TimeoutError:
                            m.proc.kill()
                            await m.proc.wait()
                for task in listeners:
                    task.cancel()
                for m in members:
                    if m.notify is not None:
                        m.notify.close()
    rss = [m["rss"] / 1024 for m in memory]
    pss = [m["pss"] / 1024 for m in memory]
    return {
        "fleet.start_s": start_s,
        "fleet.ready_cpu_s": sum(m.ready_cpu_s for m in members) / len(members),
        "fleet.start_host_share": sum(m.ready_cpu_s for m in members) / host_busy_s,
        "fleet.converge_s": converge_s,
        "fleet.cpu_ms_per_call": 1000.0 * sync_cpu_s / calls,
        "fleet.rss_mb_per_daemon": sum(rss) / len(rss),
        "fleet.rss_mb_max": max(rss),
        "fleet.pss_mb_per_daemon": sum(pss) / len(pss),
        "fleet.idle_cpu_pct": sum(cpu) / len(cpu),
        "fleet.idle_cpu_pct_max": max(cpu),
        "fleet.load_1m": load,
    }
