"""Per-rollout process isolation with bubblewrap.

Design: each rollout gets one long-lived bubblewrap sandbox, started as a dedicated
unprivileged host uid, with fresh user/pid/ipc/uts/cgroup (and, unless the environment
allows it, network) namespaces, read-only system directories, a private ``/tmp``, the
rollout's workspace bound read-write at ``/workspace``, and an empty environment. Its
pid-namespace init just waits. Every command (each ssh exec, every grader) enters
those namespaces with ``nsenter`` as uid 1000, so processes an agent backgrounds
outlive the command that started them; killing the init at the end of the rollout
takes every process of the namespace with it. Host secrets stay out: the sandbox sees
no host home, no host environment, and files only a local unprivileged user could read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from hud_ray.errors import CapabilityError

INSIDE_UID = 1000
WORKDIR = "/workspace"
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: The environment of the host-side helpers (setpriv, bwrap, nsenter): nothing of the
#: actor's own environment, which may hold keys, can be read from inside a sandbox.
HOST_ENV = {"PATH": SAFE_PATH}
_SYSTEM_DIRS = ("/usr", "/etc")
_LINKS = (("usr/bin", "/bin"), ("usr/sbin", "/sbin"), ("usr/lib", "/lib"),
          ("usr/lib64", "/lib64"), ("usr/lib32", "/lib32"))


@dataclass
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def bwrap_available() -> bool:
    return shutil.which("bwrap") is not None and shutil.which("nsenter") is not None


def clean_env(home: str = WORKDIR) -> dict[str, str]:
    return {"PATH": SAFE_PATH, "HOME": home, "TERM": "xterm-256color", "LANG": "C.UTF-8",
            "USER": "agent", "LOGNAME": "agent", "SHELL": "/bin/bash"}


class Jail:
    """One rollout's sandbox: ``start`` it, ``command`` builds argv for a process inside,
    ``stop`` kills everything in it."""

    def __init__(self, workspace: Path, private: Path, host_uid: int, *, network: bool,
                 mounts: dict[str, Path] | None = None, chdir: str = WORKDIR) -> None:
        self.workspace = workspace
        self.private = private  # per-session host dir for generated /etc files
        self.host_uid = host_uid
        self.network = network
        self.mounts = dict(mounts or {})  # absolute path inside -> host dir, bound read-write
        self.chdir = chdir
        self.init_pid: int | None = None
        self.enter_pid: int | None = None
        self._proc: asyncio.subprocess.Process | None = None

    def _passwd(self) -> tuple[Path, Path]:
        passwd = self.private / "passwd"
        group = self.private / "group"
        passwd.write_text(f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
                          f"agent:x:{INSIDE_UID}:{INSIDE_UID}:agent:{WORKDIR}:/bin/bash\n"
                          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
        group.write_text(f"root:x:0:\nagent:x:{INSIDE_UID}:\nnogroup:x:65534:\n")
        return passwd, group

    def _argv(self, info_fd: int) -> list[str]:
        passwd, group = self._passwd()
        argv = ["setpriv", f"--reuid={self.host_uid}", f"--regid={self.host_uid}",
                "--clear-groups", "--", "bwrap", "--unshare-all"]
        if self.network:
            argv.append("--share-net")
        argv += ["--die-with-parent", "--new-session", "--uid", str(INSIDE_UID), "--gid",
                 str(INSIDE_UID), "--hostname", "sandbox"]
        for d in _SYSTEM_DIRS:
            if os.path.isdir(d):
                argv += ["--ro-bind", d, d]
        for target, link in _LINKS:
            if os.path.exists("/" + target):
                argv += ["--symlink", target, link]
        argv += ["--ro-bind", str(passwd), "/etc/passwd", "--ro-bind", str(group), "/etc/group",
                 "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run",
                 "--bind", str(self.workspace), WORKDIR]
        for inside, host in sorted(self.mounts.items()):
            argv += ["--bind", str(host), inside]
        argv += ["--chdir", self.chdir, "--clearenv",
                 "--info-fd", str(info_fd), "--", "/usr/bin/sleep", "infinity"]
        return argv

    async def start(self) -> None:
        read_fd, write_fd = os.pipe()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._argv(write_fd), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                pass_fds=(write_fd,), start_new_session=True, env=HOST_ENV)
        finally:
            os.close(write_fd)
        loop = asyncio.get_running_loop()
        try:
            info = await asyncio.wait_for(loop.run_in_executor(None, _read_all, read_fd), 15)
        except TimeoutError:
            info = b""
        if not info:
            err = b""
            if self._proc.stderr is not None:
                with contextlib.suppress(TimeoutError):
                    err = await asyncio.wait_for(self._proc.stderr.read(), 2)
            await self.stop()
            raise CapabilityError(f"bubblewrap sandbox failed to start: "
                                  f"{err.decode(errors='replace').strip()[:300]}")
        self.init_pid = int(json.loads(info)["child-pid"])
        # bwrap reports its pid-namespace init before the sandbox is finished (uid maps,
        # pivot_root, chdir). Commands enter through the init's child once that child has
        # exec'd the idle command: from then on its root, cwd and ids are the sandbox's.
        loop_until = asyncio.get_running_loop().time() + 30
        while asyncio.get_running_loop().time() < loop_until:
            pid = _idle_child(self.init_pid)
            if pid is not None:
                self.enter_pid = pid
                return
            if self._proc is not None and self._proc.returncode is not None:
                break
            await asyncio.sleep(0.005)
        await self.stop()
        raise CapabilityError("bubblewrap sandbox did not finish starting")

    def command(self, argv: list[str], *, env: dict[str, str] | None = None) -> list[str]:
        """argv that runs ``argv`` inside the sandbox as the agent user."""
        if self.enter_pid is None:
            raise CapabilityError("sandbox is not running")
        environment = [f"{k}={v}" for k, v in (env or clean_env()).items()]
        return ["nsenter", "-t", str(self.enter_pid), "-U", "-m", "-p", "-i", "-u", "-n", "-C",
                "-r", "-w", "-S", str(INSIDE_UID), "-G", str(INSIDE_UID), "--",
                "/usr/bin/env", "-i", *environment, *argv]

    async def stop(self) -> None:
        if self.init_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init_pid, signal.SIGKILL)  # pid-ns init: takes every process
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._proc.wait(), 5)
        self.init_pid = None
        self.enter_pid = None
        self._proc = None


_IDLE = b"/usr/bin/sleep\0infinity\0"


def _idle_child(init_pid: int) -> int | None:
    """The init's child once it runs the idle command (the sandbox is then complete)."""
    try:
        children = Path(f"/proc/{init_pid}/task/{init_pid}/children").read_text().split()
    except OSError:
        return None
    for child in children:
        try:
            if Path(f"/proc/{child}/cmdline").read_bytes() == _IDLE:
                return int(child)
        except OSError:
            continue
    return None


def _read_all(fd: int) -> bytes:
    """Read bwrap's info JSON (it closes the fd once the sandbox is up)."""
    chunks = []
    with os.fdopen(fd, "rb") as f:
        while True:
            b = f.read(4096)
            if not b:
                break
            chunks.append(b)
            if b.rstrip().endswith(b"}"):
                break
    return b"".join(chunks)


class Unisolated:
    """No sandbox (only when the environment allows it): plain bash in the workspace."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self.init_pid = None
        self._groups: set[int] = set()

    async def start(self) -> None:
        return None

    def command(self, argv: list[str], *, env: dict[str, str] | None = None) -> list[str]:
        environment = [f"{k}={v}" for k, v in (env or clean_env(str(self.workspace))).items()]
        return ["/usr/bin/env", "-i", *environment, *argv]

    async def stop(self) -> None:
        return None


async def run_in(jail: Jail | Unisolated, command: str, *, timeout: float = 60.0,
                 max_output: int = 64_000, stdin: bytes | None = None,
                 cwd: str | None = None) -> ExecResult:
    """Run a shell command in the sandbox; kill it on timeout; cap the output."""
    script = command if cwd is None else f"cd {_quote(cwd)} && {command}"
    argv = jail.command(["/bin/bash", "-c", script])
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=str(jail.workspace) if isinstance(jail, Unisolated) else None,
        start_new_session=True, env=HOST_ENV)
    timed_out = False
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = await proc.communicate()
    code = proc.returncode if proc.returncode is not None else -9
    return make_result(-9 if timed_out else code, out, err, timed_out, max_output)


def make_result(code: int, out: bytes, err: bytes, timed_out: bool,
                max_output: int) -> ExecResult:
    """Decode a command's output, capping each stream at ``max_output`` characters."""

    def cap(text: str) -> str:
        if len(text) <= max_output:
            return text
        return text[:max_output] + f"\n[... truncated {len(text) - max_output} characters]"

    o, e = out.decode(errors="replace"), err.decode(errors="replace")
    return ExecResult(exit_code=code, stdout=cap(o), stderr=cap(e), timed_out=timed_out,
                      truncated=len(o) > max_output or len(e) > max_output)


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)
