"""ingest layer (see DESIGN.md, Layers, and Data flow step 1): Moment into the event log, and
e-conomic's books' facts that flow the other way.

- :mod:`daemon.ingest.normalizing` — Moment Structs -> facts and their idempotency keys; the one
  place that maps Moment's shapes to events (numbers checked, drafts dropped).
- :mod:`daemon.ingest.pdfs` — an invoice PDF streamed into memory (capped, checked) and stored
  once by SHA-256 in the log's blob store.
- :mod:`daemon.ingest.ingesting` — a fetched snapshot into the log: a fact only when content
  changed, gone, parked, invoice number conflicts; serialized per Moment object.
- :mod:`daemon.ingest.hinting` — the hint processor: follows committed hints, coalesces them
  per object, fetches with bounded concurrency, retries with backoff, parks after a bound, and
  re-queues hints not yet processed after a restart.
- :mod:`daemon.ingest.receiving` — the webhook receiver, ``POST /webhooks/moment/{token}``,
  202 once the hint is durable.
- :mod:`daemon.ingest.polling` — the ``lastModifiedDateFrom`` poller, full scans, ``resync``.
- :mod:`daemon.ingest.running` — the three as one unit for the root task group.
- :mod:`daemon.ingest.paying` — the paid status of the invoices the daemon booked: one filtered,
  paged read of their customer entries in e-conomic per round, appended as ``payment_observed``
  facts when they changed (the reconciler's payment kind takes them to Moment).

All three inputs (webhook, poll, resync) end in :class:`~daemon.ingest.ingesting.Ingestor`, so
they produce the same events. Nothing here imports the sandbox.
"""
