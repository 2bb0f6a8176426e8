"""One entry point for bank statement bytes: sniff the format, hand to the right parser.

parse_statement(data, max_bytes=...)   camt.053 / camt.054 (XML) or MT940, else UnsupportedStatement
read_limited(stream, max_bytes)        read an upload without ever holding more than max_bytes + 1
"""

from __future__ import annotations

from typing import BinaryIO

from reconciliation.camt import MAX_STATEMENT_BYTES, parse_camt
from reconciliation.errors import StatementTooLarge, UnsupportedStatement
from reconciliation.model import Statement
from reconciliation.mt940 import looks_like_mt940, parse_mt940

# Reads of an upload stream are this big; the guard checks after each.
READ_CHUNK = 1024 * 1024

_BOM = b"\xef\xbb\xbf"


def sniff(data: bytes) -> str:
    """``"camt"`` for XML, ``"mt940"`` for MT940, else ``UnsupportedStatement``."""
    head = data[:512].removeprefix(_BOM).lstrip()
    if head.startswith(b"<"):
        return "camt"
    if looks_like_mt940(data):
        return "mt940"
    shown = head[:20].decode("latin-1")
    raise UnsupportedStatement(f"neither camt XML nor MT940 (starts with {shown!r})")


def parse_statement(data: bytes, *, max_bytes: int = MAX_STATEMENT_BYTES) -> list[Statement]:
    """The statements in a camt.053 / camt.054 / MT940 file (see ``parse_camt`` and ``parse_mt940``)."""
    if len(data) > max_bytes:
        raise StatementTooLarge(len(data), max_bytes)
    if sniff(data) == "camt":
        return parse_camt(data, max_bytes=max_bytes)
    return parse_mt940(data, max_bytes=max_bytes)


def read_limited(stream: BinaryIO, max_bytes: int = MAX_STATEMENT_BYTES) -> bytes:
    """Read ``stream`` to the end, refusing (``StatementTooLarge``) as soon as it passes ``max_bytes``.

    For uploads: the caller never holds more than ``max_bytes`` + one chunk,
    however long the sender keeps sending.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(READ_CHUNK, max_bytes + 1 - size))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise StatementTooLarge(size, max_bytes)
        chunks.append(chunk)
