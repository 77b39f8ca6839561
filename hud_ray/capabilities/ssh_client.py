"""The ``ssh/2`` capability, client side: dial a workspace, verifying its host key."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from hud_ray.capabilities.base import Capability, CapabilityClient
from hud_ray.capabilities.isolation import ExecResult, make_result
from hud_ray.errors import CapabilityError


class SSHClient(CapabilityClient):
    """An asyncssh connection to one workspace.

    Unlike a trust-on-first-use client, it refuses a server whose host key differs
    from the ``host_pubkey`` in the capability: a manifest is the only trust anchor.
    """

    protocol: ClassVar[str] = "ssh/2"

    def __init__(self, capability: Capability, conn: Any) -> None:
        self.capability = capability
        self.conn = conn
        self.cwd = capability.params.get("cwd")

    @classmethod
    async def connect(cls, capability: Capability, *, timeout: float = 30.0) -> Self:
        import asyncssh

        parts = urlsplit(capability.url)
        params = capability.params
        if parts.hostname is None or parts.port is None:
            raise CapabilityError(f"ssh capability has no host:port: {capability.url!r}")
        host_key = params.get("host_pubkey")
        if not host_key:
            raise CapabilityError("ssh capability carries no host_pubkey; refusing to connect "
                                  "to an unverified server")
        try:
            known = asyncssh.import_known_hosts(f"[{parts.hostname}]:{parts.port} {host_key}\n"
                                                f"{parts.hostname} {host_key}\n")
            key = asyncssh.import_private_key(params["client_key"])
            conn = await asyncio.wait_for(asyncssh.connect(
                parts.hostname, parts.port, username=params.get("user", "agent"),
                client_keys=[key], known_hosts=known, agent_path=None, password=None,
                preferred_auth="publickey", keepalive_interval=15, encoding=None,
                config=None), timeout)
        except (asyncssh.HostKeyNotVerifiable, asyncssh.PermissionDenied) as exc:
            raise CapabilityError(f"ssh to {parts.hostname}:{parts.port} refused: "
                                  f"{type(exc).__name__}: {exc}", retryable=False) from None
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise CapabilityError(f"ssh to {parts.hostname}:{parts.port} failed: "
                                  f"{type(exc).__name__}: {exc}") from None
        return cls(capability, conn)

    async def run(self, command: str, *, timeout: float = 120.0, max_output: int = 32_000,
                  stdin: bytes | None = None) -> ExecResult:
        """Run a shell command in the workspace; kill it after ``timeout`` seconds."""
        try:
            proc = await self.conn.create_process(command, encoding=None)
        except Exception as exc:
            raise CapabilityError(f"ssh exec failed: {type(exc).__name__}: {exc}") from None
        timed_out = False
        try:
            out, err = await asyncio.wait_for(_collect(proc, stdin), timeout)
            code = proc.exit_status if proc.exit_status is not None else -1
        except TimeoutError:
            timed_out = True
            proc.kill() if hasattr(proc, "kill") else proc.close()
            with contextlib.suppress(Exception):
                proc.close()
            out, err, code = b"", b"", -9
        return make_result(code, out, err, timed_out, max_output)

    async def read_file(self, path: str) -> str:
        result = await self.run(f"cat -- {shlex.quote(path)}", max_output=10_000_000)
        if result.exit_code != 0:
            raise CapabilityError(f"cannot read {path}: {result.stderr.strip()}",
                                  retryable=False)
        return result.stdout

    async def write_file(self, path: str, content: str | bytes) -> None:
        data = content.encode() if isinstance(content, str) else content
        q = shlex.quote(path)
        result = await self.run(f"mkdir -p -- \"$(dirname -- {q})\" && cat > {q}", stdin=data)
        if result.exit_code != 0:
            raise CapabilityError(f"cannot write {path}: {result.stderr.strip()}",
                                  retryable=False)

    async def close(self) -> None:
        self.conn.close()
        with contextlib.suppress(Exception):
            await self.conn.wait_closed()


async def _collect(proc: Any, stdin: bytes | None) -> tuple[bytes, bytes]:
    if stdin is not None:
        proc.stdin.write(stdin)
    proc.stdin.write_eof()
    out, err = await asyncio.gather(proc.stdout.read(), proc.stderr.read())
    await proc.wait()
    return out, err
