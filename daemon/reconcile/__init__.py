"""reconcile layer (see DESIGN.md, Layers, and Data flow step 4): desired state into e-conomic.

- :mod:`daemon.reconcile.specs` — what a kind is: how its desired state is read from the log,
  how its live state is read, the pure plan, how it is written, what it depends on; and the one
  "map → state → plan" step every part below calls.
- :mod:`daemon.reconcile.customers`, :mod:`daemon.reconcile.projects`,
  :mod:`daemon.reconcile.entries` — the specs of the kinds; :mod:`daemon.reconcile.kinds` —
  the registry, in dependency order, that every part iterates.
- :mod:`daemon.reconcile.queueing` — the work queue: entity keys, per-key dedupe, due times
  (backoff), items waiting on a dependency, a fresh read travelling with its key.
- :mod:`daemon.reconcile.recording` — the outcome recorder: intents, applied, failures with
  backoff, parking, strays; :mod:`daemon.reconcile.reasons` — the accountant's wording;
  :mod:`daemon.reconcile.observers` — the observer port (alerts, metrics);
  :mod:`daemon.reconcile.hooks` — the test-only crash and wedge hooks.
- :mod:`daemon.reconcile.controls` — what a controller works with during a pass;
  :mod:`daemon.reconcile.admitting` — which queued keys go ahead (mapped, not parked,
  dependencies in e-conomic).
- :mod:`daemon.reconcile.controlling` — the controller of record kinds (customers, projects):
  read, plan, write only what differs, merge into the live record.
- :mod:`daemon.reconcile.invoices` — the invoice transfer: bulk draft entries
  (:mod:`~daemon.reconcile.transferring`), PDF on the voucher, booking; lookups
  (:mod:`~daemon.reconcile.finding`) before every create and whenever an outcome is unknown;
  :mod:`~daemon.reconcile.invoice_items` holds what they share.
- :mod:`daemon.reconcile.payments` — the payment kind, e-conomic -> Moment: each booked
  invoice's paid status, read from Moment first, set with ``PUT .../paymentStatus`` when it
  differs (the controllers of the other kinds write e-conomic; this one writes Moment).
- :mod:`daemon.reconcile.sweeping` — full and incremental sweeps that queue exactly the keys
  that differ, and report strays.
- :mod:`daemon.reconcile.planning` — ``moment-sync plan`` and ``GET /plan`` (read-only).
- :mod:`daemon.reconcile.statuses` — the ``entities`` and ``reconcile`` figures of ``/status``.
- :mod:`daemon.reconcile.running` — :class:`~daemon.reconcile.running.Reconciler`, the loops
  the app runs in its root task group, and the operator's retry, resync and reconcile-now.

Every outcome is an event in the log; the queue is the only state not in the log, and a
restart rebuilds it from the log. Nothing here imports the sandbox or the ops layer (alerts
and metrics arrive through the :class:`~daemon.reconcile.observers.Observer` the app passes).
"""
