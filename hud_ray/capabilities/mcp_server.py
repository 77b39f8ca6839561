"""The ``mcp/2025-11-25`` capability, server side: an environment's own MCP tools.

``env.mcp(server)`` serves an MCP server object (the official ``mcp`` package's
``FastMCP``, or ``fastmcp.FastMCP``) over streamable HTTP from the sandbox, on the
node's address (reachable from harnesses on other nodes) and an ephemeral port. Each
rollout gets a fresh bearer token (published as the capability's ``auth_token``), valid
until the rollout ends; requests without a live token get 401.

The server's state (a game board, a counter) lives in the sandbox process, so an
environment with an MCP server runs in a sandbox actor, one rollout at a time.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from hud_ray.capabilities._asgi import ServedApp
from hud_ray.capabilities.base import Capability, SessionResource
from hud_ray.errors import CapabilityError

log = logging.getLogger(__name__)



class MCPServer(SessionResource):
    """Serves an MCP server object to the rollouts of one sandbox, one at a time."""

    concurrent_sessions = False  # tool state is the server's: one rollout at a time
    exclusive = True  # ... even in a sandbox that could host several

    def __init__(self, server: Any, *, name: str = "tools", host: str | None = None,
                 port: int = 0, path: str = "/mcp") -> None:
        if not (hasattr(server, "streamable_http_app") or hasattr(server, "http_app")):
            raise CapabilityError(f"env.mcp() needs an MCP server object (mcp's FastMCP or "
                                  f"fastmcp.FastMCP), got {type(server).__name__}")
        self.name = name
        self.server = server
        self.host = host
        self.port = port
        self.path = path
        self._tokens: dict[str, str] = {}  # bearer token -> session id
        self._served = ServedApp()
        self.url: str | None = None

    def _app(self, host: str) -> Any:
        server = self.server
        if hasattr(server, "streamable_http_app"):  # the official SDK's FastMCP
            security = getattr(server.settings, "transport_security", None)
            if security is not None and security.enable_dns_rebinding_protection:
                allowed = f"{host}:*" if ":" not in host else f"[{host}]:*"
                if allowed not in security.allowed_hosts:
                    security.allowed_hosts.append(allowed)
            server.settings.streamable_http_path = self.path
            server._session_manager = None  # a session manager runs once: fresh per start
            return server.streamable_http_app()
        return server.http_app(path=self.path, transport="http")

    async def start(self) -> None:
        if self._served.running:
            return
        try:
            import uvicorn  # noqa: F401
        except ImportError:
            raise CapabilityError("env.mcp() needs the mcp package: pip install "
                                  "'hud-ray[mcp]'") from None
        from hud_ray.capabilities.ssh import node_address

        host = self.host or node_address()
        port = await self._served.start(_Guard(self._app(host), self._tokens), host, self.port,
                                        what=f"mcp server {self.name!r}", lifespan="on")
        url_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{url_host}:{port}{self.path}"

    async def stop(self) -> None:
        self._tokens.clear()
        await self._served.stop()
        self.url = None

    async def open(self, session_id: str) -> list[Capability]:
        await self.start()
        assert self.url is not None
        token = secrets.token_urlsafe(32)
        self._tokens[token] = session_id
        return [Capability.mcp(name=self.name, url=self.url, auth_token=token)]

    async def close(self, session_id: str) -> None:
        for token in [t for t, s in self._tokens.items() if s == session_id]:
            del self._tokens[token]

    def session_context(self, session_id: str) -> Any:
        return self.server


class _Guard:
    """ASGI wrapper: HTTP requests need a live rollout's bearer token."""

    def __init__(self, app: Any, tokens: dict[str, str]) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            auth = dict(scope.get("headers") or []).get(b"authorization", b"").decode()
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not any(
                    secrets.compare_digest(token, t) for t in list(self.tokens)):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 4401})
                    return
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"text/plain"),
                                        (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": b"unauthorized\n"})
                return
        await self.app(scope, receive, send)
