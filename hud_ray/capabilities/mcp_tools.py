"""Model tools over MCP: every tool an environment's MCP server lists, as HUD offers them.

With one MCP capability the tools keep their names; with several, each is qualified
``<capability>__<tool>`` (HUD's rule). Names are made safe for every provider
(``[A-Za-z0-9_-]``, at most 64 characters).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from hud_ray.agents.tools import Tool
from hud_ray.capabilities.mcp_client import MCPClient, result_text

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def provider_name(name: str) -> str:
    """``name`` as a tool name every provider accepts (a hash suffix keeps it unique)."""
    safe = _UNSAFE.sub("_", name).strip("_") or "tool"
    if safe == name and len(safe) <= 64:
        return safe
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{safe[:55].rstrip('_') or 'tool'}_{digest}"


async def mcp_tools(client: MCPClient, *, qualify: bool) -> list[Tool]:
    """The tools a harness offers for one MCP capability."""
    tools = []
    for spec in await client.list_tools():
        name = f"{client.capability.name}__{spec.name}" if qualify else spec.name
        schema: dict[str, Any] = dict(spec.inputSchema or {})
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        tools.append(Tool(name=provider_name(name), description=spec.description or spec.name,
                          parameters=schema, run=_runner(client, spec.name)))
    return tools


def _runner(client: MCPClient, tool: str) -> Any:
    async def run(args: dict[str, Any]) -> str:
        return result_text(await client.call_tool(tool, args))

    return run
