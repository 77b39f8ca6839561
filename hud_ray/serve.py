"""Serve an environment's control channel over TCP, and a small client for it.

The wire is HUD's: newline-delimited JSON-RPC 2.0 frames with the methods ``hello``,
``tasks.list``, ``tasks.start``, ``tasks.grade``, ``tasks.cancel`` and ``bye``. Every
frame carries the server's secret in a top-level ``"token"`` member; a frame without the
right token gets one ``unauthorized`` error and the connection is closed.

A started task stays parked when its connection drops, so ``hud-ray task start`` and
``hud-ray task grade`` can be separate invocations: ``hello`` with the ``session_id`` it
returned resumes a parked session. Session ids are unguessable and are only ever sent to
the connection that owns them; errors never list them. Parked sessions are capped
(``max_parked``) and expire after ``idle_ttl`` seconds without a call (their sandbox
session is cancelled). Binding anything but a loopback address needs ``insecure=True``:
the channel has no TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import itertools
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from hud_ray.errors import ConfigError, EnvError, HudRayError
from hud_ray.sandbox import Sandbox
from hud_ray.task import Task

log = logging.getLogger(__name__)

MAX_FRAME = 16 * 1024 * 1024
DEFAULT_MAX_PARKED = 16
DEFAULT_IDLE_TTL = 3600.0
AUTH_TIMEOUT = 10.0  # seconds a new connection has to send its first (authenticated) frame

# JSON-RPC error codes: the standard ones, then ours (-32001..-32099 are server-defined).
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
APP_ERROR, UNAUTHORIZED, NO_TASK, UNKNOWN_SESSION, BUSY = -32000, -32001, -32003, -32004, -32005

_CLIENT_CODES = {UNAUTHORIZED: "control_unauthorized", NO_TASK: "control_no_task",
                 UNKNOWN_SESSION: "control_unknown_session", BUSY: "control_busy"}


def new_token() -> str:
    """A fresh control-channel secret."""
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost`` or a literal loopback IP)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Held:
    """A control session that holds a started sandbox session."""

    sandbox_session: str
    last_used: float


class ControlServer:
    """One sandbox behind an authenticated TCP control channel.

    ``on_session_end(session_id)`` runs whenever a control session's task ends (graded,
    cancelled, replaced, expired, or the server closing), e.g. to delete its key files.
    """

    def __init__(self, sandbox: Sandbox, *, token: str,
                 max_parked: int = DEFAULT_MAX_PARKED,
                 idle_ttl: float = DEFAULT_IDLE_TTL,
                 on_session_end: Callable[[str], None] | None = None,
                 auth_timeout: float = AUTH_TIMEOUT) -> None:
        if not token:
            raise ConfigError("the control channel needs a non-empty token")
        if max_parked < 1:
            raise ConfigError(f"max_parked must be at least 1, got {max_parked}")
        if not idle_ttl > 0:
            raise ConfigError(f"idle_ttl must be positive, got {idle_ttl}")
        self.sandbox = sandbox
        self.max_parked = max_parked
        self.idle_ttl = idle_ttl
        self.auth_timeout = auth_timeout
        self._token = token.encode()
        self._on_end = on_session_end
        self._held: dict[str, _Held] = {}
        self._live: set[str] = set()
        self._starting = 0
        self._server: asyncio.Server | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def env(self) -> Any:
        return next(iter(self.sandbox.environments.values()))

    @property
    def parked(self) -> int:
        """How many control sessions hold a started task."""
        return len(self._held)

    async def start(self, host: str = "127.0.0.1", port: int = 0, *,
                    insecure: bool = False) -> tuple[str, int]:
        if not is_loopback(host) and not insecure:
            raise ConfigError(f"refusing to serve the control channel on non-loopback address "
                              f"{host!r}: TLS is not supported yet; use an ssh tunnel to "
                              "127.0.0.1, or pass --insecure to accept a plaintext channel")
        await self.sandbox.setup()
        self._server = await asyncio.start_server(self._connection, host, port,
                                                  limit=MAX_FRAME)
        self._reaper = asyncio.create_task(self._reap())
        sock = self._server.sockets[0].getsockname()
        return sock[0], sock[1]

    async def serve_forever(self) -> None:
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
        for session in list(self._held):
            await self._end(session)
        await self.sandbox.close()

    # ---- connections -----------------------------------------------------------------
    def _authorized(self, msg: dict[str, Any]) -> bool:
        token = msg.get("token")
        return isinstance(token, str) and hmac.compare_digest(token.encode(), self._token)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        session = secrets.token_urlsafe(18)
        self._live.add(session)
        self._writers.add(writer)
        authed = False
        try:
            while True:
                try:
                    if authed:
                        line = await reader.readline()
                    else:  # an unauthenticated connection may not sit idle
                        line = await asyncio.wait_for(reader.readline(), self.auth_timeout)
                except TimeoutError:
                    return
                except (ValueError, asyncio.LimitOverrunError):
                    await _send(writer, _error(None, PARSE_ERROR, "frame too large"))
                    return
                if not line:
                    return
                try:
                    msg = json.loads(line)
                    if not isinstance(msg, dict):
                        raise ValueError("frame is not an object")
                except ValueError as exc:
                    await _send(writer, _error(None, PARSE_ERROR, f"parse error: {exc}"))
                    continue
                msg_id = msg.get("id")
                if not self._authorized(msg):
                    await _send(writer, _error(msg_id, UNAUTHORIZED,
                                               "unauthorized: missing or wrong control token"))
                    return
                authed = True
                method, params = msg.get("method", ""), msg.get("params") or {}
                if not isinstance(params, dict):
                    await _send(writer, _error(msg_id, INVALID_PARAMS, "params must be an object"))
                    continue
                try:
                    result, session, done = await self._dispatch(session, method, params)
                except _RpcError as exc:
                    await _send(writer, _error(msg_id, exc.code, str(exc)))
                    continue
                except HudRayError as exc:
                    await _send(writer, _error(msg_id, APP_ERROR, f"{exc.code}: {exc}"))
                    continue
                await _send(writer, {"jsonrpc": "2.0", "id": msg_id, "result": result})
                if done:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._live.discard(session)
            self._touch(session)  # a parked session's idle time counts from its disconnect
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _dispatch(self, session: str, method: str,
                        params: dict[str, Any]) -> tuple[Any, str, bool]:
        env = self.env
        self._touch(session)
        if method == "hello":
            wanted = params.get("session_id")
            if wanted is not None and wanted != session:
                if (not isinstance(wanted, str) or wanted not in self._held
                        or wanted in self._live):
                    raise _RpcError(UNKNOWN_SESSION, "no such parked session (unknown, ended, "
                                                     "expired, or in use by another connection)")
                self._live.discard(session)
                session = wanted
                self._live.add(session)
                self._touch(session)
            return ({"session_id": session, "env": {"name": env.name, "version": env.version},
                     "bindings": [c.to_manifest() for c in env.capabilities]}, session, False)
        if method == "tasks.list":
            return {"tasks": [t.manifest_entry() for t in env.templates.values()]}, session, False
        if method == "tasks.start":
            task_id, args = params.get("id"), params.get("args") or {}
            if not isinstance(task_id, str) or not isinstance(args, dict):
                raise _RpcError(INVALID_PARAMS, "tasks.start needs 'id' (string) and 'args' "
                                                "(object)")
            if task_id not in env.templates:
                raise _RpcError(INVALID_PARAMS, f"unknown task: {task_id!r}")
            await self._end(session)  # a new task replaces this session's previous one
            await self._expire()
            if len(self._held) + self._starting >= self.max_parked:
                raise _RpcError(BUSY, f"too many parked sessions (limit {self.max_parked}); "
                                      "grade or cancel one, or wait for one to expire")
            self._starting += 1
            try:
                prompt = await self.sandbox.start(Task(env=env.name, id=task_id, args=args))
            finally:
                self._starting -= 1
            self._held[session] = _Held(prompt.session_id, time.monotonic())
            return ({"prompt": prompt.messages if len(prompt.messages) > 1 else prompt.text,
                     "bindings": [c.to_manifest() for c in prompt.capabilities],
                     "has_solution": prompt.has_solution}, session, False)
        if method == "tasks.grade":
            held = self._held.pop(session, None)
            if held is None:
                raise _RpcError(NO_TASK, "no task in progress in this session")
            try:
                grade = await self.sandbox.grade(held.sandbox_session, params.get("answer"))
            finally:
                self._ended(session)
            out = asdict(grade)
            out["score"] = out.pop("reward")
            return out, session, False
        if method == "tasks.cancel":
            if session not in self._held:
                raise _RpcError(NO_TASK, "no task in progress in this session")
            await self._end(session)
            return {"cancelled": True}, session, False
        if method == "bye":
            await self._end(session)
            return {"goodbye": True}, session, True
        raise _RpcError(METHOD_NOT_FOUND, f"method not found: {method}")

    # ---- session lifetime ------------------------------------------------------------
    def _touch(self, session: str) -> None:
        held = self._held.get(session)
        if held is not None:
            held.last_used = time.monotonic()

    async def _end(self, session: str) -> None:
        held = self._held.pop(session, None)
        if held is None:
            return
        try:
            await self.sandbox.cancel(held.sandbox_session)
        finally:
            self._ended(session)

    def _ended(self, session: str) -> None:
        if self._on_end is not None:
            try:
                self._on_end(session)
            except Exception:
                log.warning("control session end hook failed", exc_info=True)

    async def _expire(self) -> None:
        cutoff = time.monotonic() - self.idle_ttl
        for session, held in list(self._held.items()):
            if held.last_used < cutoff:
                log.info("parked control session expired after %.0f s idle", self.idle_ttl)
                await self._end(session)

    async def _reap(self) -> None:
        interval = min(max(self.idle_ttl / 4, 0.05), 30.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._expire()
            except Exception:
                log.warning("expiring parked control sessions failed", exc_info=True)


async def _send(writer: asyncio.StreamWriter, frame: dict[str, Any]) -> None:
    writer.write(json.dumps(frame, default=str).encode() + b"\n")
    await writer.drain()


def _error(msg_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}


class ControlClient:
    """A minimal client for the control channel (what ``hud-ray task`` uses)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 token: str) -> None:
        self._reader, self._writer = reader, writer
        self._token = token
        self._ids = itertools.count(1)

    @classmethod
    async def connect(cls, host: str, port: int, *, token: str,
                      connect_timeout: float = 10.0) -> ControlClient:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=MAX_FRAME), connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise EnvError(f"cannot reach the control channel at {host}:{port}: {exc}",
                           code="control_unreachable") from None
        return cls(reader, writer, token)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        msg_id = next(self._ids)
        frame = {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params or {},
                 "token": self._token}
        try:
            self._writer.write(json.dumps(frame).encode() + b"\n")
            await self._writer.drain()
            line = await self._reader.readline()
        except (ConnectionError, ValueError) as exc:
            raise EnvError(f"control channel failed: {exc}", code="control_closed") from None
        if not line:
            raise EnvError("control channel closed the connection", code="control_closed")
        try:
            reply = json.loads(line)
            error = reply.get("error")
        except (ValueError, AttributeError):
            raise EnvError("control channel sent a malformed reply",
                           code="control_error") from None
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else error
            raise EnvError(f"{method}: {message}",
                           code=_CLIENT_CODES.get(code, "control_error"))  # type: ignore[arg-type]
        return reply["result"]

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
