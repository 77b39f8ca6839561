"""`hud-ray serve` + `hud-ray task`: the control channel over real TCP, split start/grade."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hud_ray.errors import EnvError
from hud_ray.sandbox import Sandbox, load_environments
from hud_ray.serve import ControlClient, ControlServer

BIN = Path(sys.executable).parent / "hud-ray"


async def test_control_channel_methods_and_parking(root):
    envs = load_environments({"letters": str(root / "tasksets/letters.py")})
    server = ControlServer(Sandbox(envs), token="t0ken-for-tests")
    host, port = await server.start()
    try:
        c1 = await ControlClient.connect(host, port, token="t0ken-for-tests")
        hello = await c1.call("hello")
        assert hello["env"]["name"] == "letters"
        listed = await c1.call("tasks.list")
        assert [t["id"] for t in listed["tasks"]] == ["count_letter"]
        started = await c1.call("tasks.start", {"id": "count_letter",
                                                "args": {"word": "banana", "letter": "a"}})
        assert "banana" in started["prompt"]
        await c1.close()  # the session stays parked
        c2 = await ControlClient.connect(host, port, token="t0ken-for-tests")
        await c2.call("hello", {"session_id": hello["session_id"]})
        graded = await c2.call("tasks.grade", {"answer": "3"})
        assert graded["score"] == 1.0
        with pytest.raises(EnvError, match="no task in progress"):
            await c2.call("tasks.grade", {"answer": "3"})
        with pytest.raises(EnvError, match="unknown task"):
            await c2.call("tasks.start", {"id": "nope"})
        with pytest.raises(EnvError, match="method not found"):
            await c2.call("tasks.frobnicate")
        with pytest.raises(EnvError, match="no task in progress"):
            await c2.call("tasks.cancel")
        assert (await c2.call("bye")) == {"goodbye": True}
        await c2.close()
    finally:
        await server.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_and_task_cli(root, tmp_path):
    port = _free_port()
    env = {**os.environ, "HUD_RAY_STATE_DIR": str(tmp_path / "state")}
    server = subprocess.Popen([str(BIN), "serve", str(root / "tasksets/letters.py"), "--port",
                               str(port)], stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = server.stderr.readline()
        assert f"tcp://127.0.0.1:{port}" in line
        url = ["--url", f"127.0.0.1:{port}"]

        def task(*args):
            return subprocess.run([str(BIN), "task", *args, *url], capture_output=True,
                                  text=True, env=env, timeout=60)

        assert "count_letter" in task("list").stdout
        start = task("start", "count_letter", "--args", '{"word": "kiwi", "letter": "i"}')
        assert start.returncode == 0, start.stderr
        assert "kiwi" in start.stdout and "parked" in start.stdout
        wrong = task("grade", "--answer", "5")
        assert '"score": 0.0' in wrong.stdout
        task("start", "count_letter", "--args", '{"word": "kiwi", "letter": "i"}')
        right = task("grade", "--answer", "2")
        assert '"score": 1.0' in right.stdout
        none = task("grade", "--answer", "2")
        assert none.returncode != 0 and "no task in progress" in none.stderr
        assert "Traceback" not in none.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)
        time.sleep(0.1)
