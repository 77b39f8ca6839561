"""Capabilities as wire data, and the client contract that dials them.

A :class:`Capability` is ``(name, protocol, url, params)``: the concrete address of
something an agent drives directly (an ssh daemon, a Chromium DevTools endpoint, a
robot loop). It crosses process and language boundaries as a plain dict
(:meth:`Capability.to_manifest`). A :class:`CapabilityClient` is the Python side
that dials one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self


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
