"""Model harnesses on real Ray against the local provider: rows, faults, limits, keys."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hud_ray import read_rollouts
from hud_ray.engine import EvalConfig, run_eval_async
from hud_ray.testing import FakeProvider, Fault, faults, letters_policy

pytestmark = pytest.mark.ray
BIN = Path(sys.executable).parent / "hud-ray"


@pytest.fixture
def provider():
    with FakeProvider(letters_policy) as p:
        yield p


@pytest.mark.parametrize("agent", ["openai_compatible", "openai", "claude"])
def test_cli_eval_with_each_harness(provider, tmp_path, root, agent):
    url = provider.anthropic_base_url if agent == "claude" else provider.base_url
    proc = subprocess.run(
        [str(BIN), "eval", str(root / "tasksets/letters.py"), agent, "--base-url", url,
         "--model", "fake-model", "-g", "2", "-t", "count_letter-8dec4244,count_letter-b6c64466",
         "--out", str(tmp_path / "run"), "--json"],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert proc.returncode == 0, proc.stderr
    rows = read_rollouts(tmp_path / "run").to_pylist()
    assert len(rows) == 4
    for r in rows:
        assert r["status"] == "ok" and r["reward"] == 1.0 and r["agent"] == agent
        assert r["model"] == "fake-model" and r["model_calls"] == 1
        assert r["prompt_tokens"] > 0 and r["completion_tokens"] > 0
        assert r["steps"] and '"assistant"' in r["steps"] and len(r["call_latencies"]) == 1


async def test_429_storm_leaves_no_failed_rows(ray_session, provider, tmp_path, root):
    provider.set_policy(faults(letters_policy, every=3, fault=Fault(429, retry_after=0.05)))
    cfg = EvalConfig(source=str(root / "tasksets/letters.py"), agent="openai_compatible",
                     base_url=provider.base_url, model="m", group_size=2,
                     out=str(tmp_path / "run"))
    result = await run_eval_async(config=cfg)
    rows = read_rollouts(result.out_dir).to_pylist()
    assert all(r["status"] == "ok" and r["reward"] == 1.0 for r in rows)
    assert len(rows) == result.summary["rollouts"]
    assert sum(v for k, v in provider.stats.items() if ":http:429" in k) > 5


async def test_provider_down_gives_infra_error_rows(ray_session, provider, tmp_path, root):
    provider.set_policy(lambda req: Fault(503))
    cfg = EvalConfig(source=str(root / "tasksets/letters.py"), agent="openai_compatible",
                     base_url=provider.base_url, model="m", task_ids=["count_letter-8dec4244"],
                     group_size=2, max_retries=1, out=str(tmp_path / "run"),
                     agent_config={"max_attempts": 2, "backoff_base": 0.01})
    result = await run_eval_async(config=cfg)
    rows = read_rollouts(result.out_dir).to_pylist()
    assert len(rows) == 4  # 2 keys x (first attempt + 1 retry)
    assert all(r["status"] == "infra_error" and not r["reward_valid"] and r["reward"] is None
               for r in rows)
    assert {r["error_type"] for r in rows} == {"provider_error"}
    assert sum(r["final"] for r in rows) == 2
    assert result.summary["errors"] == 2


async def test_two_harness_actors_share_a_request_limit(ray_session, provider, tmp_path, root):
    rpm, window = 120, 5.0  # 2 requests/s, burst 2
    cfg = EvalConfig(source=str(root / "tasksets/letters.py"), agent="openai_compatible",
                     base_url=provider.base_url, model="m", group_size=4, workers=2,
                     out=str(tmp_path / "run"), max_concurrent=32,
                     agent_config={"rpm": rpm, "burst": 2})
    import asyncio

    task = asyncio.create_task(run_eval_async(config=cfg))
    await asyncio.sleep(8)  # actors up, steady state reached
    start, t0 = provider.requests, time.monotonic()
    await asyncio.sleep(window)
    served = provider.requests - start
    elapsed = time.monotonic() - t0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    allowed = rpm / 60 * elapsed + 2
    assert 0 < served <= allowed, (served, allowed)
    workers = {r["worker"] for r in read_rollouts(tmp_path / "run").to_pylist()
               if r["status"] == "ok"}
    assert len(workers) == 2  # both actors made calls through the one bucket


def test_api_key_never_written(tmp_path, root):
    key = "sk-live-DO-NOT-LEAK-9f8e7d6c5b4a"
    ray_tmp = Path(tempfile.mkdtemp(prefix="rk", dir="/tmp"))  # this run's Ray session only
    with FakeProvider(lambda req: Fault(401, message=f"invalid key {key}")) as p:
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OPENAI_API_KEY": key,
               "RAY_TMPDIR": str(ray_tmp)}
        proc = subprocess.run(
            [str(BIN), "--log-level", "DEBUG", "eval", str(root / "tasksets/letters.py"),
             "openai_compatible", "--base-url", p.base_url, "--model", "m",
             "-t", "count_letter-8dec4244", "--out", str(tmp_path / "run")],
            capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 1, proc.stderr  # every rollout failed -> exit 1
    assert key not in proc.stdout + proc.stderr
    rows = read_rollouts(tmp_path / "run").to_pylist()
    assert rows[0]["status"] == "infra_error" and "***" in rows[0]["error_message"]
    for f in (tmp_path / "run").iterdir():
        assert key.encode() not in f.read_bytes(), f
    logs = [f for f in ray_tmp.glob("ray/session_*/logs/**/*") if f.is_file()]
    assert logs, f"the run's Ray session wrote no logs under {ray_tmp}"
    for f in logs:
        assert key.encode() not in f.read_bytes(), f
    shutil.rmtree(ray_tmp, ignore_errors=True)
