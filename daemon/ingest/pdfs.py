"""An invoice PDF from Moment into the blob store: streamed, capped, checked, hashed.

What it does: reads the PDF stream of one invoice into memory, refusing it as soon as it passes
:data:`MAX_PDF_BYTES` (or when Moment announces more than that), checks that it starts with
``%PDF-``, and stores it with :meth:`~daemon.store.eventlog.EventLog.put_blob`, which keeps each
content once under its SHA-256.

Guarantees: nothing is stored unless the whole body was read, is within the cap and looks like
a PDF; a refusal is :class:`PdfRefused` with a reason a person can act on (retrying the same
bytes cannot help); Moment's retryable errors pass through unchanged for the caller's backoff.
Never holds more than the cap plus one chunk in memory.
"""

from __future__ import annotations

from typing import Final

import msgspec

from daemon.moment import client as moment_client
from daemon.moment import errors
from daemon.store import eventlog

MAX_PDF_BYTES: Final = 20 * 1024 * 1024
PDF_MAGIC: Final = b"%PDF-"


class PdfRefused(Exception):
    """The invoice's PDF cannot be taken; ``str()`` is the reason for a person."""


class StoredPdf(msgspec.Struct, frozen=True):
    sha256: str
    size: int


async def fetch(client: moment_client.MomentClient, invoice_id: int, *,
                max_bytes: int = MAX_PDF_BYTES) -> bytes:
    """The PDF's bytes, or :class:`PdfRefused`; retryable errors are raised as they are."""
    limit_mb = max_bytes / (1024 * 1024)
    try:
        async with client.invoice_pdf(invoice_id) as stream:
            if stream.content_length is not None and stream.content_length > max_bytes:
                raise PdfRefused(
                    f"the PDF of Moment invoice id {invoice_id} is {stream.content_length} bytes, "
                    f"over the {limit_mb:g} MiB the daemon accepts: make it smaller in Moment, "
                    f"then resync the invoice")
            chunks: list[bytes] = []
            size = 0
            async for chunk in stream:
                size += len(chunk)
                if size > max_bytes:
                    raise PdfRefused(
                        f"the PDF of Moment invoice id {invoice_id} is over the {limit_mb:g} MiB "
                        f"the daemon accepts: make it smaller in Moment, then resync the invoice")
                chunks.append(chunk)
    except errors.TerminalError as exc:
        raise PdfRefused(f"Moment would not hand out the PDF of invoice id {invoice_id} "
                         f"({exc}); check the invoice in Moment, then resync it") from None
    data = b"".join(chunks)
    if not data.startswith(PDF_MAGIC):
        start = data[:8]
        raise PdfRefused(f"what Moment sent as the PDF of invoice id {invoice_id} is not a PDF "
                         f"({len(data)} bytes starting {start!r}); check the invoice's PDF in "
                         f"Moment, then resync the invoice")
    return data


async def fetch_and_store(client: moment_client.MomentClient, log: eventlog.EventLog,
                          invoice_id: int, *, max_bytes: int = MAX_PDF_BYTES) -> StoredPdf:
    """Fetch, check and store the PDF (durable on return); the same bytes are stored once."""
    data = await fetch(client, invoice_id, max_bytes=max_bytes)
    digest = await log.put_blob(data, content_type="application/pdf")
    return StoredPdf(sha256=digest, size=len(data))
