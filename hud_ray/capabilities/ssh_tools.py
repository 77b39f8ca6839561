"""Shell tools over an :class:`SSHClient`: ``bash`` and a ``str_replace``-style editor."""

from __future__ import annotations

import shlex
from typing import Any

from hud_ray.agents.tools import Tool
from hud_ray.capabilities.ssh_client import SSHClient

BASH_TIMEOUT = 120.0
MAX_OUTPUT = 16_000


def _format(result: Any) -> str:
    parts = []
    if result.stdout:
        parts.append(result.stdout.rstrip("\n"))
    if result.stderr:
        parts.append(f"[stderr]\n{result.stderr.rstrip()}")
    status = "timed out" if result.timed_out else f"exit code {result.exit_code}"
    parts.append(f"[{status}]")
    return "\n".join(parts)


def shell_tools(client: SSHClient, *, prefix: str = "") -> list[Tool]:
    """The tools a harness offers for one ssh workspace."""

    async def bash(args: dict[str, Any]) -> str:
        command = args.get("command")
        if not isinstance(command, str) or not command.strip():
            return "error: 'command' must be a non-empty string"
        timeout = float(args.get("timeout") or BASH_TIMEOUT)
        result = await client.run(command, timeout=min(timeout, 600.0), max_output=MAX_OUTPUT)
        return _format(result)

    async def edit(args: dict[str, Any]) -> str:
        path, mode = args.get("path"), args.get("mode", "view")
        if not isinstance(path, str) or not path:
            return "error: 'path' is required"
        if mode == "view":
            result = await client.run(f"cat -n -- {shlex.quote(path)}", max_output=MAX_OUTPUT)
            return result.stdout if result.exit_code == 0 else f"error: {result.stderr.strip()}"
        if mode == "create":
            content = args.get("content")
            if not isinstance(content, str):
                return "error: 'content' is required to create a file"
            await client.write_file(path, content)
            return f"created {path} ({len(content)} characters)"
        if mode == "replace":
            old, new = args.get("old_str"), args.get("new_str", "")
            if not isinstance(old, str) or not old:
                return "error: 'old_str' is required to replace"
            try:
                text = await client.read_file(path)
            except Exception as exc:
                return f"error: {exc}"
            count = text.count(old)
            if count != 1:
                return f"error: old_str occurs {count} times in {path}; it must occur once"
            await client.write_file(path, text.replace(old, str(new), 1))
            return f"edited {path}"
        return f"error: unknown mode {mode!r} (view, create, replace)"

    return [
        Tool(f"{prefix}bash", "Run a bash command in the workspace and return its output and "
             "exit code. Processes you background keep running between commands.",
             {"type": "object", "properties": {
                 "command": {"type": "string", "description": "the command to run"},
                 "timeout": {"type": "number", "description": "seconds (default 120)"}},
              "required": ["command"]}, bash),
        Tool(f"{prefix}edit_file", "View, create, or edit a file: mode 'view' prints it with "
             "line numbers, 'create' writes 'content', 'replace' swaps the single occurrence "
             "of 'old_str' for 'new_str'.",
             {"type": "object", "properties": {
                 "path": {"type": "string"},
                 "mode": {"type": "string", "enum": ["view", "create", "replace"]},
                 "content": {"type": "string"}, "old_str": {"type": "string"},
                 "new_str": {"type": "string"}},
              "required": ["path", "mode"]}, edit),
    ]
