"""Per-rollout process isolation with bubblewrap.

Design: each rollout gets one long-lived bubblewrap sandbox, started as a dedicated
unprivileged host uid, with fresh user/pid/ipc/uts/cgroup/network namespaces,
read-only system directories, size-limited ``/tmp`` and ``/run``, the rollout's
workspace at ``/workspace``, and an empty environment. Its pid-namespace init is a
small reaper that ignores every signal it can; the kernel never delivers SIGKILL to a
pid-namespace init from inside, so nothing the agent does can end it.

The sandbox is held by identity, never by pid number: right after start the host
opens a pidfd of the init and fds of its namespaces and root (checking the init is
still bwrap's child before and after), enters through those fds, and kills through the
pidfd. A sandbox whose init died cannot be entered (no process can be forked into its
pid namespace) and its reused pid number means nothing.

Every command (each ssh exec, every grader) is started by a small host process, the
spawner (:mod:`._spawner`): it joins the sandbox's cgroups (:mod:`.limits`) and
namespaces, drops the capability bounding set, becomes uid 1000 (graders: 1001, the
user namespace maps both to host uids of their own), sets ``no_new_privs`` and the
seccomp filter (:mod:`.seccomp`) and forks once more into the pid namespace;
processes it backgrounds outlive it. With
``network=True`` the sandbox's own network namespace reaches out through a user-mode
stack (slirp4netns) with the host's loopback and every host and private address
refused; otherwise it has only its loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hud_ray.capabilities import seccomp
from hud_ray.capabilities.limits import Cgroup, Limits
from hud_ray.errors import CapabilityError

INSIDE_UID = 1000
#: Graders run as this uid (group ``agent`` too): the agent can neither signal them
#: nor open their files or fds through /proc.
GRADER_UID = 1001
WORKDIR = "/workspace"
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: The environment of the host-side helpers (setpriv, bwrap, slirp4netns): nothing of
#: the actor's own environment, which may hold keys, can be read from inside a sandbox.
HOST_ENV = {"PATH": SAFE_PATH}
_SYSTEM_DIRS = ("/usr", "/etc")
_LINKS = (("usr/bin", "/bin"), ("usr/sbin", "/sbin"), ("usr/lib", "/lib"),
          ("usr/lib64", "/lib64"), ("usr/lib32", "/lib32"))
INIT_PATH = "/run/.hud-ray-init"
_BASH = os.path.realpath("/bin/bash")
#: The pid-namespace init: ignores every catchable signal and reaps orphans forever.
_INIT = ("trap '' HUP INT QUIT TERM USR1 USR2 ALRM PIPE VTALRM PROF XCPU XFSZ IO PWR SYS "
         "TSTP TTIN TTOU; while :; do sleep 86400 & wait; done")
_NS = (("ipc", os.CLONE_NEWIPC), ("uts", os.CLONE_NEWUTS), ("net", os.CLONE_NEWNET),
       ("pid", os.CLONE_NEWPID), ("cgroup", os.CLONE_NEWCGROUP), ("mnt", os.CLONE_NEWNS),
       ("user", os.CLONE_NEWUSER))  # the user namespace last: the others need host caps
#: Destinations a networked sandbox may never reach (besides the host's own addresses).
BLOCKED_NETS_V4 = ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
                   "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/3")
SLIRP_DNS = "10.0.2.3"


@dataclass
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False
    truncated: bool = False
    #: a resource limit the sandbox hit while this ran ("memory", "pids"), if any
    limit: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def bwrap_available() -> bool:
    return shutil.which("bwrap") is not None


def clean_env(home: str = WORKDIR) -> dict[str, str]:
    return {"PATH": SAFE_PATH, "HOME": home, "TERM": "xterm-256color", "LANG": "C.UTF-8",
            "USER": "agent", "LOGNAME": "agent", "SHELL": "/bin/bash"}


class Jail:
    """One rollout's sandbox: ``start`` it, ``spawn`` processes inside, ``stop`` it."""

    def __init__(self, workspace: Path, private: Path, host_uid: int, *, network: bool,
                 limits: Limits | None = None, name: str = "jail",
                 grader_uid: int | None = None, mounts: dict[str, Path] | None = None,
                 chdir: str = WORKDIR) -> None:
        self.workspace = workspace
        self.private = private  # per-session host dir for generated /etc files
        self.host_uid = host_uid
        self.grader_uid = grader_uid if grader_uid is not None else host_uid + 1
        self.network = network
        self.limits = limits or Limits()
        self.cgroup = Cgroup(f"hud-ray-{os.getpid()}-{host_uid}-{name}"[:200], self.limits)
        self.init_pid: int | None = None  # for display only; never used to signal or enter
        self._pidfd: int | None = None
        self._fds: dict[str, int] = {}
        self.mounts = dict(mounts or {})  # absolute path inside -> host dir, bound read-write
        self.chdir = chdir  # where processes start unless told otherwise
        self._proc: asyncio.subprocess.Process | None = None
        self._slirp: asyncio.subprocess.Process | None = None
        self._slirp_exit: int | None = None

    def _passwd(self) -> tuple[Path, Path]:
        passwd = self.private / "passwd"
        group = self.private / "group"
        passwd.write_text(f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
                          f"agent:x:{INSIDE_UID}:{INSIDE_UID}:agent:{WORKDIR}:/bin/bash\n"
                          f"grader:x:{GRADER_UID}:{GRADER_UID}:grader:{WORKDIR}:/bin/bash\n"
                          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
        group.write_text(f"root:x:0:\nagent:x:{INSIDE_UID}:grader\ngrader:x:{GRADER_UID}:\n"
                         "nogroup:x:65534:\n")
        return passwd, group

    def _argv(self, info_fd: int, seccomp_fd: int, block_fd: int, shell_fd: int) -> list[str]:
        passwd, group = self._passwd()
        tmp = str(self.limits.tmp_mb << 20)
        argv = ["setpriv", f"--reuid={self.host_uid}", f"--regid={self.host_uid}",
                "--clear-groups", "--", "bwrap", "--unshare-all", "--unshare-user",
                "--userns-block-fd", str(block_fd), "--as-pid-1",
                "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--uid",
                str(INSIDE_UID), "--gid", str(INSIDE_UID), "--hostname", "sandbox"]
        for d in _SYSTEM_DIRS:
            if os.path.isdir(d):
                argv += ["--ro-bind", d, d]
        for target, link in _LINKS:
            if os.path.exists("/" + target):
                argv += ["--symlink", target, link]
        if self.network:  # the host's resolver is unreachable; slirp4netns forwards DNS
            resolv = self.private / "resolv.conf"
            resolv.write_text(f"nameserver {SLIRP_DNS}\n")
            argv += ["--ro-bind", str(resolv), "/etc/resolv.conf"]
        argv += ["--ro-bind", str(passwd), "/etc/passwd", "--ro-bind", str(group), "/etc/group",
                 "--proc", "/proc", "--dev", "/dev",
                 # /tmp is shared by the agent and the grader, as on any host: sticky 1777
                 "--perms", "1777", "--size", tmp, "--tmpfs", "/tmp",
                 "--size", tmp, "--tmpfs", "/run", "--bind", str(self.workspace), WORKDIR]
        for inside, host in sorted(self.mounts.items()):
            argv += ["--bind", str(host), inside]
        argv += ["--chdir", self.chdir, "--clearenv", "--seccomp", str(seccomp_fd),
                 "--info-fd", str(info_fd),
                 # The init runs from an execute-only copy of bash: exec of a file its user
                 # cannot read makes the process non-dumpable, so the agent (same uid)
                 # cannot open /proc/1/mem or /proc/1/fd.
                 "--perms", "0111", "--file", str(shell_fd), INIT_PATH,
                 "--", INIT_PATH, "-c", _INIT]
        return argv

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self.cgroup.create()
        read_fd, write_fd = os.pipe()
        block_r, block_w = os.pipe()
        seccomp_fd = seccomp.memfd()
        shell_fd = os.open(_BASH, os.O_RDONLY)
        passed = (write_fd, seccomp_fd, block_r, shell_fd)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._argv(*passed), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                pass_fds=passed, start_new_session=True, env=HOST_ENV)
        except BaseException:
            os.close(block_w)
            raise
        finally:
            for fd in passed:
                os.close(fd)
        # bwrap is our unreaped child: its pid is its own until we wait for it.
        self._join(self._proc.pid)
        loop = asyncio.get_running_loop()
        try:
            info = await asyncio.wait_for(loop.run_in_executor(None, _read_all, read_fd), 15)
        except TimeoutError:
            info = b""
        if not info:
            os.close(block_w)
            err = b""
            if self._proc.stderr is not None:
                with contextlib.suppress(TimeoutError):
                    err = await asyncio.wait_for(self._proc.stderr.read(), 2)
            raise CapabilityError(f"bubblewrap sandbox failed to start: "
                                  f"{err.decode(errors='replace').strip()[:300]}")
        data = json.loads(info)
        pid = int(data["child-pid"])
        try:
            self._pidfd = os.pidfd_open(pid)
            self._check_identity(pid)
            # bwrap waits for the id maps: the agent and the grader, each its own host uid
            # (written by us, root, so the map may hold two ids).
            self._write_maps(pid)
            self._check_identity(pid)
            os.write(block_w, b"1")
        finally:
            os.close(block_w)
        # bwrap reports the init before the sandbox is finished (uid maps, pivot_root,
        # chdir); it is complete once the init has exec'd the reaper.
        deadline = loop.time() + 30
        while not _runs_init(pid):
            self._check_identity(pid)
            if loop.time() > deadline:
                raise CapabilityError("bubblewrap sandbox did not finish starting")
            await asyncio.sleep(0.002)
        for name, _ in _NS:
            self._fds[name] = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        self._fds["root"] = os.open(f"/proc/{pid}/root",
                                    os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        # Still the same live process: every fd above is the sandbox's.
        self._check_identity(pid)
        if os.stat(f"/proc/self/fd/{self._fds['net']}").st_ino != data["net-namespace"]:
            raise CapabilityError("sandbox identity check failed (network namespace)")
        # The init may have been forked before bwrap joined: join it too, while it is
        # alive (checked after: a live process's pid is never anyone else's).
        self._join(pid)
        self._check_identity(pid)
        self.init_pid = pid
        if self.network:
            await self._start_network()

    def _write_maps(self, pid: int) -> None:
        for kind in ("uid", "gid"):
            Path(f"/proc/{pid}/{kind}_map").write_text(
                f"{INSIDE_UID} {self.host_uid} 1\n{GRADER_UID} {self.grader_uid} 1\n")

    def _join(self, pid: int) -> None:
        for path in self.cgroup.procs_files():
            Path(path).write_text(str(pid))

    def _check_identity(self, pid: int) -> None:
        """The pidfd's process is alive and still the init bwrap (our child) forked."""
        assert self._pidfd is not None and self._proc is not None
        try:
            signal.pidfd_send_signal(self._pidfd, 0)
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            raise CapabilityError("bubblewrap sandbox exited while starting") from None
        if ppid != self._proc.pid or self._proc.returncode is not None:
            raise CapabilityError("sandbox identity check failed (init is not bwrap's child)")

    async def _start_network(self) -> None:
        """slirp4netns in the sandbox's network namespace, then a firewall that refuses
        the host's addresses and private ranges."""
        if shutil.which("slirp4netns") is None or shutil.which("nft") is None:
            raise CapabilityError("network=True needs slirp4netns and nft (apt-get install "
                                  "slirp4netns nftables)", retryable=False)
        net = self._fds["net"]
        ready_r, ready_w = os.pipe()
        exit_r, exit_w = os.pipe()
        try:
            self._slirp = await asyncio.create_subprocess_exec(
                "slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
                "--enable-seccomp", f"--ready-fd={ready_w}", f"--exit-fd={exit_r}",
                "--netns-type=path", f"/proc/self/fd/{net}", "tap0",
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, pass_fds=(ready_w, exit_r, net),
                start_new_session=True, env=HOST_ENV)
        finally:
            os.close(ready_w)
            os.close(exit_r)
        self._slirp_exit = exit_w
        loop = asyncio.get_running_loop()
        try:
            ready = await asyncio.wait_for(loop.run_in_executor(None, os.read, ready_r, 1), 10)
        except TimeoutError:
            ready = b""
        finally:
            os.close(ready_r)
        if ready != b"1":
            raise CapabilityError("slirp4netns did not start for the sandbox's network")
        rules = _firewall(host_addresses())
        nft = await asyncio.create_subprocess_exec(
            "nft", "-f", "-", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=HOST_ENV,
            preexec_fn=lambda: os.setns(net, os.CLONE_NEWNET))
        _, err = await nft.communicate(rules.encode())
        if nft.returncode != 0:
            raise CapabilityError(f"sandbox firewall failed: {err.decode()[:300]}",
                                  retryable=False)

    async def spawn(self, argv: list[str], *, env: dict[str, str] | None = None,
                    cwd: str | None = None, pass_fds: tuple[int, ...] = (),
                    stdin: int | None = None, stdout: int | None = None,
                    stderr: int | None = None, as_grader: bool = False) -> JailProcess:
        """Start ``argv`` inside the sandbox as the agent user (``as_grader``: as the
        grader), in a new session. ``pass_fds`` appear in it as fds 3, 4, ... in order.
        The agent's files are group-writable (umask 002) so graders may write them; the
        grader's are not writable by the agent (umask 022)."""
        if self._pidfd is None or not self.alive():
            raise CapabilityError("the sandbox has ended")
        ns = [self._fds[name] for name, _ in _NS]
        uid = GRADER_UID if as_grader else INSIDE_UID
        request = {"argv": argv, "env": env or clean_env(), "cwd": cwd or self.chdir, "uid": uid,
                   "groups": [INSIDE_UID] if as_grader else [],
                   "umask": 0o022 if as_grader else 0o002,
                   "procs": self.cgroup.procs_files()}
        return await _spawner().spawn(request, [*ns, self._fds["root"], *pass_fds],
                                      stdin, stdout, stderr)

    def fd_path(self, index: int, fd: int) -> str:
        """Where ``fd``, the ``index``-th of ``pass_fds``, is inside the sandbox."""
        return f"/dev/fd/{3 + index}"

    def alive(self) -> bool:
        if self._pidfd is None:
            return False
        try:
            signal.pidfd_send_signal(self._pidfd, 0)
        except ProcessLookupError:
            return False
        return True

    def events(self) -> dict[str, int]:
        return self.cgroup.events()

    async def kill_processes(self) -> None:
        """Kill every process in the sandbox except its init (before grading)."""
        if self._pidfd is None:
            return
        keep = {self.init_pid, self._proc.pid if self._proc else None}

        def frozen_kill() -> bool:
            if not self.cgroup.freeze(True):
                return False
            try:
                # Frozen processes cannot exit, so no pid read here is reused meanwhile.
                for pid in self.cgroup.pids():
                    if pid not in keep:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
            finally:
                self.cgroup.freeze(False)
            return True

        if await asyncio.get_running_loop().run_in_executor(None, frozen_kill):
            return
        proc = await self.spawn(["/bin/bash", "-c", "kill -9 -1"])
        await proc.wait()

    async def stop(self) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)  # takes every process
        if self._slirp_exit is not None:
            os.close(self._slirp_exit)  # slirp4netns exits when this closes
            self._slirp_exit = None
        for proc in (self._proc, self._slirp):
            if proc is None:
                continue
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5)
        if self.cgroup.dirs:
            await asyncio.get_running_loop().run_in_executor(None, self.cgroup.remove)
        for fd in [*self._fds.values(), *([self._pidfd] if self._pidfd is not None else [])]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = {}
        self._pidfd = None
        self.init_pid = None
        self._proc = None
        self._slirp = None


class JailProcess:
    """A command running in a sandbox (started by the spawner, not our child): the
    subset of ``asyncio.subprocess.Process`` the callers use."""

    def __init__(self, rid: int, pid: int, status: asyncio.StreamReader,
                 stdin: asyncio.StreamWriter | None, stdout: asyncio.StreamReader | None,
                 stderr: asyncio.StreamReader | None, spawner: _Spawner) -> None:
        self.id = rid
        self.pid = pid  # the host pid of its middle process; informational
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.returncode: int | None = None
        self._status = status
        self._spawner = spawner

    async def wait(self) -> int:
        if self.returncode is None:
            data = await self._status.read()
            try:
                self.returncode = int(data)
            except ValueError:
                self.returncode = -signal.SIGKILL  # its middle was killed
        return self.returncode

    def kill(self) -> None:
        """SIGKILL its whole process group (the command and what stayed in its group)."""
        if self.returncode is None:
            self._spawner.kill(self.id)

    async def communicate(self, input: bytes | None = None) -> tuple[bytes, bytes]:
        async def feed() -> None:
            if self.stdin is None:
                return
            with contextlib.suppress(ConnectionError, BrokenPipeError):
                if input:
                    self.stdin.write(input)
                    await self.stdin.drain()
            self.stdin.close()

        async def read(stream: asyncio.StreamReader | None) -> bytes:
            return await stream.read() if stream is not None else b""

        _, out, err = await asyncio.gather(feed(), read(self.stdout), read(self.stderr))
        await self.wait()
        return out, err


class _Spawner:
    """Client of this process's spawner (``_spawner.py``), started on first use."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._alock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = 0

    def _ensure(self) -> socket.socket:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None and self._sock is not None:
                return self._sock
            if self._sock is not None:
                self._sock.close()
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            prog = seccomp.memfd()
            script = str(Path(__file__).with_name("_spawner.py"))
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", script, str(theirs.fileno()), str(prog)],
                    pass_fds=(theirs.fileno(), prog), stdin=subprocess.DEVNULL,
                    env=HOST_ENV, start_new_session=True)
            finally:
                theirs.close()
                os.close(prog)
            ours.setsockopt(socket.SOL_SOCKET, 32, 8 << 20)  # SO_SNDBUFFORCE: big argv
            ours.setblocking(False)
            self._sock = ours
            return ours

    async def spawn(self, request: dict[str, Any], fds: list[int], stdin: int | None,
                    stdout: int | None, stderr: int | None) -> JailProcess:
        loop = asyncio.get_running_loop()
        if self._alock is None or self._loop is not loop:
            self._alock, self._loop = asyncio.Lock(), loop
        sock = self._ensure()
        to_close: list[int] = []
        ends: dict[str, int] = {}

        def child_end(name: str, spec: int | None, reading: bool) -> int:
            if spec == asyncio.subprocess.PIPE:
                r, w = os.pipe()
                ends[name] = w if reading else r
                to_close.append(r if reading else w)
                return r if reading else w
            if spec is None or spec == asyncio.subprocess.DEVNULL:
                fd = os.open(os.devnull, os.O_RDWR)
                to_close.append(fd)
                return fd
            return spec

        status_r, status_w = os.pipe()
        to_close.append(status_w)
        try:
            std = [child_end("stdin", stdin, True), child_end("stdout", stdout, False),
                   child_end("stderr", stderr, False)]
            async with self._alock:
                self._ids += 1
                request = {**request, "id": self._ids}
                data = json.dumps(request).encode()
                if len(data) > 4 << 20:
                    raise CapabilityError("command and environment exceed 4 MiB",
                                          retryable=False)
                socket.send_fds(sock, [data], [*std, status_w, *fds])
                reply = json.loads(await loop.sock_recv(sock, 65536) or b"{}")
        except BaseException:
            for fd in [*ends.values(), status_r]:
                os.close(fd)
            raise
        finally:
            for fd in to_close:
                os.close(fd)
        if "pid" not in reply:
            for fd in [*ends.values(), status_r]:
                os.close(fd)
            raise CapabilityError(f"cannot start a process in the sandbox: "
                                  f"{reply.get('error', 'the spawner is gone')}")
        status = await _reader(status_r)
        writer = await _writer(ends["stdin"]) if "stdin" in ends else None
        out = await _reader(ends["stdout"]) if "stdout" in ends else None
        err = await _reader(ends["stderr"]) if "stderr" in ends else None
        return JailProcess(reply["id"], reply["pid"], status, writer, out, err, self)

    def kill(self, rid: int) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.send(json.dumps({"kill": rid}).encode())


async def _reader(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                 os.fdopen(fd, "rb", 0))
    return reader


async def _writer(fd: int) -> asyncio.StreamWriter:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                        os.fdopen(fd, "wb", 0))
    return asyncio.StreamWriter(transport, protocol, None, loop)


_SPAWNER: _Spawner | None = None


def _spawner() -> _Spawner:
    global _SPAWNER
    if _SPAWNER is None:
        _SPAWNER = _Spawner()
    return _SPAWNER


def _runs_init(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(
            INIT_PATH.encode() + b"\0-c\0trap")
    except OSError:
        return False


_HOST_ADDRESSES: tuple[list[str], list[str]] | None = None


def host_addresses() -> tuple[list[str], list[str]]:
    """This host's IPv4 and IPv6 addresses (every interface)."""
    global _HOST_ADDRESSES
    if _HOST_ADDRESSES is None:
        v4: set[str] = set()
        v6: set[str] = set()
        with contextlib.suppress(Exception):
            out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True,
                                 timeout=10, env=HOST_ENV).stdout
            for link in json.loads(out):
                for a in link.get("addr_info", []):
                    (v6 if a.get("family") == "inet6" else v4).add(a["local"].split("%")[0])
        with contextlib.suppress(OSError):
            for info in socket.getaddrinfo(socket.gethostname(), None):
                (v6 if info[0] == socket.AF_INET6 else v4).add(str(info[4][0]).split("%")[0])
        _HOST_ADDRESSES = (sorted(v4), sorted(v6))
    return _HOST_ADDRESSES


def _firewall(addresses: tuple[list[str], list[str]]) -> str:
    v4 = sorted({*BLOCKED_NETS_V4, *addresses[0]})
    v6 = sorted({"::1", "fc00::/7", "fe80::/10", "ff00::/8", *addresses[1]})
    return ("table inet hudray {\n chain out {\n  type filter hook output priority 0; "
            "policy accept;\n  oifname \"lo\" accept\n"
            f"  ip daddr {SLIRP_DNS} meta l4proto {{ tcp, udp }} th dport 53 accept\n"
            f"  ip daddr {{ {', '.join(v4)} }} reject with icmpx type admin-prohibited\n"
            f"  ip6 daddr {{ {', '.join(v6)} }} reject with icmpx type admin-prohibited\n"
            " }\n}\n")


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

    async def start(self) -> None:
        return None

    async def spawn(self, argv: list[str], *, env: dict[str, str] | None = None,
                    cwd: str | None = None, pass_fds: tuple[int, ...] = (),
                    as_grader: bool = False,
                    **kwargs: Any) -> JailProcess | asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *argv, env=env or clean_env(str(self.workspace)), start_new_session=True,
            cwd=cwd if cwd and cwd != WORKDIR else str(self.workspace), pass_fds=pass_fds,
            **kwargs)

    def alive(self) -> bool:
        return True

    def fd_path(self, index: int, fd: int) -> str:
        return f"/dev/fd/{fd}"

    def events(self) -> dict[str, int]:
        return {}

    async def kill_processes(self) -> None:
        return None  # nothing to tell the agent's processes from the host's

    async def stop(self) -> None:
        return None


async def run_in(jail: Jail | Unisolated, command: str, *, timeout: float = 60.0,
                 max_output: int = 64_000, stdin: bytes | None = None,
                 cwd: str | None = None, env: dict[str, str] | None = None,
                 pass_fds: tuple[int, ...] = (), as_grader: bool = False) -> ExecResult:
    """Run a shell command in the sandbox; kill it on timeout; cap the output."""
    script = command if cwd is None else f"cd {_quote(cwd)} && {command}"
    before = jail.events()
    proc = await jail.spawn(
        ["/bin/bash", "-c", script], env=env, pass_fds=pass_fds, as_grader=as_grader,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    timed_out = False
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        timed_out = True
        kill_group(proc)
        out, err = await proc.communicate()
    code = proc.returncode if proc.returncode is not None else -9
    result = make_result(-9 if timed_out else code, out, err, timed_out, max_output)
    after = jail.events()
    hit = [k for k, v in after.items() if v > before.get(k, 0)]
    if hit:
        result.limit = ",".join(sorted(hit))
    return result


def kill_group(proc: JailProcess | asyncio.subprocess.Process) -> None:
    """SIGKILL a spawned command's process group (its session)."""
    if isinstance(proc, JailProcess):
        proc.kill()
    elif proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


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
