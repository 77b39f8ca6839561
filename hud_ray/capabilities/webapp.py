"""Web apps an environment serves to its own browser: static files or an ASGI app.

``env.browser(app=...)`` takes a directory (served as static files), an ASGI app, or a
:class:`WebApp` (a few HTML handlers). The sandbox serves it on the node address under a
per-rollout prefix (``http://node:port/<token>/``); the app sees paths without the
prefix (use relative links) and this rollout's ``state`` dict, which graders read as
``session.resource("browser").state``. Requests with an unknown or ended prefix get 404.
"""

from __future__ import annotations

import asyncio
import html
import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from hud_ray.capabilities._asgi import ServedApp
from hud_ray.errors import CapabilityError

escape = html.escape


@dataclass
class Request:
    """One request to a :class:`WebApp` handler."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    state: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[str | tuple[int, str]]]


class WebApp:
    """A tiny HTML app: ``@app.page("/path")`` handlers return HTML (or ``(status, html)``).

    A handler's return starting with ``redirect:`` answers 303 to the rest of the text.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}

    def page(self, path: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.routes[path] = fn
            return fn

        return register

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        handler = self.routes.get(scope["path"])
        if handler is None:
            return await _send(send, 404, "<h1>Not found</h1>")
        req = Request(method=scope["method"], path=scope["path"],
                      query=dict(parse_qsl(scope.get("query_string", b"").decode())),
                      form=dict(parse_qsl(body.decode(errors="replace"))),
                      state=scope.get("hud_ray.state", {}))
        out = await handler(req)
        status, text = out if isinstance(out, tuple) else (200, out)
        if text.startswith("redirect:"):
            return await _send(send, 303, "", location=text.removeprefix("redirect:"))
        await _send(send, status, text)


async def _send(send: Any, status: int, text: str, *, kind: str = "text/html; charset=utf-8",
                location: str | None = None, data: bytes | None = None) -> None:
    headers = [(b"content-type", kind.encode())]
    if location is not None:
        headers.append((b"location", location.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data if data is not None
                else text.encode()})


class StaticFiles:
    """Serves files under ``root`` (``index.html`` for directories)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise CapabilityError(f"env.browser(app=...): {root} is not a directory",
                                  retryable=False)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = (self.root / scope["path"].lstrip("/")).resolve()
        if path.is_dir():
            path = path / "index.html"
        if not path.is_relative_to(self.root) or not path.is_file():
            return await _send(send, 404, "not found", kind="text/plain")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        await _send(send, 200, "", kind=kind, data=await asyncio.to_thread(path.read_bytes))


class AppServer:
    """Serves an app under per-rollout prefixes on ``host``."""

    def __init__(self, app: Any, host: str,
                 state_for: Callable[[str], dict[str, Any] | None]) -> None:
        if isinstance(app, str | Path):
            app = StaticFiles(app)
        if not callable(app):
            raise CapabilityError("env.browser(app=...) needs a directory, an ASGI app or a "
                                  f"WebApp, got {type(app).__name__}", retryable=False)
        self.app = app
        self.host = host
        self.state_for = state_for
        self.base: str | None = None
        self._served = ServedApp()

    def url_for(self, token: str) -> str:
        assert self.base is not None
        return f"{self.base}/{token}/"

    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        _, token, rest = ([*scope["path"].split("/", 2), "", ""])[:3]
        state = self.state_for(token) if token else None
        if state is None:
            return await _send(send, 404, "not found", kind="text/plain")
        scope = {**scope, "path": "/" + rest, "root_path": f"/{token}",
                 "hud_ray.state": state}
        await self.app(scope, receive, send)

    async def start(self) -> None:
        port = await self._served.start(self._asgi, self.host, what="the environment's web app",
                                        lifespan="off", interface="asgi3")
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.base = f"http://{host}:{port}"

    async def stop(self) -> None:
        await self._served.stop()
