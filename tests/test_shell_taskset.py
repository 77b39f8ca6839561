"""tasksets/shell.py end to end on Ray: oracle, nop, and a model scripting bash tool calls."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hud_ray import read_rollouts
from hud_ray.capabilities.isolation import bwrap_available
from hud_ray.engine import EvalConfig, run_eval_async
from hud_ray.testing import FakeProvider, ProviderRequest, Reply, ToolCall

pytestmark = [pytest.mark.ray,
              pytest.mark.skipif(not bwrap_available(), reason="needs bubblewrap")]
BIN = Path(sys.executable).parent / "hud-ray"


async def test_oracle_scores_one_and_nop_zero(ray_session, tmp_path, root):
    src = str(root / "tasksets/shell.py")
    oracle = await run_eval_async(config=EvalConfig(source=src, agent="oracle", group_size=2,
                                                    out=str(tmp_path / "o")))
    rows = read_rollouts(oracle.out_dir).to_pylist()
    assert len(rows) == 14 and len({r["slug"] for r in rows}) == 7
    assert all(r["status"] == "ok" and r["reward"] == 1.0 for r in rows), \
        [(r["slug"], r["status"], r["reward"], r["error_message"]) for r in rows]
    nop = await run_eval_async(config=EvalConfig(source=src, agent="nop",
                                                 out=str(tmp_path / "n")))
    rows = read_rollouts(nop.out_dir).to_pylist()
    assert len(rows) == 7 and all(r["status"] == "ok" and r["reward"] == 0.0 for r in rows)


def bash_policy(req: ProviderRequest) -> Reply:
    """A 'model' that solves three shell tasks with bash tool calls."""
    prompt = req.prompt_text
    if req.turn == 0:
        if "greet.sh" in prompt:
            cmd = "sed -i 's/\\$nme/$name/' broken/greet.sh && ./broken/greet.sh Ada"
        elif "sales.csv" in prompt:
            product = re.search(r"units of '(\w+)'", prompt).group(1)
            cmd = (f"awk -F, '$2==\"{product}\" {{s+=$3}} END {{print s}}' data/sales.csv "
                   f"> total_{product}.txt; cat total_{product}.txt")
        else:
            cmd = "grep -rh 'payment failed' logs"
        return Reply(tool_calls=(ToolCall("bash", {"command": cmd}),))
    found = re.search(r"order=(\d+)", req.last_text)
    return Reply(text=found.group(1) if found else "done")


async def test_model_scripting_bash_tool_calls(ray_session, tmp_path, root):
    with FakeProvider(bash_policy) as p:
        cfg = EvalConfig(source=str(root / "tasksets/shell.py"), agent="openai_compatible",
                         base_url=p.base_url, model="m", group_size=2,
                         task_ids=["fix_script", "sum_by_product", "find_failed_order"],
                         out=str(tmp_path / "m"))
        result = await run_eval_async(config=cfg)
        tools_offered = {tuple(sorted(r.tools)) for r in p.log}
    rows = read_rollouts(result.out_dir).to_pylist()
    assert len(rows) == 10
    assert all(r["status"] == "ok" and r["reward"] == 1.0 for r in rows), \
        [(r["slug"], r["reward"], r["steps"]) for r in rows]
    assert tools_offered == {("bash", "edit_file")}
    assert all(r["model_calls"] == 2 and '"tool"' in r["steps"] for r in rows)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_task_start_prints_a_working_ssh_command(root, tmp_path):
    port = _free_port()
    env = {**os.environ, "HUD_RAY_STATE_DIR": str(tmp_path / "state")}
    server = subprocess.Popen([str(BIN), "serve", str(root / "tasksets/shell.py"), "--port",
                               str(port)], stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "tcp://" in server.stderr.readline()
        url = ["--url", f"127.0.0.1:{port}"]
        start = subprocess.run([str(BIN), "task", "start", "find_failed_order", *url],
                               capture_output=True, text=True, env=env, timeout=60)
        assert start.returncode == 0, start.stderr
        line = next(x for x in start.stdout.splitlines() if x.startswith("# shell: ssh "))
        ssh = line.split(": ", 1)[1].split()
        out = subprocess.run([*ssh, "-o", "BatchMode=yes", "grep -rh 'payment failed' logs"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        order = re.search(r"order=(\d+)", out.stdout).group(1)
        graded = subprocess.run([str(BIN), "task", "grade", "--answer", order, *url],
                                capture_output=True, text=True, env=env, timeout=60)
        assert '"score": 1.0' in graded.stdout, graded.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)
