"""A small, fast HTTP/1.1 server on asyncio.Protocol: keep-alive, pipelining,
Content-Length bodies, chunked responses (for SSE). Enough for the provider SDKs."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

MAX_BODY = 64 * 1024 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            408: "Request Timeout", 411: "Length Required", 413: "Payload Too Large",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 529: "Overloaded"}


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    stream: AsyncIterator[bytes] | None = None  # chunked when set
    hang: bool = False  # never answer (the client must time out)
    disconnect: bool = False  # drop the connection instead of answering


Handler = Callable[[Request], Awaitable[Response]]


class _Conn(asyncio.Protocol):
    __slots__ = ("_buf", "_closed", "_handler", "_queue", "_task", "_transport")

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._buf = bytearray()
        self._queue: deque[Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > 65536:
                    self._fail(413)
                return
            head = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
            try:
                method, path, _ = head[0].split(" ", 2)
            except ValueError:
                self._fail(400)
                return
            headers = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._fail(411)
                return
            length = int(headers.get("content-length") or 0)
            if length > MAX_BODY:
                self._fail(413)
                return
            if len(self._buf) < end + 4 + length:
                if headers.get("expect", "").lower() == "100-continue" and self._transport:
                    self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return
            body = bytes(self._buf[end + 4:end + 4 + length])
            del self._buf[:end + 4 + length]
            self._queue.append(Request(method, path, headers, body))
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._serve())

    def _fail(self, status: int) -> None:
        if self._transport is not None:
            self._transport.write(_head(status, "text/plain", {}, 0, close=True))
            self._transport.close()
        self._closed = True

    async def _serve(self) -> None:
        try:
            while self._queue and not self._closed:
                req = self._queue.popleft()
                resp = await self._handler(req)
                if not await self._send(resp):
                    return
        finally:
            self._task = None

    async def _send(self, resp: Response) -> bool:
        t = self._transport
        if t is None or self._closed:
            return False
        if resp.disconnect:
            t.abort()
            return False
        if resp.hang:
            await asyncio.Event().wait()  # until connection_lost cancels this task
            return False
        if resp.stream is None:
            t.write(_head(resp.status, resp.content_type, resp.headers, len(resp.body))
                    + resp.body)
            return True
        t.write(_head(resp.status, resp.content_type, resp.headers, None))
        try:
            async for chunk in resp.stream:
                if self._closed:
                    return False
                t.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        finally:
            with contextlib.suppress(Exception):
                await resp.stream.aclose()  # type: ignore[attr-defined]
        t.write(b"0\r\n\r\n")
        return True


def _head(status: int, ctype: str, headers: dict[str, str], length: int | None, *,
          close: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
             f"content-type: {ctype}"]
    lines.append("transfer-encoding: chunked" if length is None else f"content-length: {length}")
    if close:
        lines.append("connection: close")
    lines.extend(f"{k}: {v}" for k, v in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def serve(handler: Handler, host: str, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Conn(handler), host, port, reuse_address=True)
