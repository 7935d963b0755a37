"""The ops layer (DESIGN.md, Layers): how the running daemon is watched and operated.

- :mod:`daemon.ops.providing` — the :class:`StatusProvider` port the daemon implements;
  :mod:`daemon.ops.answering` — the daemon's implementation of it.
- :mod:`daemon.ops.statusserver` — HTTP/1.1 on the status socket (:mod:`daemon.ops.binding`
  creates the socket or takes systemd's).
- :mod:`daemon.ops.asking` — the CLI's client for the status socket.
- :mod:`daemon.ops.rendering` — the answers (:mod:`daemon.core.reports`) as text.
- :mod:`daemon.ops.preflight` — the checks against e-conomic, and the loop that records them.
- :mod:`daemon.ops.observing` — reconcile outcomes to alerts and metrics; the gauges' loop.
- :mod:`daemon.ops.metrics` — Prometheus metrics on the daemon's own registry;
  :mod:`daemon.ops.exposing` — their ``GET /metrics`` over TCP (``[daemon] metrics_listen``).
- :mod:`daemon.ops.notifying` — sd_notify and the progress-gated watchdog.
- :mod:`daemon.ops.alerts`, :mod:`daemon.ops.alerting` — alert wording, and throttled mail.
- :mod:`daemon.ops.logging` — structlog setup.
"""
