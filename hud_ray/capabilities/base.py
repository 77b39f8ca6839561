"""Capabilities as wire data, and the client contract that dials them.

A :class:`Capability` is ``(name, protocol, url, params)``: the concrete address of
something an agent drives directly (an ssh daemon, a Chromium DevTools endpoint, a
robot loop). It crosses process and language boundaries as a plain dict
(:meth:`Capability.to_manifest`). A :class:`CapabilityClient` is the Python side
that dials one.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit, urlunsplit


def full_url(url: str, scheme: str, port: int | None) -> str:
    """``host[:port]`` shorthand -> ``scheme://host:port[/path]`` (HUD's factory rule)."""
    text = url if "://" in url else f"{scheme}://{url}"
    parts = urlsplit(text)
    if not parts.hostname:
        raise ValueError(f"invalid capability URL (no host): {url!r}")
    if parts.port is not None or port is None:
        return text
    user = parts.netloc.rpartition("@")[0] + "@" if "@" in parts.netloc else ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return urlunsplit((parts.scheme, f"{user}{host}:{port}", parts.path, parts.query,
                       parts.fragment))


@dataclass(frozen=True, slots=True)
class Capability:
    """Concrete wire data for one slice of environment access."""

    name: str
    protocol: str
    url: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_manifest(self) -> dict[str, Any]:
        return {"name": self.name, "protocol": self.protocol, "url": self.url,
                "params": dict(self.params)}

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> Capability:
        return cls(name=data["name"], protocol=data["protocol"], url=data["url"],
                   params=dict(data.get("params") or {}))

    @property
    def family(self) -> str:
        """The protocol without its version: ``ssh`` for ``ssh/2``."""
        return self.protocol.split("/", 1)[0]

    # ---- HUD's well-known protocol factories (wire data only) ---------------------------
    # hud-ray's agents dial ``ssh`` (see ``registry.CLIENTS``); the others publish as
    # data, and dialing them fails with a clear "no client for protocol" error.
    @classmethod
    def ssh(cls, *, url: str, host_pubkey: str, name: str = "shell", user: str = "agent",
            client_key: str | None = None, client_key_path: str | os.PathLike[str] | None = None,
            shell: str = "bash", cwd: str | None = None, isolation: str | None = None,
            process_connections: bool = False) -> Capability:
        """``ssh/2``: an ssh daemon with public-key auth."""
        params: dict[str, Any] = {"user": user, "host_pubkey": host_pubkey, "shell": shell}
        optional = {"client_key": client_key, "cwd": cwd, "isolation": isolation,
                    "client_key_path": os.fspath(client_key_path) if client_key_path else None,
                    "process_connections": True if process_connections else None}
        params.update({k: v for k, v in optional.items() if v is not None})
        return cls(name, "ssh/2", full_url(url, "ssh", 22), params)

    @classmethod
    def cdp(cls, *, url: str, name: str = "browser", target_id: str | None = None) -> Capability:
        """``cdp/1.3``: Chromium DevTools over WebSocket."""
        params = {"target_id": target_id} if target_id is not None else {}
        return cls(name, "cdp/1.3", full_url(url, "ws", 9222), params)

    @classmethod
    def rfb(cls, *, url: str, name: str = "screen", password: str | None = None,
            display: int = 0) -> Capability:
        """``rfb/3.8``: a VNC server (port ``5900 + display`` unless the URL has one)."""
        params: dict[str, Any] = {"display": display}
        if password is not None:
            params["password"] = password
        return cls(name, "rfb/3.8", full_url(url, "rfb", 5900 + display), params)

    @classmethod
    def mcp(cls, *, url: str, name: str = "tools", auth_token: str | None = None,
            transport: str | None = None) -> Capability:
        """``mcp/2025-11-25``: an MCP server over ws(s) or http(s)."""
        text = url if "://" in url else f"ws://{url}"
        scheme = urlsplit(text).scheme
        if scheme not in ("ws", "wss", "http", "https"):
            raise ValueError(f"mcp capability needs a ws/wss/http/https URL, got {scheme!r}")
        web = scheme in ("ws", "wss")
        if transport is None:
            transport = "websocket" if web else "streamable-http"
        if (transport == "websocket") != web or transport not in (
                "websocket", "sse", "streamable-http"):
            raise ValueError(f"mcp transport {transport!r} does not fit a {scheme}:// URL")
        params: dict[str, Any] = {"transport": transport}
        if auth_token is not None:
            params["auth_token"] = auth_token
        port = 443 if scheme in ("https", "wss") else 80
        return cls(name, "mcp/2025-11-25", full_url(text, "ws", port), params)

    @classmethod
    def robot(cls, *, url: str, contract: dict[str, Any], name: str = "robot") -> Capability:
        """``openpi/0``: a schema-driven action/observation loop over WebSocket."""
        return cls(name, "openpi/0", full_url(url, "ws", 9091), {"contract": contract})


class CapabilityClient(ABC):
    """Dials one capability. Subclasses set ``protocol`` and implement connect/close."""

    protocol: ClassVar[str]

    @classmethod
    @abstractmethod
    async def connect(cls, capability: Capability) -> Self: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class SessionResource(ABC):
    """Per-rollout server-side state a sandbox owns (e.g. an ssh workspace).

    An environment declares these (``env.workspace(...)``); the sandbox calls
    :meth:`open` when a rollout starts and :meth:`close` when it ends, so each
    rollout gets a fresh one. ``open`` returns the capabilities to publish for
    that rollout (addresses reachable from other nodes, fresh credentials).
    """

    name: str
    #: True when the resource isolates concurrent sessions from each other itself, so
    #: one sandbox process may serve several rollouts at once.
    concurrent_sessions: bool = False

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Bring up long-lived daemons once per sandbox (before any session)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Tear down what :meth:`start` brought up."""

    @abstractmethod
    async def open(self, session_id: str) -> list[Capability]: ...

    @abstractmethod
    async def close(self, session_id: str) -> None: ...

    def session_context(self, session_id: str) -> Any:
        """What the template and graders see for this session (e.g. a workspace handle)."""
        return None
