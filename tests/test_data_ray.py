"""Training data from real Ray evals against the local provider (token ids and logprobs,
multi-turn with tools): token-exact segments, run metadata, groups and advantages, and
``follow`` across an interrupted and resumed run."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from _data_support import WORDS, run_tool_eval
from _waits import wait_for

from hud_ray import read_rollouts
from hud_ray.data import GroupPolicy, follow, groups, read
from hud_ray.sink import read_manifest

pytestmark = pytest.mark.ray
BIN = Path(sys.executable).parent / "hud-ray"
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "streamed"])
def run(request, ray_session, tmp_path_factory):
    out = run_tool_eval(tmp_path_factory.mktemp("data"), stream=request.param,
                        policy_version=7, tokenizer="fake-tok@1",
                        renderer="fake-template@abc", logprobs_mode="processed",
                        group_policy="keep_partial:2")
    return out, request.param


def test_rows_carry_token_exact_segments(run):
    out, streamed = run
    rows = [r for r in read_rollouts(out).to_pylist() if r["final"]]
    assert len(rows) == 12
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 11
    for r in ok:
        chunks = r["chunks"]
        shape = [(c["segment"], c["turn"], c["kind"]) for c in chunks]
        assert shape == [(0, 0, "prompt"), (0, 0, "model"), (0, 1, "env"), (0, 1, "model"),
                         (1, 2, "prompt"), (1, 2, "model")], shape
        for c in chunks:
            if c["kind"] != "model":
                assert c["logprobs"] is None and not c["trainable"]
                continue
            t = c["turn"]
            assert c["trainable"] and c["tokens"] == r["completion_token_ids"][t]
            assert c["logprobs"] == pytest.approx(r["completion_logprobs"][t])
            at = chunks.index(c)
            before = [tok for x in chunks[:at] if x["segment"] == c["segment"]
                      for tok in x["tokens"]]
            assert before == r["prompt_token_ids"][t]  # the engine's own prompt, exactly
        assert [c["finish_reason"] for c in chunks if c["kind"] == "model"] == \
            ["tool_calls", "tool_calls", "stop"]
        assert r["reasoning_tokens"] == 6 and r["cached_tokens"] == 2
        assert len(r["first_token_latencies"] or []) == (3 if streamed else 0)
    for r in rows:
        assert r["group_size"] == 4 and r["policy_version"] == 7
        assert r["tokenizer"] == "fake-tok@1" and r["renderer"] == "fake-template@abc"
        assert r["logprobs_mode"] == "processed"
        assert r["sampling"]["temperature"] == pytest.approx(0.7)
        assert r["sampling"]["top_p"] == pytest.approx(0.9)
        assert r["sampling"]["max_tokens"] == 1024 and r["sampling"]["seed"] is None
        cols = json.loads(r["columns"])
        assert cols == {"difficulty": len(r["slug"].split("-")[1]), "source": "test"}
    failed = [r for r in rows if r["status"] != "ok"]
    assert [r["status"] for r in failed] == ["agent_error"] and not failed[0]["reward_valid"]


def test_groups_advantages_and_the_manifest_policy(run):
    out, _ = run
    assert read_manifest(out)["group_policy"]["policy"] == "keep_partial"
    found = {g.slug: g for g in groups(out)}
    assert set(found) == {f"count-{w}" for w in WORDS}
    for g in found.values():
        assert g.kept and g.rows.num_rows == 4
        adv = g.rows["advantage"].to_pylist()
        valid = g.rows["reward_valid"].to_pylist()
        assert math.isclose(sum(a for a in adv if a is not None), 0.0, abs_tol=1e-9)
        # the failed member never counts as 0.0: it has no advantage and does not train
        assert [a is None for a in adv] == [not v for v in valid]
        assert g.rows["trainable_row"].to_pylist() == valid
    banana = found["count-banana"]
    assert banana.result.valid == 3
    rewards = [r for r, v in zip(banana.rows["reward"].to_pylist(), banana.rows["reward_valid"]
                                 .to_pylist(), strict=True) if v]
    mean = sum(rewards) / 3
    assert banana.result.mean == pytest.approx(mean)  # centred over the kept members only
    # the same run read with another policy: drop_group drops banana's group
    dropped = {g.slug: g.kept for g in groups(out, policy=GroupPolicy(policy="drop_group"))}
    assert dropped == {"count-banana": False, "count-committee": True,
                       "count-strawberry": True}
    padded = {g.slug: g for g in groups(out, policy="pad_masked")}["count-banana"]
    assert None not in padded.rows["advantage"].to_pylist()
    assert padded.rows["trainable_row"].to_pylist() == banana.rows["reward_valid"].to_pylist()
    assert read(out, policy_versions=(7, 7)).num_rows == 12
    assert read(out, policy_versions=(8, None)).num_rows == 0
    assert read(out, valid=False).num_rows == 1
    assert read(out, task="count-banana", status="ok").num_rows == 3


def test_follow_yields_each_group_once_across_interrupt_and_resume(tmp_path, fixtures):
    out = tmp_path / "run"
    seen: list[str] = []
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            for g in follow(out, poll=0.05, idle_timeout=120):
                seen.append(g.group_id)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    follower = threading.Thread(target=consume, daemon=True)
    follower.start()  # before the run directory exists
    proc = subprocess.Popen([str(BIN), "eval", str(fixtures / "naps.py"), "oracle", "-g", "2",
                             "--out", str(out), "--workers", "1", "--max-concurrent", "8"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=ENV)
    try:
        wait_for(lambda: list(out.glob("rollouts-*.arrow")), 120, "a first part")
        wait_for(lambda: len(seen) > 0, 30, "a first group")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "SIGTERM" in stderr, stderr
    before = len(seen)
    rows = read_rollouts(out).to_pylist()
    assert any(r["status"] == "cancelled" for r in rows)  # some groups were cut off
    assert 0 < before < 80
    done = subprocess.run([str(BIN), "eval", "--resume", str(out), "--json"],
                          capture_output=True, text=True, cwd=tmp_path, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr
    follower.join(60)
    assert not follower.is_alive() and not errors, errors
    assert len(seen) == 80 and len(set(seen)) == 80  # every group, exactly once
