"""``[daemon] metrics_listen``: /metrics over TCP, nothing else, and a clear error when the
address cannot be had."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon import settings as config
from daemon.ops import exposing, metrics
from tests.daemon.harness import free_port

pytestmark = pytest.mark.anyio


async def test_serves_the_metrics_and_nothing_else() -> None:
    meter = metrics.Metrics()
    meter.set_parked("customer", 3)
    meter.webhook_answered("moment", 404)
    listener = exposing.MetricsListener(meter, config.Listen("127.0.0.1", free_port()))
    await listener.start()
    try:
        base = f"http://127.0.0.1:{listener.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == meter.content_type
                text = await response.text()
            for method, path, status in (("GET", "/status", 404), ("GET", "/parked", 404),
                                         ("POST", "/reconcile", 404), ("POST", "/metrics", 405),
                                         ("GET", "/", 404)):
                async with http.request(method, base + path) as response:
                    assert response.status == status, (method, path)
    finally:
        await listener.stop()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("moment_sync_parked_items", (("kind", "customer"),))] == 3
    assert samples[("moment_sync_webhook_requests_total",
                    (("source", "moment"), ("status", "404")))] == 1


async def test_healthz_answers_the_daemons_state_when_given() -> None:
    state = ["starting"]

    async def current() -> str:
        return state[0]

    listener = exposing.MetricsListener(metrics.Metrics(), config.Listen("127.0.0.1",
                                                                          free_port()),
                                        state=current)
    await listener.start()
    try:
        url = f"http://127.0.0.1:{listener.port}/healthz"
        async with aiohttp.ClientSession() as http:
            for now, status in (("starting", 503), ("running", 200), ("degraded", 200),
                                ("stopping", 503)):
                state[0] = now
                async with http.get(url) as response:
                    assert (response.status, await response.json()) == (status, {"state": now})
            async with http.post(url) as response:
                assert response.status == 405
    finally:
        await listener.stop()


async def test_an_address_in_use_is_a_sentence_naming_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        listener = exposing.MetricsListener(metrics.Metrics(), config.Listen("127.0.0.1", port))
        with pytest.raises(config.ListenError,
                           match=rf"^daemon.metrics_listen: cannot listen on 127.0.0.1:{port}: "
                                 r"\S"):
            await listener.start()
        await listener.stop()  # safe after a failed start


async def test_an_address_not_of_this_host_is_refused() -> None:
    # 192.0.2.0/24 is TEST-NET-1: never assigned to a host, so binding it fails
    listener = exposing.MetricsListener(metrics.Metrics(), config.Listen("192.0.2.1", 9108))
    with pytest.raises(config.ListenError,
                       match=r"^daemon.metrics_listen: cannot listen on 192.0.2.1:9108: "):
        await listener.start()
