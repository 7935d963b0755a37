"""Small, real PDF 1.4 documents for the Moment sandbox's invoice PDFs.

Guarantees: the output is a complete PDF 1.4 file (header, catalog, one A4 page, a Helvetica
text content stream, an info dictionary, a cross-reference table whose offsets are exact, a
trailer and ``%%EOF``), so any PDF reader opens it; the bytes depend only on the arguments (no
dates, no random ids), so the same invoice version always gives the same bytes. Text is encoded
as WinAnsi (cp1252); a character outside it becomes ``?``. No I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

PAGE_WIDTH: Final = 595
PAGE_HEIGHT: Final = 842
_LEFT: Final = 56
_TOP: Final = 780
_LEADING: Final = 18


def pdf_string(text: str) -> bytes:
    """``text`` as a PDF literal string ``(...)``: cp1252 bytes, with ``\\``, ``(``, ``)``
    and every byte outside printable ASCII written as an octal escape."""
    out = bytearray(b"(")
    for byte in text.encode("cp1252", errors="replace"):
        if byte in b"\\()":
            out += b"\\" + bytes([byte])
        elif 0x20 <= byte < 0x7F:
            out.append(byte)
        else:
            out += b"\\%03o" % byte
    out += b")"
    return bytes(out)


def render_pdf(*, title: str, heading: str, lines: Sequence[str]) -> bytes:
    """A one-page PDF showing ``heading`` in large type and then ``lines``, titled ``title``."""
    content = bytearray()
    content += b"BT\n/F1 20 Tf\n%d %d Td\n" % (_LEFT, _TOP)
    content += pdf_string(heading) + b" Tj\n"
    content += b"/F1 11 Tf\n0 -%d Td\n" % (_LEADING * 2)
    for line in lines:
        content += pdf_string(line) + b" Tj\n0 -%d Td\n" % _LEADING
    content += b"ET\n"

    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>" % (PAGE_WIDTH, PAGE_HEIGHT),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + bytes(content) + b"endstream",
        b"<< /Title " + pdf_string(title) + b" /Producer (moment-sync Moment sandbox) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\n" % (len(objects) + 1, len(objects))
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)
