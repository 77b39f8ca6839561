"""A run's life on real Ray: sink failures, agent-phase timeouts with their transcript,
the wedge (silence) timer, failed starts, SIGTERM, resume from the manifest alone, and
the CLI exit code when every rollout failed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from _waits import wait_for

from hud_ray import Taskset, read_rollouts
from hud_ray.engine import Driver, EvalConfig, run_eval_async
from hud_ray.errors import RecordError
from hud_ray.testing import FakeProvider, ProviderRequest, Reply, ToolCall

pytestmark = pytest.mark.ray
BIN = Path(sys.executable).parent / "hud-ray"
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def finals(rows: list[dict]) -> Counter:
    return Counter(r["rollout_key"] for r in rows if r["final"])


async def test_sink_write_failure_stops_the_run_and_keeps_rows(ray_session, tmp_path, fixtures):
    out, moved = tmp_path / "run", tmp_path / "moved"
    sabotaged: list[int] = []

    def sabotage(progress) -> None:
        # Mid-run, once a part is on disk: the run directory disappears and a plain file
        # takes its place, so every later write fails (even as root).
        if not sabotaged and list(out.glob("rollouts-*.arrow")):
            out.rename(moved)
            out.write_text("not a directory")
            sabotaged.append(progress.done)

    config = EvalConfig(source=str(fixtures / "naps.py"), agent="oracle", out=str(out),
                        workers=1, max_concurrent=8)
    with pytest.raises(RecordError) as info:
        await run_eval_async(config=config, on_progress=sabotage)
    err = info.value
    assert sabotaged and sabotaged[0] < 80, "the sink failed before the run was under way"
    assert err.code == "sink_write_failed" and "--resume" in str(err)
    assert "actor" not in str(err)
    written = int(str(err).split("this run wrote ")[1].split()[0])
    out.unlink()
    moved.rename(out)
    rows = read_rollouts(out).to_pylist()
    assert len(rows) == written > 0  # what the error reports is what is on disk
    assert not [r for r in rows if r["error_type"] == "actor_lost"]  # nobody blamed actors
    assert set(finals(rows).values()) == {1}
    again = await run_eval_async(resume=str(out))
    rows = read_rollouts(out).to_pylist()
    assert again.summary["rollouts"] == 80 and again.summary["ok"] == 80
    assert len(finals(rows)) == 80 and set(finals(rows).values()) == {1}


@pytest.fixture
def tiny_fs(tmp_path):
    """A 48 KiB tmpfs: a real full filesystem a few parts into a run."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


async def test_full_filesystem_stops_the_run(ray_session, tiny_fs, fixtures):
    config = EvalConfig(source=str(fixtures / "naps.py"), agent="oracle",
                        out=str(tiny_fs / "run"), workers=1, max_concurrent=16)
    with pytest.raises(RecordError, match=r"could not be written|written after all") as info:
        await run_eval_async(config=config)
    assert info.value.code == "sink_write_failed"
    assert "No space left" in str(info.value)
    written = int(str(info.value).split("this run wrote ")[1].split()[0])
    assert read_rollouts(tiny_fs / "run").num_rows == written


def slow_thinker(req: ProviderRequest) -> Reply:
    """A model that keeps thinking out loud, 0.2 s per call, and never answers."""
    return Reply(tool_calls=(ToolCall(req.tools[0], {"thought": f"step {req.turn}"}),),
                 latency=0.2)


@pytest.mark.parametrize("which", ["agent_timeout", "rollout_timeout"])
async def test_timeout_keeps_steps_and_usage(ray_session, tmp_path, root, which):
    budget = {"agent_config": {"think_tool": True, "max_steps": 100, "timeout_seconds": 4.0}}
    if which == "rollout_timeout":
        budget = {"agent_config": {"think_tool": True, "max_steps": 100},
                  "rollout_timeout": 4.0}
    with FakeProvider(slow_thinker) as provider:
        config = EvalConfig(source=str(root / "tasksets/letters.py"), agent="openai_compatible",
                            base_url=provider.base_url, model="fake-model",
                            task_ids=["count_letter-8dec4244"], out=str(tmp_path / "run"),
                            **budget)
        result = await run_eval_async(config=config)
        answered = provider.stats["chat:200"]
    [row] = read_rollouts(result.out_dir).to_pylist()
    assert row["status"] == "timeout" and row["error_type"] == which
    assert not row["reward_valid"] and row["reward"] is None  # never a disguised score
    assert row["stop_reason"] == "timeout" and row["final"]
    assert row["num_steps"] >= 3 and row["model_calls"] >= 3
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    steps = json.loads(row["steps"])
    assert sum(s["role"] == "assistant" for s in steps) == row["num_steps"]
    assert any(s["role"] == "tool" and s["content"] == "noted" for s in steps)
    assert len(row["call_latencies"]) == row["model_calls"]
    assert answered >= row["model_calls"]  # every answered call is in the row (the last
    assert answered <= row["model_calls"] + 1  # may have been cut off by the timeout)
    assert result.summary["all_failed"]


def naps_rows(tmp_path: Path, fixtures: Path, tasks) -> Path:
    path = tmp_path / "rows.jsonl"
    Taskset("t", tasks).to_file(path)
    return path


async def test_silence_timer_resets_while_rows_stream(ray_session, tmp_path, fixtures):
    tpl = Taskset.from_file(fixtures / "naps.py").environments["naps"].templates
    ticks = [tpl["nap"](i=i, seconds=0.2 * i) for i in range(1, 15)]  # rows up to 2.8 s
    src = naps_rows(tmp_path, fixtures, [*ticks, tpl["sticky"](cleanup=3.0)])
    config = EvalConfig(source=str(src), env_source=str(fixtures / "naps.py"), agent="oracle",
                        out=str(tmp_path / "run"), rollout_timeout=3.0, workers=1,
                        max_concurrent=32)
    # The stream lasts 6 s > rollout_timeout + grace (4.5 s), but is never silent for
    # more than 3.2 s: the sticky row comes 3.2 s after the last tick.
    result = await Driver(config, wedge_grace_s=1.5).run()
    rows = {r["template_id"] + str(r["sample_index"]) + r["slug"]: r
            for r in read_rollouts(result.out_dir).to_pylist()}
    sticky = [r for r in rows.values() if r["template_id"] == "sticky"]
    assert len(sticky) == 1 and sticky[0]["error_type"] == "rollout_timeout", sticky
    assert sum(r["status"] == "ok" for r in rows.values()) == 14


async def test_silent_actor_is_still_a_wedge(ray_session, tmp_path, fixtures):
    tpl = Taskset.from_file(fixtures / "naps.py").environments["naps"].templates
    src = naps_rows(tmp_path, fixtures, [tpl["blocks_loop"](seconds=8.0)])
    config = EvalConfig(source=str(src), env_source=str(fixtures / "naps.py"), agent="oracle",
                        out=str(tmp_path / "run"), rollout_timeout=0.5, workers=1)
    t0 = time.monotonic()
    result = await Driver(config, wedge_grace_s=1.0).run()
    [row] = read_rollouts(result.out_dir).to_pylist()
    assert row["status"] == "timeout" and row["error_type"] == "worker_unresponsive"
    assert time.monotonic() - t0 < 7.5  # caught by the 1.5 s silence timer, not the sleep


def hud_ray(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=ENV)


def test_failed_start_leaves_nothing_behind(tmp_path, root):
    # The agent cannot be built inside the harness actors (no endpoint): the start fails
    # after the run directory was created; the same --out must work right after.
    env = {k: v for k, v in ENV.items() if not k.endswith("_API_KEY") and "GATEWAY" not in k
           and k not in ("HUD_RAY_BASE_URL", "OPENAI_BASE_URL")}
    out = tmp_path / "run"
    proc = subprocess.run([str(BIN), "eval", str(root / "tasksets/letters.py"),
                           "openai_compatible", "--model", "m", "--out", str(out)],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists(), list(out.iterdir())
    ok = hud_ray("eval", str(root / "tasksets/letters.py"), "oracle", "-t",
                 "count_letter-8dec4244", "--out", str(out), "--json", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_every_rollout_failed_exits_nonzero(tmp_path, fixtures):
    proc = hud_ray("eval", str(fixtures / "bad_templates.py"), "nop", "-t", "raises_at_grade",
                   "-g", "2", "--out", str(tmp_path / "run"), "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["all_failed"] and summary["ok"] == 0 and summary["rollouts"] == 2
    assert "every rollout failed" in proc.stderr


def test_sigterm_mid_run_then_resume_from_the_manifest(tmp_path, fixtures):
    out = tmp_path / "run"
    proc = subprocess.Popen([str(BIN), "eval", str(fixtures / "naps.py"), "oracle", "-g", "2",
                             "--out", str(out), "--workers", "1", "--max-concurrent", "8"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=ENV)
    try:
        wait_for(lambda: list(out.glob("rollouts-*.arrow")), 120, "a first part")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode not in (0, None) and "Traceback" not in stderr, stderr
    assert "SIGTERM" in stderr and "--resume" in stderr
    rows = read_rollouts(out).to_pylist()
    cancelled = [r for r in rows if r["status"] == "cancelled"]
    assert cancelled and not any(r["final"] for r in cancelled)
    assert set(finals(rows).values()) == {1} and len(finals(rows)) < 160
    # Options given again must match the stored run (one line naming the difference).
    refused = hud_ray("eval", "--resume", str(out), "-g", "3", cwd=tmp_path)
    assert refused.returncode == 2 and "group_size" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    # --resume DIR alone, from another directory, finishes the run with the stored config.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = hud_ray("eval", "--resume", str(out), "--json", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rollouts"] == 160
    rows = read_rollouts(out).to_pylist()
    assert len(finals(rows)) == 160 and set(finals(rows).values()) == {1}
    assert all(r["status"] == "ok" for r in rows if r["final"])
