"""A lean HTTP/1.1 keep-alive client for the API benchmark's load.

httpx costs milliseconds of CPU per request: measured on the 2-core machine,
the bench process ran at 81% of a core while the server's workers were at 39%
and 6%, so the load generator, not the server, set the pace. This client
speaks just enough HTTP/1.1 (one connection, requests in turn, Content-Length
or chunked bodies) to keep its own cost out of the figures. Only for the
benchmark: the server it talks to is ours, on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

_encode = msgspec.json.encode
_decode = msgspec.json.decode


class Conn:
    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None

    async def post(self, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        """POST a JSON body; return (status, decoded JSON or None)."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        data = _encode(body)
        head = [f"POST {path} HTTP/1.1", f"Host: {self._host}:{self._port}", "Content-Type: application/json"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head.append(f"Content-Length: {len(data)}")
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        status_line = await self._reader.readline()
        if not status_line:
            await self.close()
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length: int | None = None
        chunked = False
        keep = True
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                keep = False
        if chunked:
            parts = []
            while True:
                size = int((await self._reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self._reader.readline()
                    break
                parts.append(await self._reader.readexactly(size))
                await self._reader.readline()
            payload = b"".join(parts)
        else:
            payload = await self._reader.readexactly(length or 0)
        if not keep:
            await self.close()
        return status, (_decode(payload) if payload else None)
