"""A small, fast HTTP/1.1 server on :class:`asyncio.Protocol`.

Just enough HTTP for the provider SDKs, done properly: keep-alive (and ``Connection:
close`` / HTTP/1.0), pipelined requests answered in order, bodies split across reads,
``Content-Length`` and chunked request bodies, ``Expect: 100-continue``, chunked
responses for server-sent events. A handler that answers synchronously is served
inside ``data_received`` without creating a task; an awaitable answer gets one task
per connection that also drains whatever was pipelined behind it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, cast

logger = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
_MAX_QUEUED = 64  # pipelined requests buffered before we stop reading the socket
_REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 409: "Conflict", 413: "Payload Too Large",
            422: "Unprocessable Entity", 429: "Too Many Requests",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout", 505: "HTTP Version Not Supported", 529: "Overloaded"}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes
    keep_alive: bool = True


@dataclass(slots=True)
class Response:
    """What a handler answers. ``stream`` (already-encoded SSE events) is sent chunked;
    ``action`` replaces the answer with a fault: ``hang`` never answers (the client
    must time out), ``disconnect`` drops the connection, ``cut`` sends half the body
    (or half the events) and drops the connection, ``truncate`` ends a stream cleanly
    after half its events."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterable[bytes] | None = None
    action: Literal["hang", "disconnect", "cut", "truncate"] | None = None


Handler = Callable[[Request], Response | Awaitable[Response]]


class HTTPServer:
    """A listening socket plus the connections it accepted (so :meth:`close` can end
    them: ``asyncio.Server.close`` leaves open connections alone)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None

    async def listen(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port,
                                                reuse_address=True, backlog=1024)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for conn in list(self.connections):
            conn.abort()
        await server.wait_closed()


class _Connection(asyncio.Protocol):
    """One client connection: a parser state machine feeding an ordered answer queue."""

    def __init__(self, server: HTTPServer) -> None:
        self._server = server
        self._transport: asyncio.Transport  # set by connection_made, before any data
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already searched for the end of the head
        self._head: Request | None = None  # parsed head waiting for its body
        self._length = 0  # Content-Length of the pending body, or -1 when chunked
        self._chunks = bytearray()  # decoded chunked body so far
        self._queue: deque[Request] = deque()
        self._busy = False  # a task is answering; later requests queue behind it
        self._hung = False  # a hang fault: read and ignore everything from now on
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._can_write: asyncio.Future[None] | None = None

    # ---- transport callbacks ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.connections.discard(self)
        if self._task is not None:
            self._task.cancel()
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)

    def pause_writing(self) -> None:
        self._can_write = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)
        self._can_write = None

    def abort(self) -> None:
        self._closed = True
        self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._hung:
            return
        self._buf += data
        while not self._closed and not self._hung:
            req = self._parse()
            if req is None:
                return
            if self._busy:
                self._queue.append(req)
                if len(self._queue) >= _MAX_QUEUED and not self._paused:
                    self._paused = True
                    self._transport.pause_reading()
            else:
                self._answer(req)

    # ---- parsing ------------------------------------------------------------------------
    def _parse(self) -> Request | None:
        """The next complete request in the buffer, or None until more bytes arrive."""
        buf, head = self._buf, self._head
        if head is None:
            while buf.startswith(b"\r\n"):  # stray line breaks between requests
                del buf[:2]
            end = buf.find(b"\r\n\r\n", max(0, self._scanned - 3))
            if end < 0:
                self._scanned = len(buf)
                if len(buf) > MAX_HEAD:
                    self._reject(431)
                return None
            self._scanned = 0
            head = self._parse_head(bytes(buf[:end]))
            del buf[:end + 4]
            if head is None:
                return None
            self._head = head
            if head.headers.get("expect", "").lower() == "100-continue" and (
                    self._length < 0 or len(buf) < self._length):
                self._transport.write(_CONTINUE)
        if self._length >= 0:
            if len(buf) < self._length:
                return None
            body = bytes(buf[:self._length])
            del buf[:self._length]
        else:
            chunked = self._dechunk()
            if chunked is None:
                return None
            body = chunked
        self._head = None
        head.body = body
        return head

    def _parse_head(self, raw: bytes) -> Request | None:
        line, _, rest = raw.decode("latin-1").partition("\r\n")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._reject(505 if len(parts) == 3 and parts[2].startswith("HTTP/") else 400)
            return None
        method, path, version = parts
        headers: dict[str, str] = {}
        if rest:
            for line in rest.split("\r\n"):
                name, sep, value = line.partition(":")
                if not sep:
                    self._reject(400)
                    return None
                headers[name.lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection and (
            version == "HTTP/1.1" or "keep-alive" in connection)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._length = -1
            self._chunks.clear()
        else:
            try:
                self._length = int(headers.get("content-length") or 0)
            except ValueError:
                self._length = -2
            if not 0 <= self._length <= MAX_BODY:
                self._reject(400 if self._length < 0 else 413)
                return None
        return Request(method, path, headers, b"", keep_alive)

    def _dechunk(self) -> bytes | None:
        """Decode as much of a chunked body as has arrived; the body once complete."""
        buf = self._buf
        while True:
            eol = buf.find(b"\r\n")
            if eol < 0:
                return None
            try:
                size = int(bytes(buf[:eol]).split(b";", 1)[0], 16)
            except ValueError:
                self._reject(400)
                return None
            if size == 0:  # last chunk, then optional trailers up to an empty line
                end = buf.find(b"\r\n\r\n", eol)
                if end < 0:
                    return None
                del buf[:end + 4]
                body = bytes(self._chunks)
                self._chunks.clear()
                return body
            if len(buf) < eol + 2 + size + 2:
                return None
            if len(self._chunks) + size > MAX_BODY:
                self._reject(413)
                return None
            self._chunks += buf[eol + 2:eol + 2 + size]
            del buf[:eol + 2 + size + 2]

    def _reject(self, status: int) -> None:
        if not self._closed:
            self._transport.write(_head(status, "text/plain", {}, 0, close=True))
            self._transport.close()
        self._closed = True

    # ---- answering ----------------------------------------------------------------------
    def _call(self, req: Request) -> Response | Awaitable[Response]:
        try:
            return self._server.handler(req)
        except Exception:
            logger.exception("handler failed on %s %s", req.method, req.path)
            return _crash()

    def _answer(self, req: Request) -> None:
        out = self._call(req)
        if inspect.isawaitable(out) or self._can_write is not None:
            self._busy = True
            self._task = asyncio.get_running_loop().create_task(self._finish(req, out))
        else:
            self._write(req, out)

    async def _finish(self, req: Request, out: Response | Awaitable[Response]) -> None:
        """Answer ``req`` once its response is ready, then whatever queued behind it."""
        try:
            while True:
                if inspect.isawaitable(out):
                    try:
                        resp = await out
                    except Exception:
                        logger.exception("handler failed on %s %s", req.method, req.path)
                        resp = _crash()
                else:
                    resp = out
                if self._can_write is not None:
                    await self._can_write
                if not self._write(req, resp) or not self._queue:
                    return
                req = self._queue.popleft()
                if self._paused and len(self._queue) < _MAX_QUEUED // 2:
                    self._paused = False
                    self._transport.resume_reading()
                out = self._call(req)
        finally:
            self._task = None
            self._busy = False

    def _write(self, req: Request, resp: Response) -> bool:
        """Send ``resp``; False when the connection is (or is now) done."""
        t = self._transport
        if self._closed:
            return False
        if resp.action == "disconnect":
            self.abort()
            return False
        if resp.action == "hang":  # keep the socket open, never answer again
            self._hung = True
            self._queue.clear()
            return False
        close = not req.keep_alive
        if resp.action in ("cut", "truncate"):
            return self._write_cut(resp)
        if resp.stream is None:
            t.write(_head(resp.status, resp.content_type, resp.headers, len(resp.body),
                          close=close) + resp.body)
        else:
            out = [_head(resp.status, resp.content_type, resp.headers, None, close=close)]
            for chunk in resp.stream:
                out.append(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            out.append(b"0\r\n\r\n")
            t.write(b"".join(out))
        if close:
            t.close()
            self._closed = True
            return False
        return True


    def _write_cut(self, resp: Response) -> bool:
        t = self._transport
        if resp.stream is None:
            t.write(_head(resp.status, resp.content_type, resp.headers, len(resp.body))
                    + resp.body[:len(resp.body) // 2])
            self.abort()
            return False
        events = list(resp.stream)
        out = [_head(resp.status, resp.content_type, resp.headers, None)]
        out.extend(b"%x\r\n%s\r\n" % (len(c), c) for c in events[:len(events) // 2])
        if resp.action == "truncate":
            out.append(b"0\r\n\r\n")
            t.write(b"".join(out))
            return True
        t.write(b"".join(out))
        self.abort()
        return False


def _crash() -> Response:
    return Response(500, b'{"error": {"message": "provider policy failed", '
                         b'"type": "server_error"}}')


def _head(status: int, ctype: str, headers: dict[str, str], length: int | None, *,
          close: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\ncontent-type: {ctype}"]
    lines.append("transfer-encoding: chunked" if length is None else f"content-length: {length}")
    if close:
        lines.append("connection: close")
    for name, value in headers.items():
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")
