"""The ``ssh/2`` capability, server side: an isolated shell workspace per rollout.

A sandbox runs one asyncssh server on its node's address (reachable from harnesses on
other nodes) with an ephemeral host key. Each rollout (``open``) gets a fresh
workspace directory, a fresh client key pair (public-key auth only, valid for that
rollout alone) and its own bubblewrap sandbox (see :mod:`.isolation`); every command
the agent runs over ssh executes inside that sandbox. ``close`` kills every process
the rollout started, revokes its key and deletes its workspace.

Declare it with ``env.workspace(root=..., setup=..., network=False)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import inspect
import itertools
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hud_ray.capabilities.base import Capability, SessionResource
from hud_ray.capabilities.isolation import (
    WORKDIR,
    ExecResult,
    Jail,
    Unisolated,
    bwrap_available,
    clean_env,
    kill_group,
    run_in,
)
from hud_ray.capabilities.limits import Limits
from hud_ray.errors import CapabilityError

log = logging.getLogger(__name__)

SetupHook = Callable[[Path], Awaitable[None] | None]
_uids = itertools.count((os.getpid() % 500) * 100 + 200_000)


def node_address() -> str:
    """This node's address as other nodes see it (Ray's view when Ray is up)."""
    with contextlib.suppress(Exception):
        import ray

        if ray.is_initialized():
            return ray.util.get_node_ip_address()
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))  # no packet is sent
        return s.getsockname()[0]
    return "127.0.0.1"


@dataclass
class WorkspaceSession:
    """What template code and graders get for a rollout: ``path`` on the host, ``cwd``
    inside the sandbox, and ``exec`` to run a command inside (as the agent would)."""

    id: str
    path: Path
    jail: Jail | Unisolated
    key_fingerprint: str
    cwd: str
    #: set once grading starts: the agent's ssh connections are closed and refused
    agent_locked: bool = False
    workspace: Workspace | None = None

    async def exec(self, command: str, *, timeout: float = 60.0, max_output: int = 64_000,
                   env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = (),
                   as_grader: bool = False, stdin: bytes | None = None) -> ExecResult:
        """Run ``command`` inside the sandbox, as the agent (or, ``as_grader``, as the
        grader: uid 1001 in group ``agent``, out of the agent's reach)."""
        return await run_in(self.jail, command, timeout=timeout, max_output=max_output,
                            env=env, pass_fds=pass_fds, as_grader=as_grader, stdin=stdin)

    async def stop_agent(self, *, kill: bool = True) -> None:
        """End the agent's turn: close and refuse its ssh connections and (``kill``)
        kill every process it left running. Graders call this first."""
        self.agent_locked = True
        if self.workspace is not None:
            for conn in self.workspace._conns.get(self.id, set()).copy():
                conn.close()
        if kill:
            await self.jail.kill_processes()


class Workspace(SessionResource):
    """An isolated shell served over ``ssh/2``, fresh for every rollout."""

    concurrent_sessions = True  # every session has its own sandbox, key and directory

    def __init__(self, root: str | os.PathLike[str] | None = None, *, name: str = "shell",
                 setup: SetupHook | None = None, seed: dict[str, str] | None = None,
                 network: bool = False, allow_unisolated: bool = False, user: str = "agent",
                 host: str | None = None, port: int = 0,
                 limits: Limits | dict[str, Any] | None = None,
                 mounts: dict[str, str | os.PathLike[str] | None] | None = None,
                 workdir: str | None = None, env: dict[str, str] | None = None) -> None:
        self.name = name
        #: Extra directories at absolute paths inside the sandbox (``{"/app": host_dir}``):
        #: each session gets a fresh copy of ``host_dir`` (an empty directory for None).
        self.mounts = {_mount_point(k): None if v is None else Path(v)
                       for k, v in (mounts or {}).items()}
        #: Where commands start (default the workspace) and extra environment variables.
        self.workdir = workdir
        self.env = dict(env or {})
        self.root = Path(root) if root is not None else None
        self.setup = setup
        self.seed = dict(seed or {})
        self.network = network
        self.limits = Limits.parse(limits)
        self.allow_unisolated = allow_unisolated
        self.user = user
        self.host = host
        self.port = port
        self._server: Any = None
        self._host_key: Any = None
        self._base: Path | None = None
        self._sessions: dict[str, WorkspaceSession] = {}
        self._keys: dict[str, str] = {}  # authorised public key (OpenSSH text) -> session id
        self._conns: dict[str, set[Any]] = {}  # session id -> its live ssh connections
        self._mounts: dict[str, Path] = {}  # session id -> its workspace tmpfs
        self.address: tuple[str, int] | None = None

    @property
    def isolation(self) -> str:
        return "bwrap" if bwrap_available() and os.geteuid() == 0 else "none"

    def _mount_workspace(self, path: Path, uid: int) -> bool:
        """A size-limited tmpfs as the workspace (its pages count against the sandbox's
        memory limit too); False where mounting is not possible."""
        if self.limits.workspace_mb is None:
            return False
        opts = f"size={self.limits.workspace_mb}m,mode=2775,uid={uid},gid={uid}"
        _sweep_mounts()
        source = f"hud-ray-ws-{os.getpid()}".encode()
        if _libc().mount(source, os.fsencode(path), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                         opts.encode()) != 0:
            log.warning("workspace size limit not enforced (tmpfs mount failed: %s)",
                        os.strerror(ctypes.get_errno()))
            return False
        return True

    async def start(self) -> None:
        if self._server is not None:
            return
        try:
            import asyncssh
        except ImportError:
            raise CapabilityError("ssh workspaces need asyncssh: pip install "
                                  "'hud-ray[ssh]'") from None
        if self.isolation == "none" and not self.allow_unisolated:
            raise CapabilityError(
                "no bubblewrap sandbox available (needs the `bwrap` and `nsenter` commands "
                "and root to start sandboxes as dedicated uids); install bubblewrap, or "
                "declare env.workspace(..., allow_unisolated=True) to run commands "
                "unisolated")
        self._base = Path(tempfile.mkdtemp(prefix="hud-ray-ws-"))
        self._base.chmod(0o711)
        self._host_key = asyncssh.generate_private_key("ssh-ed25519")
        host = self.host or node_address()
        self._server = await asyncssh.create_server(
            lambda: _Server(self), host, self.port, server_host_keys=[self._host_key],
            process_factory=self._process, encoding=None, allow_scp=False,
            sftp_factory=None, agent_forwarding=False, x11_forwarding=False,
            login_timeout=30, keepalive_interval=30)
        sock = self._server.sockets[0].getsockname()
        self.address = (host, sock[1])

    async def stop(self) -> None:
        for sid in list(self._sessions):
            await self.close(sid)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None
        if self._base is not None:
            shutil.rmtree(self._base, ignore_errors=True)
            self._base = None

    async def open(self, session_id: str) -> list[Capability]:
        import asyncssh

        await self.start()
        assert self._base is not None and self.address is not None
        uid, grader_uid = next(_uids), next(_uids)
        top = self._base / session_id
        path, private = top / "workspace", top / "private"
        path.mkdir(parents=True)
        private.mkdir()
        isolated = self.isolation == "bwrap"
        if (self.mounts or self.workdir) and not isolated:
            raise CapabilityError("a workspace with mounts or a workdir needs the bubblewrap "
                                  "sandbox (absolute paths cannot be provided unisolated)",
                                  retryable=False)
        try:
            jail = await self._prepare(session_id, top, path, private, uid, grader_uid,
                                       isolated)
        except BaseException:
            self._unmount(session_id)
            shutil.rmtree(top, ignore_errors=True)
            raise
        key = asyncssh.generate_private_key("ssh-ed25519")
        public = key.export_public_key().decode().strip()
        cwd = (self.workdir or WORKDIR) if isolated else str(path)
        self._sessions[session_id] = WorkspaceSession(session_id, path, jail, public, cwd,
                                                      workspace=self)
        self._keys[_key_id(public)] = session_id
        host, port = self.address
        params = {"user": self.user,
                  "host_pubkey": self._host_key.export_public_key().decode().strip(),
                  "client_key": key.export_private_key().decode(), "cwd": cwd,
                  "shell": "bash", "isolation": "bwrap" if isolated else "none",
                  "network": self.network}
        url_host = f"[{host}]" if ":" in host else host
        return [Capability(self.name, "ssh/2", f"ssh://{url_host}:{port}", params)]

    async def _prepare(self, session_id: str, top: Path, path: Path, private: Path, uid: int,
                       grader_uid: int, isolated: bool) -> Jail | Unisolated:
        """Fill the workspace and start its sandbox (the caller cleans up on failure)."""
        if isolated and self._mount_workspace(path, uid):
            self._mounts[session_id] = path
        # copies run off the event loop: other sessions of this sandbox keep being served
        await asyncio.to_thread(self._fill, path)
        if self.setup is not None:
            result = self.setup(path)
            if inspect.isawaitable(result):
                await result
        binds = await asyncio.to_thread(self._copy_mounts, top)
        jail: Jail | Unisolated
        if isolated:
            await asyncio.to_thread(_hand_over, top, path, private, uid, list(binds.values()))
            jail = Jail(path, private, uid, network=self.network, limits=self.limits,
                        name=session_id, grader_uid=grader_uid, mounts=binds,
                        chdir=self.workdir or WORKDIR)
        else:
            jail = Unisolated(path)
        await jail.start()
        return jail

    def _fill(self, path: Path) -> None:
        """Copy ``root`` and write the seed files into a new workspace."""
        if self.root is not None:
            shutil.copytree(self.root, path, dirs_exist_ok=True, symlinks=True)
        for rel, content in self.seed.items():
            target = path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)

    def _copy_mounts(self, top: Path) -> dict[str, Path]:
        """A fresh copy of each mounted directory (inside path -> host copy)."""
        binds: dict[str, Path] = {}
        for i, (inside, source) in enumerate(sorted(self.mounts.items())):
            binds[inside] = top / "mounts" / str(i)
            if source is not None:
                shutil.copytree(source, binds[inside], symlinks=True)
            binds[inside].mkdir(parents=True, exist_ok=True)
        return binds

    async def close(self, session_id: str) -> None:
        ws = self._sessions.pop(session_id, None)
        if ws is None:
            return
        self._keys = {k: s for k, s in self._keys.items() if s != session_id}
        for conn in self._conns.pop(session_id, set()):
            conn.close()  # the rollout is over: so is every shell it had open
        await ws.jail.stop()
        self._unmount(session_id)
        if self._base is not None:
            await asyncio.to_thread(shutil.rmtree, self._base / session_id, ignore_errors=True)

    def _unmount(self, session_id: str) -> None:
        path = self._mounts.pop(session_id, None)
        if path is not None and _libc().umount2(os.fsencode(path), _MNT_DETACH) != 0:
            log.warning("unmounting workspace %s failed: %s", path,
                        os.strerror(ctypes.get_errno()))

    def session_context(self, session_id: str) -> WorkspaceSession:
        return self._sessions[session_id]

    # ---- serving -----------------------------------------------------------------------
    def session_for_key(self, key_text: str) -> str | None:
        return self._keys.get(_key_id(key_text))

    async def _process(self, process: Any) -> None:
        conn = process.get_extra_info("connection")
        sid = getattr(conn, "_hud_session", None)
        ws = self._sessions.get(sid) if sid else None
        if ws is None or ws.agent_locked:
            process.stderr.write(b"workspace session has ended\n")
            process.exit(255)
            return
        command = process.command
        env = {**clean_env(ws.cwd), **self.env}
        if process.get_terminal_type():
            env["TERM"] = process.get_terminal_type()
        argv = ["/bin/bash", "-c", command] if command else ["/bin/bash", "-l"]
        if command is None and process.get_terminal_type():
            await _pty_session(process, ["/bin/bash", "-il"], env, ws)
            return
        try:
            proc = await ws.jail.spawn(argv, env=env, stdin=asyncio.subprocess.PIPE,
                                       stdout=asyncio.subprocess.PIPE,
                                       stderr=asyncio.subprocess.PIPE)
        except CapabilityError as e:
            process.stderr.write(f"{e}\n".encode())
            process.exit(255)
            return
        try:
            feeder = asyncio.create_task(_feed(process.stdin, proc.stdin))
            await asyncio.gather(_drain(proc.stdout, process.stdout),
                                 _drain(proc.stderr, process.stderr))
            code = await proc.wait()
            feeder.cancel()
            process.exit(code if code >= 0 else 128 - code)
        finally:
            kill_group(proc)


async def _feed(source: Any, sink: asyncio.StreamWriter | None) -> None:
    """ssh channel stdin -> the command's stdin (EOF closes it)."""
    if sink is None:
        return
    try:
        while True:
            data = await source.read(65536)
            if not data:
                break
            sink.write(data)
            await sink.drain()
    except Exception:
        pass
    finally:
        with contextlib.suppress(Exception):
            sink.close()


async def _drain(source: asyncio.StreamReader | None, sink: Any) -> None:
    """The command's stdout/stderr -> the ssh channel."""
    if source is None:
        return
    while True:
        data = await source.read(65536)
        if not data:
            return
        sink.write(data)


async def _pty_session(process: Any, argv: list[str], env: dict[str, str],
                       ws: WorkspaceSession) -> None:
    """An interactive login shell on a pseudo-terminal (a human's `ssh`)."""
    import pty

    master, slave = pty.openpty()
    try:
        proc = await ws.jail.spawn(argv, env=env, stdin=slave, stdout=slave, stderr=slave)
    except CapabilityError as e:
        os.close(slave)
        os.close(master)
        process.stderr.write(f"{e}\n".encode())
        process.exit(255)
        return
    os.close(slave)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def readable() -> None:
        try:
            data = os.read(master, 65536)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(master)
            done.set()
            return
        process.stdout.write(data)

    loop.add_reader(master, readable)

    async def pump() -> None:
        with contextlib.suppress(Exception):
            while not done.is_set():
                data = await process.stdin.read(65536)
                if not data:
                    break
                os.write(master, data)

    pumper = asyncio.create_task(pump())
    code = await proc.wait()
    await asyncio.sleep(0.05)
    loop.remove_reader(master)
    pumper.cancel()
    os.close(master)
    process.exit(code)


_MS_NOSUID, _MS_NODEV, _MNT_DETACH = 2, 4, 2


@functools.cache
def _sweep_mounts() -> None:
    """Detach workspace tmpfs mounts left by a process that died without closing them."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            source, target = line.split()[:2]
            pid = source.removeprefix("hud-ray-ws-")
            if source.startswith("hud-ray-ws-") and pid.isdigit() and \
                    not Path(f"/proc/{pid}").exists():
                _libc().umount2(target.encode(), _MNT_DETACH)


def _hand_over(top: Path, path: Path, private: Path, uid: int,
               extra: list[Path] | None = None) -> None:
    """Give the filled workspace (and ``extra`` mounted directories) to the sandbox's uid;
    graders (group agent) may write."""
    more = [q for d in extra or () for q in (d.parent, d, *d.rglob("*"))]
    for p in dict.fromkeys([top, *path.rglob("*"), *more]):
        os.lchown(p, uid, uid)
        if p != top and not p.is_symlink():
            p.chmod(p.stat().st_mode | (0o2020 if p.is_dir() else 0o020))
    os.chown(path, uid, uid)
    path.chmod(0o2775)
    top.chmod(0o700)
    os.chown(private, 0, 0)
    private.chmod(0o755)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


_RESERVED = ("/", "/usr", "/etc", "/proc", "/dev", "/tmp", "/run", "/bin", "/sbin", "/lib",
             "/lib32", "/lib64", WORKDIR)


def _mount_point(path: str) -> str:
    """An absolute, normalised path that does not shadow the sandbox's own directories."""
    norm = os.path.normpath(path)
    if not os.path.isabs(path) or any(norm == r or norm.startswith(r.rstrip("/") + "/")
                                      for r in _RESERVED if r != "/") or norm == "/":
        raise CapabilityError(f"workspace mount {path!r}: must be an absolute path outside "
                              f"{', '.join(_RESERVED)}", retryable=False)
    return norm


def _key_id(public_text: str) -> str:
    parts = public_text.split()
    return " ".join(parts[:2])


def _server_class() -> type:
    import asyncssh

    class Server(asyncssh.SSHServer):
        def __init__(self, workspace: Workspace) -> None:
            self.workspace = workspace
            self.conn: Any = None

        def connection_made(self, conn: Any) -> None:
            self.conn = conn

        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return False

        def kbdint_auth_supported(self) -> bool:
            return False

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: Any) -> bool:
            if username != self.workspace.user:
                return False
            sid = self.workspace.session_for_key(key.export_public_key().decode())
            if sid is None:
                return False
            self.conn._hud_session = sid
            self.workspace._conns.setdefault(sid, set()).add(self.conn)
            return True

        def connection_lost(self, exc: Exception | None) -> None:
            sid = getattr(self.conn, "_hud_session", None)
            if sid is not None:
                self.workspace._conns.get(sid, set()).discard(self.conn)

    return Server


def _Server(workspace: Workspace) -> Any:
    global _SERVER_CLASS
    if _SERVER_CLASS is None:
        _SERVER_CLASS = _server_class()
    return _SERVER_CLASS(workspace)


_SERVER_CLASS: type | None = None
