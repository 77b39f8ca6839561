"""Which tools a harness offers for a rollout: built from the capabilities in the
sandbox's manifest (``ssh`` -> bash + file editing, ``mcp`` -> the server's own tools,
``cdp`` -> browser tools),
plus opt-in built-ins."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from hud_ray.agents.tools import THINK, Tool
from hud_ray.capabilities.base import Capability
from hud_ray.errors import CapabilityError

if TYPE_CHECKING:
    from hud_ray.capabilities.ssh_client import SSHClient

log = logging.getLogger(__name__)

Cleanup = Callable[[], Awaitable[None]]


async def tools_for(capabilities: list[Capability],
                    config: Any) -> tuple[list[Tool], Cleanup]:
    """Connect to the capabilities this harness knows and return their tools.

    Capabilities of families the harness has no tools for are skipped (logged): a
    text-only task gets no tools. ``config.think_tool`` adds the ``think`` tool.
    """
    tools: list[Tool] = []
    clients: list[Any] = []
    qualify_mcp = sum(c.family == "mcp" for c in capabilities) > 1
    try:
        for cap in capabilities:
            if cap.family == "mcp":
                from hud_ray.capabilities.mcp_tools import MCPClient, mcp_tools
                from hud_ray.capabilities.registry import connect

                client = await connect(cap)
                clients.append(client)
                assert isinstance(client, MCPClient)
                tools.extend(await mcp_tools(client, qualify=qualify_mcp))
            elif cap.family == "ssh":
                from hud_ray.capabilities.registry import connect
                from hud_ray.capabilities.ssh_tools import shell_tools

                client = await connect(cap)
                clients.append(client)
                tools.extend(shell_tools(cast("SSHClient", client),
                                         prefix=_prefix(cap, capabilities)))
            elif cap.family == "cdp":
                from hud_ray.capabilities.cdp_tools import CDPClient, browser_tools
                from hud_ray.capabilities.registry import connect

                client = await connect(cap)
                clients.append(client)
                assert isinstance(client, CDPClient)
                tools.extend(browser_tools(client, prefix=_prefix(cap, capabilities)))
            else:
                log.debug("no tools for capability %s (%s)", cap.name, cap.protocol)
    except BaseException:
        await _close(clients)
        raise
    if getattr(config, "think_tool", False):
        tools.append(THINK)
    names = [t.name for t in tools]
    if len(set(names)) != len(names):
        await _close(clients)
        dup = sorted({n for n in names if names.count(n) > 1})
        raise CapabilityError(f"two tools share the name(s) {', '.join(dup)}; give the "
                              "capabilities distinct names", retryable=False)

    async def cleanup() -> None:
        await _close(clients)

    return tools, cleanup


def _prefix(cap: Capability, all_caps: list[Capability]) -> str:
    same = [c for c in all_caps if c.family == cap.family]
    return "" if len(same) == 1 else f"{cap.name}_"


async def _close(clients: list[Any]) -> None:
    for client in reversed(clients):  # LIFO: MCP transports nest anyio task groups
        try:
            await client.close()
        except Exception:
            log.debug("closing a capability client failed", exc_info=True)
