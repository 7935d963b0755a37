"""The metrics registry: what the daemon reports, in text Prometheus parses."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from daemon.ops import metrics


def samples(registry: metrics.Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    parsed = text_string_to_metric_families(registry.render().decode())
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parsed for s in family.samples
    }


def test_every_metric_renders_and_parses() -> None:
    m = metrics.Metrics()
    m.event_appended("customer_upserted", 3)
    m.event_appended("applied")
    m.set_projection_lag(7)
    m.set_queue_depth("invoice", 12)
    m.set_parked("project", 2)
    m.economic_call("PUT", "/customers/10001", 200)
    m.economic_call("put", "/customers/10002?x=1", 200)
    m.economic_call("POST", "/journals/1/bookdraftentries", 429)
    m.economic_call("GET", "/Projects/3f2504e0-4f89-11d3-9a0c-0305e82c3301", None)
    m.set_rate_limit(used=120, limit=10000)
    m.set_calls_today(1450)
    m.drift_repaired("customer", 2)
    m.reconcile_succeeded(1_795_600_000.0)
    m.set_daily_call_budget(50000)
    m.webhook_answered("moment", 202)
    m.webhook_answered("moment", 202)
    m.webhook_answered("moment", 404)
    got = samples(m)
    p = "moment_sync_"
    assert got[(p + "events_appended_total", (("type", "customer_upserted"),))] == 3
    assert got[(p + "events_appended_total", (("type", "applied"),))] == 1
    assert got[(p + "projection_lag_events", ())] == 7
    assert got[(p + "queue_depth", (("kind", "invoice"),))] == 12
    assert got[(p + "queue_depth", (("kind", "customer"),))] == 0
    assert got[(p + "parked_items", (("kind", "project"),))] == 2
    assert got[(p + "economic_calls_total",
                (("endpoint", "PUT /customers/{n}"), ("status", "200")))] == 2
    assert got[(p + "economic_calls_total",
                (("endpoint", "POST /journals/{n}/bookdraftentries"), ("status", "429")))] == 1
    assert got[(p + "economic_calls_total",
                (("endpoint", "GET /Projects/{n}"), ("status", "error")))] == 1
    assert got[(p + "economic_rate_limited_total", ())] == 1
    assert got[(p + "economic_rate_limit_used", ())] == 120
    assert got[(p + "economic_rate_limit_limit", ())] == 10000
    assert got[(p + "economic_calls_today", ())] == 1450
    assert got[(p + "drift_repaired_total", (("kind", "customer"),))] == 2
    assert got[(p + "drift_repaired_total", (("kind", "invoice"),))] == 0
    assert got[(p + "last_successful_reconcile_timestamp_seconds", ())] == 1_795_600_000.0
    assert got[(p + "economic_daily_call_budget", ())] == 50000
    assert got[(p + "webhook_requests_total", (("source", "moment"), ("status", "202")))] == 2
    assert got[(p + "webhook_requests_total", (("source", "moment"), ("status", "404")))] == 1
    # the process's own figures, read from /proc at each render
    assert got[("process_resident_memory_bytes", ())] > 1_000_000
    assert got[("process_start_time_seconds", ())] > 1_600_000_000


def test_the_moment_limiter_series_follow_the_clients_totals() -> None:
    """The gauges are what the limiter shows now; the counters advance to the client's running
    totals of 429s and seconds waited, each counted once however often they are refreshed."""
    m = metrics.Metrics()
    p = "moment_sync_moment_"
    got = samples(m)
    assert [got[(p + name, ())] for name in ("rate_limited_total", "rate_limit_wait_seconds_total",
                                             "rate_limit_used", "rate_limit_limit", "paused")] \
        == [0, 0, 0, 0, 0]
    m.set_moment_rate_limit(used=499, limit=500, paused=True, rate_limited=2, waited_s=1.5)
    m.set_moment_rate_limit(used=499, limit=500, paused=True, rate_limited=2, waited_s=1.5)
    got = samples(m)
    assert [got[(p + name, ())] for name in ("rate_limited_total", "rate_limit_wait_seconds_total",
                                             "rate_limit_used", "rate_limit_limit", "paused")] \
        == [2, 1.5, 499, 500, 1]
    m.set_moment_rate_limit(used=3, limit=500, paused=False, rate_limited=3, waited_s=6.5)
    got = samples(m)
    assert [got[(p + name, ())] for name in ("rate_limited_total", "rate_limit_wait_seconds_total",
                                             "rate_limit_used", "rate_limit_limit", "paused")] \
        == [3, 6.5, 3, 500, 0]


def test_registries_are_separate_and_not_global() -> None:
    first, second = metrics.Metrics(), metrics.Metrics()
    first.set_calls_today(5)
    assert samples(second)[("moment_sync_economic_calls_today", ())] == 0
    assert REGISTRY.get_sample_value("moment_sync_economic_calls_today") is None


def test_kinds_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown kind 'vendor'"):
        metrics.Metrics().set_parked("vendor", 1)


def test_webhook_sources_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown webhook source 'github'"):
        metrics.Metrics().webhook_answered("github", 202)


def test_endpoint_template() -> None:
    assert metrics.endpoint_template("get", "/customers/1/invoices?skip=3") == \
        "GET /customers/{n}/invoices"
    assert metrics.endpoint_template("POST", "/draft-entries/bulk") == "POST /draft-entries/bulk"
