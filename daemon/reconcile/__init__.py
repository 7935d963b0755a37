"""reconcile layer (see DESIGN.md, Layers, and Data flow step 4): desired state into e-conomic.

- :mod:`daemon.reconcile.queueing` — the work queue: entity keys, per-key dedupe, due times
  (backoff), items waiting on a dependency, a fresh read travelling with its key.
- :mod:`daemon.reconcile.outcomes` — the shared context; intents, failures with backoff,
  parking with a reason an accountant can act on; the test-only crash and wedge hooks.
- :mod:`daemon.reconcile.customers`, :mod:`daemon.reconcile.projects` — the controllers:
  read, plan (:mod:`daemon.core.plans`), write only what differs, merge into the live record.
- :mod:`daemon.reconcile.invoices` — the invoice transfer: bulk draft entries, PDF on the
  voucher, booking; lookups whenever an earlier outcome is unknown.
- :mod:`daemon.reconcile.sweeping` — full and incremental sweeps that queue exactly the keys
  that differ, and report strays.
- :mod:`daemon.reconcile.planning` — ``moment-sync plan`` and ``GET /plan`` (read-only).
- :mod:`daemon.reconcile.statuses` — the ``entities`` and ``reconcile`` figures of ``/status``.
- :mod:`daemon.reconcile.running` — :class:`~daemon.reconcile.running.Reconciler`, the loops
  the app runs in its root task group, and the operator's retry, resync and reconcile-now.

Every outcome is an event in the log; the queue is the only state not in the log, and a
restart rebuilds it from the log. Nothing here imports the sandbox or the ops layer (alerts
and metrics arrive through the :class:`~daemon.reconcile.outcomes.Observer` the app passes).
"""
