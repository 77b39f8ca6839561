"""Serve an environment's control channel over TCP, and a small client for it.

The wire is HUD's: newline-delimited JSON-RPC 2.0 frames with the methods ``hello``,
``tasks.list``, ``tasks.start``, ``tasks.grade``, ``tasks.cancel`` and ``bye``. A
started task stays parked when its connection drops, so ``hud-ray task start`` and
``hud-ray task grade`` can be separate invocations: ``hello`` with a ``session_id``
resumes a parked session, and a bare ``tasks.grade`` adopts the only parked one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import uuid
from dataclasses import asdict
from typing import Any

from hud_ray.errors import EnvError, HudRayError
from hud_ray.sandbox import Sandbox
from hud_ray.task import Task

log = logging.getLogger(__name__)

MAX_FRAME = 16 * 1024 * 1024


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class ControlServer:
    """One sandbox behind a TCP control channel; sessions map to sandbox sessions."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._parked: dict[str, str] = {}  # control session id -> sandbox session id
        self._live: set[str] = set()
        self._server: asyncio.Server | None = None

    @property
    def env(self) -> Any:
        return next(iter(self.sandbox.environments.values()))

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        await self.sandbox.setup()
        self._server = await asyncio.start_server(self._connection, host, port,
                                                  limit=MAX_FRAME)
        sock = self._server.sockets[0].getsockname()
        return sock[0], sock[1]

    async def serve_forever(self) -> None:
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.sandbox.close()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        session = uuid.uuid4().hex[:12]
        self._live.add(session)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await _send(writer, _error(None, -32700, "frame too large"))
                    return
                if not line:
                    return
                try:
                    msg = json.loads(line)
                    if not isinstance(msg, dict):
                        raise ValueError("frame is not an object")
                except ValueError as exc:
                    await _send(writer, _error(None, -32700, f"parse error: {exc}"))
                    continue
                msg_id, method = msg.get("id"), msg.get("method", "")
                params = msg.get("params") or {}
                try:
                    result, session, done = await self._dispatch(session, method, params)
                except _RpcError as exc:
                    await _send(writer, _error(msg_id, exc.code, str(exc)))
                    continue
                except HudRayError as exc:
                    await _send(writer, _error(msg_id, -32000, f"{exc.code}: {exc}"))
                    continue
                await _send(writer, {"jsonrpc": "2.0", "id": msg_id, "result": result})
                if done:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._live.discard(session)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _dispatch(self, session: str, method: str,
                        params: dict[str, Any]) -> tuple[Any, str, bool]:
        env = self.env
        if method == "hello":
            wanted = params.get("session_id")
            if wanted is not None and wanted != session:
                if wanted in self._live:
                    raise _RpcError(-32600, f"session {wanted!r} has a live connection")
                if wanted not in self._parked:
                    raise _RpcError(-32600, f"unknown session: {wanted!r}")
                self._live.discard(session)
                session = wanted
                self._live.add(session)
            return ({"session_id": session, "env": {"name": env.name, "version": env.version},
                     "bindings": [c.to_manifest() for c in env.capabilities]}, session, False)
        if method == "tasks.list":
            return {"tasks": [t.manifest_entry() for t in env.templates.values()]}, session, False
        if method == "tasks.start":
            task_id, args = params.get("id"), params.get("args") or {}
            if not isinstance(task_id, str) or not isinstance(args, dict):
                raise _RpcError(-32602, "tasks.start needs 'id' (string) and 'args' (object)")
            if task_id not in env.templates:
                raise _RpcError(-32602, f"unknown task: {task_id!r}")
            await self._cancel(session)
            prompt = await self.sandbox.start(Task(env=env.name, id=task_id, args=args))
            self._parked[session] = prompt.session_id
            return ({"prompt": prompt.messages if len(prompt.messages) > 1 else prompt.text,
                     "bindings": [c.to_manifest() for c in prompt.capabilities],
                     "has_solution": prompt.has_solution}, session, False)
        if method == "tasks.grade":
            session = self._adopt(session)
            sandbox_session = self._parked.pop(session)
            grade = await self.sandbox.grade(sandbox_session, params.get("answer"))
            out = asdict(grade)
            out["score"] = out.pop("reward")
            return out, session, False
        if method == "tasks.cancel":
            await self._cancel(session)
            return {"cancelled": True}, session, False
        if method == "bye":
            await self._cancel(session)
            return {"goodbye": True}, session, True
        raise _RpcError(-32601, f"method not found: {method}")

    def _adopt(self, session: str) -> str:
        if session in self._parked:
            return session
        parked = [s for s in self._parked if s not in self._live]
        if not parked:
            raise _RpcError(-32600, "no task in progress")
        if len(parked) > 1:
            raise _RpcError(-32600, f"several parked sessions ({', '.join(sorted(parked))}); "
                                    "pass --session")
        return parked[0]

    async def _cancel(self, session: str) -> None:
        sandbox_session = self._parked.pop(session, None)
        if sandbox_session is not None:
            await self.sandbox.cancel(sandbox_session)


async def _send(writer: asyncio.StreamWriter, frame: dict[str, Any]) -> None:
    writer.write(json.dumps(frame, default=str).encode() + b"\n")
    await writer.drain()


def _error(msg_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}


class ControlClient:
    """A minimal client for the control channel (what ``hud-ray task`` uses)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._ids = itertools.count(1)

    @classmethod
    async def connect(cls, host: str, port: int, *,
                      connect_timeout: float = 10.0) -> ControlClient:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=MAX_FRAME), connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise EnvError(f"cannot reach the control channel at {host}:{port}: {exc}",
                           code="control_unreachable") from None
        return cls(reader, writer)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        msg_id = next(self._ids)
        frame = {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params or {}}
        self._writer.write(json.dumps(frame).encode() + b"\n")
        await self._writer.drain()
        line = await self._reader.readline()
        if not line:
            raise EnvError("control channel closed the connection", code="control_closed")
        reply = json.loads(line)
        if "error" in reply:
            raise EnvError(f"{method}: {reply['error']['message']}", code="control_error")
        return reply["result"]

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
