"""Issue 9's attacks on the ssh sandbox, performed for real; every one must fail.

Findings: 1 jail identity by pid number, 2 reward forging, 3 network=True shared the
host's network, 5 no resource limits, 6 no hardening (no_new_privs, seccomp, caps).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from hud_ray import Task
from hud_ray.capabilities.isolation import bwrap_available
from hud_ray.capabilities.ssh import Workspace, node_address
from hud_ray.capabilities.ssh_client import SSHClient
from hud_ray.errors import CapabilityError
from hud_ray.sandbox import Sandbox

pytestmark = pytest.mark.skipif(not bwrap_available() or os.geteuid() != 0,
                                reason="needs bubblewrap and root")
ROOT = Path(__file__).resolve().parent.parent
FORGER = ("nohup bash -c 'while :; do echo 1 > /workspace/.hud_reward; "
          "sleep 0.01; done' > /dev/null 2>&1 &")


async def until(condition, timeout: float = 30.0) -> None:
    """Wait for ``condition()`` to hold (polling), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.02)


@pytest.fixture
async def ws():
    w = Workspace()
    await w.start()
    yield w
    await w.stop()


# ---- finding 2: reward forging -------------------------------------------------------
BASH_GRADED = [("fix_script", {"name": "Ada"}), ("fix_script", {"name": "Grace"}),
               ("sum_by_product", {"product": "apple"}), ("sum_by_product", {"product": "pear"}),
               ("write_fizzbuzz", {"n": 15}), ("service_report", {})]


async def test_a_background_reward_forger_scores_nothing():
    sb = Sandbox.from_sources({"shell": str(ROOT / "tasksets/shell.py")})
    try:
        for task_id, args in BASH_GRADED:
            p = await sb.start(Task(env="shell", id=task_id, args=args))
            cap = next(c for c in p.capabilities if c.protocol == "ssh/2")
            agent = await SSHClient.connect(cap)
            assert (await agent.run(FORGER)).exit_code == 0
            await agent.run("sleep 0.1; cat /workspace/.hud_reward")
            grade = await sb.grade(p.session_id, None)
            assert grade.reward == 0.0, (task_id, grade)
            with pytest.raises(CapabilityError):  # the agent's turn is over
                await SSHClient.connect(cap)
    finally:
        await sb.close()


async def test_processes_are_killed_before_grading_unless_kept(ws):
    from hud_ray.env import Session, _current_session  # the grader's view of its rollout
    from hud_ray.graders import BashGrader

    c = await SSHClient.connect((await ws.open("g"))[0])
    await c.run("nohup sleep 991 > /dev/null 2>&1 &")
    session = Session(id="g", task=Task(env="x", id="y"), capabilities=[])
    session.resources["shell"] = ws.session_context("g")
    token = _current_session.set(session)
    try:
        kept = await BashGrader.grade(command="pgrep -f 'sleep 991'", keep_processes=True)
        assert kept.value == 1.0
        default = await BashGrader.grade(command="pgrep -f 'sleep 991'")
        assert default.value == 0.0
        scored = await BashGrader.grade(command="echo 0.5 > $HUD_REWARD_FILE")
        assert scored.value == 0.5 and scored.info["reward_file"] == 0.5
    finally:
        _current_session.reset(token)


async def test_kept_processes_cannot_reach_the_graders_reward_pipe(ws):
    """With keep_processes the agent's processes run on during grading; the grader is
    another uid, so they cannot write its reward pipe through /proc/PID/fd."""
    from hud_ray.env import Session, _current_session
    from hud_ray.graders import BashGrader

    c = await SSHClient.connect((await ws.open("k"))[0])
    forger = ("nohup bash -c 'while :; do for f in /proc/[0-9]*/fd/*; do "
              "echo 1 > $f; done 2>/dev/null; sleep 0.01; done' > /dev/null 2>&1 &")
    assert (await c.run(forger)).exit_code == 0
    session = Session(id="k", task=Task(env="x", id="y"), capabilities=[])
    session.resources["shell"] = ws.session_context("k")
    token = _current_session.set(session)
    try:
        grade = await BashGrader.grade(command="sleep 2; exit 1", keep_processes=True)
        assert grade.value == 0.0 and grade.info["reward_file"] is None, grade
        r = await ws.session_context("k").exec("pgrep -fc 'proc/\\[0-9'")
        assert int(r.stdout) >= 1  # the forger really was running all along
    finally:
        _current_session.reset(token)


# ---- finding 1: identity by pid ------------------------------------------------------
async def test_the_agent_cannot_kill_its_sandbox_infrastructure(ws):
    a = await SSHClient.connect((await ws.open("a"))[0])
    await a.run("pkill -x sleep; pkill -x bash; kill -9 -1; kill -9 1; kill -STOP 1; "
                "for s in $(seq 1 31) $(seq 34 64); do kill -$s 1; done", timeout=10)
    assert (await a.run("echo alive")).stdout == "alive\n"
    assert (await a.run("nohup sleep 1234 > /dev/null 2>&1 & echo started")).exit_code == 0
    for path in ("/proc/1/mem", "/proc/1/fd/0", "/proc/1/environ"):  # pid 1 is not dumpable
        r = await a.run(f"python3 -c \"open('{path}', 'rb').read(1)\"")
        assert r.exit_code != 0 and "Permission denied" in r.stderr, (path, r)


def _steer(pid: int) -> subprocess.Popen[bytes] | None:
    """Start a host root process that gets pid number ``pid`` (via ns_last_pid)."""
    for _ in range(200):
        Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
        proc = subprocess.Popen(["sleep", "300"])
        if proc.pid == pid:
            return proc
        proc.kill()
        proc.wait()
    return None


async def test_reused_pids_never_redirect_commands_or_teardown(ws):
    marker = Path(f"/tmp/hud-ray-host-only-{os.getpid()}.txt")  # any host user may read it
    marker.write_text("HOST-SECRET\n")
    marker.chmod(0o644)
    await ws.open("a")
    # Say rollout a's sandbox died, and its pid numbers went to a root host process.
    jail = ws.session_context("a").jail
    numbers = {n for n in (getattr(jail, "enter_pid", None), jail.init_pid) if n}
    for n in numbers:
        os.kill(n, 9)
    await until(lambda: not any(Path(f"/proc/{n}").exists() for n in numbers))
    squatters = [_steer(n) for n in sorted(numbers)]
    if None in squatters:
        for s in squatters:
            if s:
                s.kill()
        pytest.skip("could not steer pid reuse (busy machine)")
    try:
        session = ws.session_context("a")
        try:
            r = await session.exec(f"cat {marker}; id -u")
            assert "HOST-SECRET" not in r.stdout and r.exit_code != 0, r
        except CapabilityError:
            pass  # refused outright: the sandbox has ended
        await ws.close("a")
        for s in squatters:
            assert s is not None and s.poll() is None  # teardown did not touch them
    finally:
        marker.unlink()
        for s in squatters:
            if s:
                s.kill()
                s.wait()


# ---- finding 3: network=True ---------------------------------------------------------
async def test_network_true_cannot_reach_host_listeners():
    hits: list[str] = []

    async def handle(reader, writer):
        hits.append("tcp")
        writer.close()

    servers = [await asyncio.start_server(handle, host, 0)
               for host in ("127.0.0.1", node_address())]
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind(b"\0hud-ray-test-abstract")
    abstract.listen()
    abstract.setblocking(False)
    w = Workspace(network=True)
    try:
        c = await SSHClient.connect((await w.open("n"))[0])
        assert c.capability.params["network"] is True
        r = await c.run("ip -o addr; ip route", timeout=10)
        assert "tap0" in r.stdout and "default via 10.0.2.2" in r.stdout, r
        assert (await c.run("cat /etc/resolv.conf")).stdout == "nameserver 10.0.2.3\n"
        targets = [s.sockets[0].getsockname()[:2] for s in servers]
        port = targets[0][1]
        targets += [("10.0.2.2", port), ("10.0.2.2", targets[1][1])]
        for host, port in targets:
            r = await c.run(f"timeout 3 bash -c 'echo hi > /dev/tcp/{host}/{port}' && echo OPEN",
                            timeout=10)
            assert "OPEN" not in r.stdout, (host, port)
        r = await c.run("python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); "
                        "s.connect(b'\\0hud-ray-test-abstract'); print('OPEN')\"", timeout=10)
        assert "OPEN" not in r.stdout
        with contextlib.suppress(BlockingIOError):
            abstract.accept()
            hits.append("unix")
        assert hits == []
        jail = w.session_context("n").jail
        slirp = jail._slirp
        await w.close("n")
        assert slirp is not None and slirp.returncode is not None  # gone with the rollout
    finally:
        await w.stop()
        abstract.close()
        for s in servers:
            s.close()


async def test_network_false_is_loopback_only(ws):
    c = await SSHClient.connect((await ws.open("off"))[0])
    r = await c.run("ip -o link | cut -d: -f2; echo routes: $(ip route | wc -l)", timeout=10)
    assert r.stdout.split() == ["lo", "routes:", "0"], r


# ---- finding 6: hardening ------------------------------------------------------------
async def test_no_new_privs_no_capabilities_seccomp_no_nested_namespaces(ws):
    c = await SSHClient.connect((await ws.open("h"))[0])
    for pid in ("self", "1"):  # an agent command and the sandbox's init
        status = (await c.run(f"cat /proc/{pid}/status")).stdout
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        assert fields["NoNewPrivs"].strip() == "1", pid
        assert int(fields["CapBnd"], 16) == 0 and int(fields["CapEff"], 16) == 0, pid
        assert fields["Seccomp"].strip() == "2", pid
    for cmd in ("unshare -U true", "unshare -Ur true", "unshare -n true", "unshare -m true",
                "unshare -p -f true", "nsenter -t 1 -U true", "nft list ruleset",
                "python3 -c 'import os; os.unshare(os.CLONE_NEWUSER)'",
                "python3 -c 'import ctypes; assert ctypes.CDLL(None).syscall(250, 0, 0) == 0'",
                "python3 -c 'import ctypes; assert ctypes.CDLL(None).syscall(101, 16, 1) == 0'"):
        r = await c.run(cmd, timeout=10)
        assert r.exit_code != 0, (cmd, r)
    # ordinary work still works: threads, subprocesses, pipes
    r = await c.run("python3 -c 'import threading, subprocess; t = threading.Thread(target=print);"
                    " t.start(); t.join(); print(subprocess.run([\"echo\", \"ok\"], "
                    "capture_output=True, text=True).stdout.strip())' | tail -1")
    assert r.stdout.strip() == "ok", r


# ---- finding 5: resource limits ------------------------------------------------------
FORK_BOMB = """python3 -c '
import os, time
n = 0
for i in range(1000):
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
    except OSError:
        break
print(n)
'"""


async def test_fork_bomb_memory_and_disk_are_bounded_and_cleaned_up():
    w = Workspace(limits={"pids": 64, "memory_mb": 160, "tmp_mb": 16, "workspace_mb": 16})
    try:
        c = await SSHClient.connect((await w.open("l"))[0])
        jail = w.session_context("l").jail
        groups = dict(jail.cgroup.dirs)
        assert {"memory", "pids", "cpu"} <= set(groups)
        assert (groups["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "100000"
        session = w.session_context("l")
        await session.exec(FORK_BOMB + " > /workspace/forks.txt 2>&1 < /dev/null &")
        forks = session.path / "forks.txt"
        await until(lambda: forks.read_text().strip() != "")
        assert 32 < int(forks.read_text()) < 64 and len(jail.cgroup.pids()) <= 64
        assert jail.events()["pids"] > 0
        await jail.kill_processes()
        r = await session.exec("python3 -c 'a = bytearray(600 << 20); print(len(a))'",
                               timeout=60)
        assert r.exit_code != 0 and r.limit == "memory", r
        for target in ("/tmp/big", "/workspace/big"):
            r = await session.exec(f"dd if=/dev/zero of={target} bs=1M count=64 2>&1; "
                                   f"stat -c %s {target}", timeout=60)
            assert "No space left" in r.stdout and int(r.stdout.split()[-1]) <= 16 << 20, r
        assert (await c.run("echo still-works")).stdout == "still-works\n"
        path = session.path
        await w.close("l")
        assert all(not d.exists() for d in groups.values())
        assert str(path) not in Path("/proc/mounts").read_text()
    finally:
        await w.stop()
    host = await asyncio.create_subprocess_exec("true")
    assert await host.wait() == 0  # the host forks fine


async def test_cpu_is_capped():
    w = Workspace(limits={"cpus": 0.2})
    try:
        await w.open("cpu")
        session = w.session_context("cpu")
        stat = session.jail.cgroup.dirs["cpu"] / "cpu.stat"
        t0 = time.monotonic()
        r = await session.exec("timeout 1 bash -c 'while :; do :; done'; true", timeout=30)
        assert time.monotonic() - t0 < 10 and r.exit_code == 0, r
        fields = dict(line.split() for line in stat.read_text().splitlines())
        # a busy loop gets 20 ms of every 100 ms period, and is throttled for the rest
        assert int(fields["nr_throttled"]) > 0 and int(fields["throttled_time"]) > 0, fields
    finally:
        await w.stop()


async def test_a_failing_setup_leaves_no_mount_or_directory():
    def setup(path: Path) -> None:
        raise RuntimeError("setup broke")

    w = Workspace(setup=setup)
    try:
        with pytest.raises(RuntimeError, match="setup broke"):
            await w.open("bad")
        assert w._base is not None and not (w._base / "bad").exists()
        assert str(w._base / "bad") not in Path("/proc/mounts").read_text()
    finally:
        await w.stop()


def test_bad_limits_are_a_clear_error():
    with pytest.raises(CapabilityError, match="unknown workspace limits"):
        Workspace(limits={"cpu": 2})
    with pytest.raises(CapabilityError, match="pids must be a positive"):
        Workspace(limits={"pids": 0})
