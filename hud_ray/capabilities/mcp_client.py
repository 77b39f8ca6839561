"""The ``mcp/2025-11-25`` capability, harness side: an MCP session over the URL.

Connects with the official ``mcp`` client (streamable HTTP by default; ``sse`` and
``websocket`` when the capability says so), sends the capability's ``auth_token`` as a
bearer token, lists the server's tools and calls them. Open and close it in the same
task (the transport runs an anyio task group).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any, ClassVar, Self

from hud_ray.capabilities.base import Capability, CapabilityClient
from hud_ray.errors import CapabilityError

CONNECT_TIMEOUT = 30.0
CALL_TIMEOUT = 300.0


class MCPClient(CapabilityClient):
    """A live MCP client session (``initialize`` done) for one capability."""

    protocol: ClassVar[str] = "mcp/2025-11-25"

    def __init__(self, capability: Capability, session: Any, stack: AsyncExitStack) -> None:
        self.capability = capability
        self.session = session
        self._stack = stack

    @classmethod
    async def connect(cls, capability: Capability) -> Self:
        from mcp import ClientSession

        params = capability.params
        transport = params.get("transport") or "streamable-http"
        token = params.get("auth_token")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        stack = AsyncExitStack()
        streams: Any
        try:
            if transport == "streamable-http":
                import httpx
                from mcp.client.streamable_http import streamable_http_client

                http = await stack.enter_async_context(httpx.AsyncClient(
                    headers=headers, follow_redirects=True,
                    timeout=httpx.Timeout(CONNECT_TIMEOUT, read=CALL_TIMEOUT)))
                streams = await stack.enter_async_context(
                    streamable_http_client(capability.url, http_client=http))
            elif transport == "sse":
                from mcp.client.sse import sse_client

                streams = await stack.enter_async_context(
                    sse_client(capability.url, headers=headers, timeout=CONNECT_TIMEOUT))
            elif transport == "websocket":
                from mcp.client.websocket import websocket_client

                streams = await stack.enter_async_context(websocket_client(capability.url))
            else:
                raise CapabilityError(f"mcp capability {capability.name!r}: unknown transport "
                                      f"{transport!r}", retryable=False)
            session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
            await session.initialize()
        except BaseException as exc:
            try:
                await stack.aclose()
            except Exception as failure:  # the transport's own error (it cancelled us for it)
                raise _cannot_connect(capability, failure) from failure
            if isinstance(exc, CapabilityError | ImportError) or not isinstance(exc, Exception):
                raise
            raise _cannot_connect(capability, exc) from exc
        return cls(capability, session, stack)

    async def list_tools(self) -> list[Any]:
        """Every tool the server advertises (following pagination)."""
        tools: list[Any] = []
        cursor: str | None = None
        while True:
            page = await self.session.list_tools(cursor=cursor) if cursor else \
                await self.session.list_tools()
            tools.extend(page.tools)
            cursor = page.nextCursor
            if not cursor:
                return tools

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        """Call a tool; returns the raw MCP ``CallToolResult``."""
        return await self.session.call_tool(name, arguments)

    async def close(self) -> None:
        await self._stack.aclose()


def _cannot_connect(capability: Capability, exc: BaseException) -> CapabilityError:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    first = (str(exc).splitlines() or [""])[0][:200]
    return CapabilityError(f"mcp capability {capability.name!r} at {capability.url}: cannot "
                           f"connect: {type(exc).__name__}: {first}")


def result_text(result: Any) -> str:
    """What the model sees of a ``CallToolResult``: its text (other blocks named),
    prefixed ``error:`` when the tool reported an error."""
    parts = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource" and hasattr(getattr(block, "resource", None), "text"):
            parts.append(block.resource.text)
        else:
            parts.append(f"[{kind or 'content'} block]")
    text = "\n".join(parts)
    if not parts and getattr(result, "structuredContent", None) is not None:
        import json

        text = json.dumps(result.structuredContent)
    return f"error: {text}" if getattr(result, "isError", False) else text
