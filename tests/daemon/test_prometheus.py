"""A real Prometheus server (Debian's package, unpacked by ``make test``) scrapes a running
daemon's ``[daemon] metrics_listen``, with the shipped alerting rules loaded, and its HTTP API
answers a query with the daemon's series. And a ``metrics_listen`` that cannot be bound stops
the start with a sentence naming it."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests import tools
from tests.conftest import REPO
from tests.daemon import harness

pytestmark = pytest.mark.slow

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback, http)
        return json.loads(response.read())


def _query(port: int, promql: str) -> list[dict[str, Any]]:
    answer = _get(f"http://127.0.0.1:{port}/api/v1/query?"
                  + urllib.parse.urlencode({"query": promql}))
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


@pytest.fixture
def prometheus_bin() -> str:
    return str(tools.prometheus_or_skip("prometheus"))


@pytest.fixture
def scraped_daemon(sandboxes: harness.Sandboxes) -> Iterator[tuple[harness.Daemon, int]]:
    setup = harness.write_config(sandboxes, prefix="ms-prom-")
    port = harness.free_port()
    daemon = harness.Daemon(setup, env={
        "MOMENT_SYNC_DAEMON_METRICS_LISTEN": f"127.0.0.1:{port}"}).start()
    try:
        daemon.wait_for("READY=1")
        yield daemon, port
    finally:
        daemon.stop()
        daemon.close()


def test_prometheus_scrapes_the_daemon(prometheus_bin: str,
                                       scraped_daemon: tuple[harness.Daemon, int]) -> None:
    daemon, metrics_port = scraped_daemon
    harness.in_sync(daemon)
    root = harness.short_dir("ms-prometheus-")
    web_port = harness.free_port()
    config = root / "prometheus.yml"
    config.write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {RULES}
scrape_configs:
  - job_name: moment-sync
    static_configs:
      - targets: ["127.0.0.1:{metrics_port}"]
""")
    with (root / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(
            [prometheus_bin, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
             f"--web.listen-address=127.0.0.1:{web_port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        target = f"127.0.0.1:{metrics_port}"
        appended: list[dict[str, Any]] = []

        def scraped() -> bool:
            assert server.poll() is None, (root / "prometheus.log").read_text()
            try:
                appended[:] = _query(web_port, 'moment_sync_events_appended_total'
                                               '{job="moment-sync"}')
            except OSError:  # not listening yet
                return False
            return bool(appended)

        harness.wait_until(scraped, timeout=30, what="Prometheus to scrape the daemon",
                           every=0.2)
        assert {series["metric"]["instance"] for series in appended} == {target}
        types = {series["metric"]["type"] for series in appended}
        assert "customer_upserted" in types, types
        # the daemon's own numbers, as the daemon renders them on its socket
        own = daemon.ask("GET", "/metrics").body.decode()
        assert "moment_sync_economic_daily_call_budget 50000.0" in own
        [budget] = _query(web_port, "moment_sync_economic_daily_call_budget")
        assert budget["value"][1] == "50000"
        [up] = _query(web_port, 'up{job="moment-sync"}')
        assert (up["metric"]["instance"], up["value"][1]) == (target, "1")
        # the shipped rules are loaded, and a healthy daemon fires none of them
        groups = _get(f"http://127.0.0.1:{web_port}/api/v1/rules")["data"]["groups"]
        assert [g["name"] for g in groups] == ["moment-sync"]
        assert all(rule["health"] != "err" for rule in groups[0]["rules"]), groups
        assert _query(web_port, "ALERTS") == []
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_metrics_address_in_use_stops_the_start(sandboxes: harness.Sandboxes) -> None:
    setup = harness.write_config(sandboxes, prefix="ms-prom-")
    port, output = harness.start_on_a_taken_port(setup, "MOMENT_SYNC_DAEMON_METRICS_LISTEN")
    assert f"daemon.metrics_listen: cannot listen on 127.0.0.1:{port}" in output
    assert not setup.socket.exists()  # the status socket it had opened is gone again
