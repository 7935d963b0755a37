"""The ops layer (DESIGN.md, Layers): how the running daemon is watched and operated.

- :mod:`daemon.ops.providing` — the :class:`StatusProvider` port the daemon implements.
- :mod:`daemon.ops.statusserver` — HTTP/1.1 on the status socket (:mod:`daemon.ops.binding`
  creates the socket or takes systemd's).
- :mod:`daemon.ops.asking` — the CLI's client for the status socket.
- :mod:`daemon.ops.statuses`, :mod:`daemon.ops.rendering` — the answers as structs, and as text.
- :mod:`daemon.ops.metrics` — Prometheus metrics on the daemon's own registry.
- :mod:`daemon.ops.notifying` — sd_notify and the progress-gated watchdog.
- :mod:`daemon.ops.alerts`, :mod:`daemon.ops.alerting` — alert wording, and throttled mail.
- :mod:`daemon.ops.logging` — structlog setup.
"""
