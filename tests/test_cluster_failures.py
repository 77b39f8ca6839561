"""What clusters do to a run, on a real multi-node cluster (``ray start`` processes, one
IP per node, in a private network namespace): a sandbox node is SIGKILLed mid-run, and
the driver is SIGKILLed mid-run then resumed. Every rollout key must end with exactly
one final row; the time to notice the dead node and recover is measured (and printed,
for benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from _netns_cluster import PY, NetnsCluster, available, ray_env

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(600),
              pytest.mark.skipif(available() is not None, reason=str(available()))]

ROOT = Path(__file__).resolve().parent.parent
HARNESS_IP, SANDBOX_IPS = "10.77.0.2", ("10.77.0.3", "10.77.0.4")


@pytest.fixture(scope="module")
def cluster():
    c = NetnsCluster()
    try:
        c.start_head(num_cpus=1)
        c.add_worker(HARNESS_IP, num_cpus=1, resources={"harness": 8})
        for ip in SANDBOX_IPS:
            c.add_worker(ip, num_cpus=1, resources={"sandbox": 8})
        c.wait_nodes(4)
        yield c
    finally:
        c.close()


def _wait_rows(out: Path, proc, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not (out.exists() and any(out.glob("rollouts-*.arrow"))):
        assert proc.poll() is None, f"driver exited early ({proc.returncode})"
        assert time.time() < deadline, "no rows written"
        time.sleep(0.2)


def _driver_pid(proc) -> int:
    """The python driver under nsenter (its only child)."""
    deadline = time.time() + 10
    while time.time() < deadline:
        kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    raise AssertionError("driver process not found")


def _finals(out: Path) -> tuple[list[dict], list[dict]]:
    from hud_ray import read_rollouts

    rows = read_rollouts(out).to_pylist()
    return rows, [r for r in rows if r["final"]]


def _sandbox_actor_ips(c: NetnsCluster) -> Counter:
    code = (f"import ray, json; ray.init(address={c.gcs!r}, log_to_driver=False); "
            "from ray._private import state; "
            "print(json.dumps([a['Address']['IPAddress'] for a in state.actors().values() "
            "if a['ActorClassName'].endswith('SandboxActor') and a['State'] == 'ALIVE']))")
    return Counter(json.loads(c.run([PY, "-c", code]).stdout.strip().splitlines()[-1]))


def test_sigkill_sandbox_node_mid_run(cluster):
    """Sandboxes of an ssh-workspace taskset live on two nodes; one is SIGKILLed while
    rollouts run on it. In-flight rollouts are retried on the other node."""
    c = cluster
    out = c.tmp / "nodekill"
    cfg = c.tmp / "nodekill.yaml"
    cfg.write_text(yaml.safe_dump({
        "harness_resources": {"harness": 1}, "sandbox_resources": {"sandbox": 1},
        "workers": 2, "sessions_per_sandbox": 2, "max_concurrent": 16, "max_retries": 3}))
    group = 12
    proc = c.popen([PY, "-m", "hud_ray.cli", "eval", str(ROOT / "tasksets" / "shell.py"),
                    "oracle", "--address", c.gcs, "-g", str(group), "--out", str(out),
                    "-c", str(cfg), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_rows(out, proc)
        placed = _sandbox_actor_ips(c)
        victim = max(SANDBOX_IPS, key=lambda ip: placed.get(ip, 0))
        assert placed.get(victim), f"no sandbox actors placed: {placed}"
        assert set(placed) == set(SANDBOX_IPS), f"pools did not spread: {placed}"
        killed_at = time.time()
        assert c.kill_node(victim)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    rows, final = _finals(out)
    keys = [r["rollout_key"] for r in final]
    assert len(keys) == len(set(keys)) == 7 * group
    assert {r["rollout_key"] for r in rows} == set(keys)  # no key without a final row
    lost = [r for r in rows if not r["final"] and r["status"] == "infra_error"]
    assert lost, "the kill hit no rollout in flight"
    assert all(r["status"] == "ok" and r["reward"] == 1.0 for r in final), \
        Counter((r["status"], r["error_type"]) for r in final)
    noticed = min(_ts(r["ended_at"]) for r in lost) - killed_at
    lost_keys = {r["rollout_key"] for r in lost}
    recovered = max(_ts(r["ended_at"]) for r in final if r["rollout_key"] in lost_keys) \
        - killed_at
    print(f"\nRESULT node_kill sandboxes={dict(placed)} victim={victim} "
          f"rollouts={len(keys)} lost_in_flight={len(lost_keys)} "
          f"noticed_s={noticed:.2f} recovered_s={recovered:.2f} "
          f"errors={dict(Counter(r['error_type'] for r in lost))}")


def test_sigkill_driver_then_resume(cluster):
    """≥500 rollouts; the driver dies mid-run with rows on disk and batches in flight;
    --resume finishes the run: nothing lost, nothing duplicated, identity checked."""
    c = cluster
    src = c.tmp / "resume-src"
    shutil.copytree(ROOT / "tests" / "fixtures" / "shipped", src)
    out = c.tmp / "resume-out"
    env = ray_env(SHIPPED_DELAY="0.5")
    args = [PY, "-m", "hud_ray.cli", "eval", str(src / "tasks.py"), "oracle", "--address",
            c.gcs, "-g", "200", "--max-concurrent", "32", "--json"]
    proc = c.popen([*args, "--out", str(out)], env=env, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE)
    try:
        _wait_rows(out, proc)
        pid = _driver_pid(proc)
        os.kill(pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    rows, before = _finals(out)
    assert 0 < len(before) < 600
    # Resuming under a different config is refused in one line.
    other = [a if a != "200" else "100" for a in args]
    bad = c.run([*other, "--resume", str(out)], env=env, check=False)
    assert bad.returncode == 2 and "cannot resume with different settings: group_size" \
        in bad.stderr, bad.stderr[-2000:]
    started = time.time()
    c.run([*args, "--resume", str(out)], env=env, timeout=300)
    resume_s = time.time() - started
    rows, final = _finals(out)
    keys = [r["rollout_key"] for r in final]
    assert len(keys) == len(set(keys)) == 600
    assert {r["rollout_key"] for r in rows} == set(keys)
    assert all(r["status"] == "ok" for r in final)
    assert len({r["run_id"] for r in rows}) == 1
    print(f"\nRESULT driver_kill rollouts=600 finished_before_kill={len(before)} "
          f"resume_s={resume_s:.1f}")


def _ts(value) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)
