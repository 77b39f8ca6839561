"""Attacks on the `hud-ray serve` control channel and the `hud-ray task` state files."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hud_ray.errors import ConfigError, EnvError
from hud_ray.sandbox import Sandbox, load_environments
from hud_ray.serve import UNAUTHORIZED, ControlClient, ControlServer

BIN = Path(sys.executable).parent / "hud-ray"
TOKEN = "a-test-token-of-reasonable-length"
ARGS = {"word": "banana", "letter": "a"}


def _sandbox(root: Path) -> Sandbox:
    return Sandbox(load_environments({"letters": str(root / "tasksets/letters.py")}))


async def _server(root: Path, **kw) -> tuple[ControlServer, str, int]:
    server = ControlServer(_sandbox(root), token=TOKEN, **kw)
    host, port = await server.start()
    return server, host, port


async def _client(host: str, port: int, token: str = TOKEN) -> ControlClient:
    return await ControlClient.connect(host, port, token=token)


async def _park(host: str, port: int) -> str:
    """Start a task on a fresh connection and drop it; return the parked session id."""
    c = await _client(host, port)
    session = (await c.call("hello"))["session_id"]
    await c.call("tasks.start", {"id": "count_letter", "args": ARGS})
    await c.close()
    return session


async def _raw(host: str, port: int, frames: list[dict]) -> list[dict]:
    """Send frames on one connection; collect replies until the server closes it."""
    reader, writer = await asyncio.open_connection(host, port)
    replies = []
    try:
        for frame in frames:
            writer.write(json.dumps(frame).encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 10)
            if not line:
                break
            replies.append(json.loads(line))
        else:
            assert await asyncio.wait_for(reader.readline(), 10) == b""  # and it hangs up
    finally:
        writer.close()
    return replies


async def _until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


# ---- authentication -----------------------------------------------------------------------
@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN[:-1], TOKEN + "x", 12345,
                                   [TOKEN]])
async def test_calls_without_the_right_token_are_refused(root, token):
    server, host, port = await _server(root)
    try:
        for method, params in [("hello", {}), ("tasks.list", {}),
                               ("tasks.start", {"id": "count_letter", "args": ARGS}),
                               ("tasks.grade", {"answer": "3"}), ("tasks.cancel", {})]:
            frame = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            if token is not None:
                frame["token"] = token
            # the right token on a second frame does not help: the first one closed it
            right = {**frame, "id": 2, "token": TOKEN}
            replies = await _raw(host, port, [frame, right])
            assert len(replies) == 1, replies
            assert replies[0]["error"]["code"] == UNAUTHORIZED
            assert "result" not in replies[0]
        assert server.sandbox.active_sessions == 0
        with pytest.raises(EnvError, match="unauthorized") as err:
            await (await _client(host, port, "wrong")).call("tasks.list")
        assert err.value.code == "control_unauthorized"
    finally:
        await server.close()


async def test_a_silent_unauthenticated_connection_is_dropped(root):
    server = ControlServer(_sandbox(root), token=TOKEN, auth_timeout=0.3)
    host, port = await server.start()
    try:
        reader, writer = await asyncio.open_connection(host, port)
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, not held open
        writer.close()
        c = await _client(host, port)  # an authenticated one may idle
        await c.call("hello")
        await asyncio.sleep(0.6)
        assert "count_letter" in str(await c.call("tasks.list"))
        await c.close()
    finally:
        await server.close()


# ---- session ids --------------------------------------------------------------------------
async def test_errors_never_list_session_ids(root):
    server, host, port = await _server(root)
    try:
        parked = [await _park(host, port) for _ in range(3)]
        assert len(set(parked)) == 3 and all(len(s) >= 24 for s in parked)
        c = await _client(host, port)
        mine = (await c.call("hello"))["session_id"]
        messages = []
        for method, params in [("tasks.grade", {"answer": "3"}), ("tasks.cancel", {}),
                               ("hello", {"session_id": "x" * 24}),
                               ("tasks.start", {"id": "nope"}), ("nope", {})]:
            with pytest.raises(EnvError) as err:
                await c.call(method, params)
            messages.append(str(err.value))
        await c.close()
        for message in messages:
            assert not any(s in message for s in [*parked, mine]), message
        assert server.sandbox.active_sessions == 3  # nobody adopted a parked session
    finally:
        await server.close()


async def test_hello_cannot_take_over_another_session(root):
    server, host, port = await _server(root)
    try:
        owner = await _client(host, port)
        victim = (await owner.call("hello"))["session_id"]
        await owner.call("tasks.start", {"id": "count_letter", "args": ARGS})
        thief = await _client(host, port)
        mine = (await thief.call("hello"))["session_id"]
        assert mine != victim
        # while the owner is connected, even the right id is refused
        with pytest.raises(EnvError, match="no such parked session") as err:
            await thief.call("hello", {"session_id": victim})
        assert err.value.code == "control_unknown_session"
        await owner.close()
        await _until(lambda: victim not in server._live)
        guesses = [victim[:-1] + ("A" if victim[-1] != "A" else "B"), victim.upper(),
                   victim[:12], "", "0" * 24, 1, None, ["x"]]
        for guess in guesses:
            if guess is None:
                continue
            with pytest.raises(EnvError) as err:
                await thief.call("hello", {"session_id": guess})
            assert victim not in str(err.value)
        # a bare grade does not adopt somebody else's parked task
        with pytest.raises(EnvError, match="no task in progress"):
            await thief.call("tasks.grade", {"answer": "3"})
        with pytest.raises(EnvError, match="no task in progress"):
            await thief.call("tasks.cancel")
        await thief.close()
        # the owner, with its id, resumes and grades; then the id is dead
        back = await _client(host, port)
        await back.call("hello", {"session_id": victim})
        assert (await back.call("tasks.grade", {"answer": "3"}))["score"] == 1.0
        await back.close()
        late = await _client(host, port)
        with pytest.raises(EnvError, match="no such parked session"):
            await late.call("hello", {"session_id": victim})
        await late.close()
    finally:
        await server.close()


# ---- cap and expiry ---------------------------------------------------------------------
async def test_parked_sessions_are_capped(root):
    server, host, port = await _server(root, max_parked=2)
    try:
        first = await _park(host, port)
        second = await _park(host, port)
        c = await _client(host, port)
        with pytest.raises(EnvError, match="too many parked sessions") as err:
            await c.call("tasks.start", {"id": "count_letter", "args": ARGS})
        assert err.value.code == "control_busy"
        assert first not in str(err.value) and second not in str(err.value)
        assert server.sandbox.active_sessions == 2
        # a session that replaces its own task does not count twice
        again = await _client(host, port)
        await again.call("hello", {"session_id": first})
        await again.call("tasks.start", {"id": "count_letter", "args": ARGS})
        await again.call("tasks.cancel")
        await again.close()
        await c.call("tasks.start", {"id": "count_letter", "args": ARGS})  # room again
        assert server.sandbox.active_sessions == 2
        await c.close()
    finally:
        await server.close()
    assert server.sandbox.active_sessions == 0


async def test_idle_parked_sessions_expire_and_are_cleaned(root):
    ended: list[str] = []
    server, host, port = await _server(root, idle_ttl=0.5, on_session_end=ended.append)
    try:
        session = await _park(host, port)
        assert server.sandbox.active_sessions == 1
        await _until(lambda: server.sandbox.active_sessions == 0)
        assert ended == [session] and server.parked == 0
        c = await _client(host, port)
        with pytest.raises(EnvError, match="no such parked session"):
            await c.call("hello", {"session_id": session})
        # a session in use stays alive while it keeps calling
        await c.call("tasks.start", {"id": "count_letter", "args": ARGS})
        for _ in range(6):
            await asyncio.sleep(0.2)
            await c.call("tasks.list")
        assert (await c.call("tasks.grade", {"answer": "3"}))["score"] == 1.0
        await c.close()
    finally:
        await server.close()


# ---- binding ------------------------------------------------------------------------------
async def test_non_loopback_bind_needs_insecure(root):
    server = ControlServer(_sandbox(root), token=TOKEN)
    for host in ("0.0.0.0", "::", "", "example.org"):
        with pytest.raises(ConfigError, match="--insecure"):
            await server.start(host, 0)
    _, port = await server.start("0.0.0.0", 0, insecure=True)
    await server.close()
    with pytest.raises(ConfigError, match="token"):
        ControlServer(_sandbox(root), token="")


def test_serve_refuses_a_non_loopback_bind(root):
    out = subprocess.run([str(BIN), "serve", str(root / "tasksets/letters.py"), "--host",
                          "0.0.0.0", "--port", "0"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert len(out.stderr.strip().splitlines()) == 1 and "--insecure" in out.stderr


# ---- the CLI against a real `hud-ray serve` -----------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Serve:
    """A `hud-ray serve` subprocess with its own state dir."""

    def __init__(self, root: Path, state: Path, taskset: str = "letters", *extra: str) -> None:
        self.port = _free_port()
        self.state = state
        self.env = {**os.environ, "HUD_RAY_STATE_DIR": str(state)}
        self.proc = subprocess.Popen(
            [str(BIN), "serve", str(root / f"tasksets/{taskset}.py"), "--port", str(self.port),
             *extra], stderr=subprocess.PIPE, text=True, env=self.env)
        line = self.proc.stderr.readline()
        assert f"tcp://127.0.0.1:{self.port}" in line, line

    def task(self, *args: str, env: dict | None = None, prefix: tuple = ()
             ) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, str(BIN), "task", *args, "--url",
                               f"127.0.0.1:{self.port}"], capture_output=True, text=True,
                              env=env or self.env, timeout=120)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


@pytest.fixture
def serve(root, tmp_path):
    started: list[_Serve] = []

    def start(*extra: str, taskset: str = "letters", state: Path | None = None) -> _Serve:
        s = _Serve(root, state or tmp_path / "state", taskset, *extra)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _descendants(pid: int) -> int:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    todo, seen = [pid], 0
    while todo:
        for child in children.get(todo.pop(), []):
            seen += 1
            todo.append(child)
    return seen


needs_jail = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("bwrap") is None,
                                reason="needs root and bubblewrap")


def _wait(cond, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


@needs_jail
def test_extra_task_start_does_not_leak_a_sandbox(serve):
    s = serve(taskset="shell")
    assert s.task("start", "find_failed_order").returncode == 0
    one = _descendants(s.proc.pid)
    assert one >= 1  # the session's jail
    for _ in range(3):
        start = s.task("start", "find_failed_order")
        assert start.returncode == 0, start.stderr
    _wait(lambda: _descendants(s.proc.pid) <= one)
    assert s.task("cancel").returncode == 0
    _wait(lambda: _descendants(s.proc.pid) == 0)


def test_task_cancel_with_nothing_parked_fails(serve):
    s = serve()
    stale = s.state / "keys" / "0123456789abcdef-shell"  # the old layout piled keys up here
    stale.parent.mkdir(mode=0o700)
    stale.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    nothing = s.task("cancel")
    assert not stale.exists()  # swept: no saved session owns it
    assert nothing.returncode != 0 and "cancelled" not in nothing.stdout
    assert nothing.stderr.strip().count("\n") == 0 and "no task in progress" in nothing.stderr
    assert s.task("start", "count_letter", "--args", json.dumps(ARGS)).returncode == 0
    done = s.task("cancel")
    assert done.returncode == 0 and "cancelled" in done.stdout
    again = s.task("cancel")
    assert again.returncode != 0 and "no task in progress" in again.stderr


@needs_jail
def test_key_files_are_private_and_removed_at_session_end(serve, tmp_path):
    state = tmp_path / "state"
    (state / "keys").mkdir(parents=True)
    state.chmod(0o755)
    (state / "keys").chmod(0o777)  # a pre-existing, too-open directory gets corrected
    s = serve(taskset="shell", state=state)
    token_file = state / f"control-{s.port}.token"
    assert _mode(state) == 0o700 and _mode(token_file) == 0o600

    def started() -> list[Path]:
        start = s.task("start", "find_failed_order")
        assert start.returncode == 0, start.stderr
        files = sorted(p for p in (state / "keys").rglob("*") if p.is_file())
        assert len(files) == 2  # the private key and its known_hosts
        for p in files:
            assert _mode(p) == 0o600, p
            assert _mode(p.parent) == 0o700
        assert _mode(state / "keys") == 0o700
        assert _mode(state / "task-session.json") == 0o600
        return files

    def keys() -> list[Path]:
        return list((state / "keys").rglob("*"))

    started()
    assert s.task("grade", "--answer", "1").returncode == 0
    assert keys() == []
    started()
    assert s.task("cancel").returncode == 0
    assert keys() == []
    started()
    s.stop()  # the server exiting ends the session: its keys and its token go
    assert keys() == [] and not token_file.exists()

    s = serve("--idle-ttl", "1", taskset="shell", state=state)
    started()
    _wait(lambda: keys() == [])  # expired


def test_symlinked_state_files_are_not_written_through(serve, tmp_path, root):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (state / "task-session.json").symlink_to(victim)
    port = _free_port()
    (state / f"control-{port}.token").symlink_to(victim)
    env = {**os.environ, "HUD_RAY_STATE_DIR": str(state)}
    proc = subprocess.Popen([str(BIN), "serve", str(root / "tasksets/letters.py"), "--port",
                             str(port)], stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "tcp://" in proc.stderr.readline()
        out = subprocess.run([str(BIN), "task", "start", "count_letter", "--args",
                              json.dumps(ARGS), "--url", f"127.0.0.1:{port}"],
                             capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert victim.read_text() == "precious\n"
    sessions = state / "task-session.json"
    assert not sessions.is_symlink() and _mode(sessions) == 0o600
    assert len(json.loads(sessions.read_text())) == 1
    # a state dir that is itself a symlink is refused
    link = tmp_path / "linked-state"
    link.symlink_to(tmp_path / "victim-dir", target_is_directory=True)
    (tmp_path / "victim-dir").mkdir()
    bad = subprocess.run([str(BIN), "task", "cancel", "--token", "x", "--url",
                          f"127.0.0.1:{port}"], capture_output=True, text=True,
                         env={**env, "HUD_RAY_STATE_DIR": str(link)}, timeout=60)
    assert bad.returncode != 0 and "symlink" in bad.stderr


# ---- another local user ---------------------------------------------------------------------
NOBODY = ("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--")

# What another local user can do without our code: read files, speak the wire protocol.
ATTACKER = r"""
import json, os, socket, sys
state, port = sys.argv[1], int(sys.argv[2])
out = {}
for name in ("token", "listdir"):
    try:
        if name == "token":
            out[name] = open(os.path.join(state, f"control-{port}.token")).read()
        else:
            out[name] = os.listdir(state)
    except OSError as exc:
        out[name] = type(exc).__name__
def call(frame):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(json.dumps(frame).encode() + b"\n")
        return json.loads(s.makefile().readline())
for method, params in [("hello", {}), ("tasks.list", {}), ("tasks.grade", {"answer": "3"}),
                       ("tasks.cancel", {}), ("tasks.start", {"id": "count_letter", "args": {}})]:
    for token in (None, "guess", ""):
        frame = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        if token is not None:
            frame["token"] = token
        out[f"{method}/{token}"] = call(frame)
print(json.dumps(out))
"""


def _python_for(uid: int) -> str | None:
    for python in ("/usr/bin/python3", sys.executable):
        ok = subprocess.run([*NOBODY, python, "-c", "pass"], capture_output=True, timeout=30)
        if ok.returncode == 0:
            return python
    return None


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv")
def test_another_local_user_cannot_read_the_token_or_call(serve):
    python = _python_for(65534)
    if python is None:
        pytest.skip("no Python that uid 65534 can run")
    s = serve()
    token_file = s.state / f"control-{s.port}.token"
    token = token_file.read_text().strip()
    assert _mode(s.state) == 0o700 and _mode(token_file) == 0o600
    start = s.task("start", "count_letter", "--args", json.dumps(ARGS))
    assert start.returncode == 0, start.stderr
    session = json.loads((s.state / "task-session.json").read_text())[f"127.0.0.1:{s.port}"]
    attack = subprocess.run([*NOBODY, python, "-c", ATTACKER, str(s.state), str(s.port)],
                            capture_output=True, text=True, timeout=60, cwd="/",
                            env={"PATH": os.environ["PATH"]})
    assert attack.returncode == 0, attack.stderr
    out = json.loads(attack.stdout)
    assert out.pop("token") == "PermissionError" and out.pop("listdir") == "PermissionError"
    for call, reply in out.items():
        assert reply["error"]["code"] == UNAUTHORIZED and "result" not in reply, call
    assert token not in attack.stdout and session not in attack.stdout
    # the owner's parked task is untouched
    graded = s.task("grade", "--answer", "3")
    assert '"score": 1.0' in graded.stdout, graded.stderr
