"""Connection codecs the ledger relies on: jsonb in binary form (COPY needs it)."""

from __future__ import annotations

from typing import Any

import msgspec

_JSONB_VERSION = b"\x01"  # jsonb's binary wire format: a version byte, then the text
_encode = msgspec.json.Encoder(order="sorted").encode
_decode = msgspec.json.decode


def _enc(value: Any) -> bytes:
    return _JSONB_VERSION + _encode(value)


def _dec(data: bytes) -> Any:
    return _decode(data[1:])


async def init_connection(conn: Any) -> None:
    await conn.set_type_codec("jsonb", encoder=_enc, decoder=_dec, schema="pg_catalog", format="binary")
