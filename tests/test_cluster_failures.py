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


#: The fast tasks of tasksets/shell.py (its slow ``service_report`` and the fizzbuzz
#: Python start left out), so ≥500 ssh rollouts fit in CI time as groups of these five.
FAST_SHELL = ('fix_script(name="Ada"), fix_script(name="Grace"), '
              'sum_by_product(product="apple"), sum_by_product(product="pear"), '
              "find_failed_order()")


def _shell_taskset(c: NetnsCluster, name: str) -> Path:
    """A copy of tasksets/shell.py whose tasks are its five fast ones."""
    folder = c.tmp / name
    folder.mkdir()
    text = (ROOT / "tasksets" / "shell.py").read_text()
    (folder / "tasks.py").write_text(text[:text.index("tasks = [")] + f"tasks = [{FAST_SHELL}]\n")
    return folder / "tasks.py"


def _watch_node(c: NetnsCluster, ip: str) -> subprocess.Popen:
    """A process attached to the cluster that prints the time the GCS lists the node at
    ``ip`` as dead; returns once it is connected (start it before the kill)."""
    code = (f"import ray, time; ray.init(address={c.gcs!r}, log_to_driver=False)\n"
            "print('ready', flush=True)\n"
            f"while any(n['Alive'] for n in ray.nodes() if n['NodeManagerAddress'] == {ip!r}):\n"
            "    time.sleep(0.1)\n"
            "print('dead-at', time.time(), flush=True)")
    watch = c.popen([PY, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert watch.stdout is not None and watch.stdout.readline().strip() == "ready"
    return watch


def _dead_at(watch: subprocess.Popen) -> float:
    out, _ = watch.communicate(timeout=120)
    return float(out.split("dead-at ")[-1].split()[0])


def _summary(stdout: str) -> dict:
    """The ``--json`` summary: the last top-level JSON object on stdout."""
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")
    return json.JSONDecoder().raw_decode("\n".join(lines[start:]))[0]


def _harness_actors(c: NetnsCluster) -> list[dict]:
    code = (f"import ray, json; ray.init(address={c.gcs!r}, log_to_driver=False); "
            "from ray._private import state; "
            "print(json.dumps([{'pid': a['Pid'], 'ip': a['Address']['IPAddress']} "
            "for a in state.actors().values() "
            "if a['ActorClassName'].endswith('HarnessActor') and a['State'] == 'ALIVE']))")
    return json.loads(c.run([PY, "-c", code]).stdout.strip().splitlines()[-1])


def _eval_proc(c: NetnsCluster, tasks: Path, out: Path, group: int, **cfg):
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump({
        "harness_resources": {"harness": 1}, "sandbox_resources": {"sandbox": 1},
        "workers": 2, "max_concurrent": 32, "max_retries": 3, **cfg}))
    return c.popen([PY, "-m", "hud_ray.cli", "eval", str(tasks), "oracle", "--address", c.gcs,
                    "-g", str(group), "--out", str(out), "-c", str(path), "--json"],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_final_rows(out: Path, proc, n: int, timeout: float = 240) -> None:
    """Until at least ``n`` rows are on disk (rows flush every ~2 s)."""
    from hud_ray import read_rollouts

    deadline = time.time() + timeout
    while True:
        assert proc.poll() is None, f"driver exited early ({proc.returncode})"
        assert time.time() < deadline, "rows did not arrive"
        if any(out.glob("rollouts-*.arrow")):
            try:
                if read_rollouts(out).num_rows >= n:
                    return
            except Exception:  # a part being written: look again
                pass
        time.sleep(0.3)


def _check_one_final_each(out: Path, n: int) -> tuple[list[dict], list[dict]]:
    rows, final = _finals(out)
    keys = [r["rollout_key"] for r in final]
    assert len(keys) == len(set(keys)) == n, Counter(keys).most_common(3)
    assert {r["rollout_key"] for r in rows} == set(keys)  # no key without a final row
    assert sum(r["status"] == "ok" for r in rows) == n  # no rollout graded twice
    assert all(r["status"] == "ok" and r["reward"] == 1.0 for r in final), \
        Counter((r["status"], r["error_type"]) for r in final)
    return rows, final


def test_sigkill_sandbox_node_mid_run(cluster):
    """≥500 ssh-workspace rollouts whose sandboxes live on two nodes; one node is
    SIGKILLed while sandboxes on it serve rollouts (checked just before the kill).
    In-flight rollouts become retryable rows and are retried on the other node; every
    key ends with exactly one final row."""
    c = cluster
    out = c.tmp / "nodekill"
    group = 102
    n = 5 * group
    proc = _eval_proc(c, _shell_taskset(c, "nodekill-src"), out, group)
    try:
        _wait_final_rows(out, proc, 120)
        placed = _sandbox_actor_ips(c)
        victim = max(SANDBOX_IPS, key=lambda ip: placed.get(ip, 0))
        assert placed.get(victim), f"no sandbox actors placed: {placed}"
        assert set(placed) == set(SANDBOX_IPS), f"pools did not spread: {placed}"
        watch = _watch_node(c, victim)
        killed_at = time.time()
        assert c.kill_node(victim)
        dead_s = _dead_at(watch) - killed_at
        stdout, stderr = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    rows, final = _check_one_final_each(out, n)
    lost = [r for r in rows if not r["final"] and r["status"] == "infra_error"]
    assert lost, "the kill hit no rollout in flight"
    assert {r["error_type"] for r in lost} <= {"actor_lost"}, Counter(
        r["error_type"] for r in lost)
    noticed = min(_ts(r["ended_at"]) for r in lost) - killed_at
    lost_keys = {r["rollout_key"] for r in lost}
    recovered = max(_ts(r["ended_at"]) for r in final if r["rollout_key"] in lost_keys) \
        - killed_at
    before = sum(_ts(r["ended_at"]) < killed_at for r in final)
    print(f"\nRESULT node_kill sandboxes={dict(placed)} victim={victim} "
          f"rollouts={n} final_before_kill={before} lost_in_flight={len(lost_keys)} "
          f"noticed_s={noticed:.2f} node_dead_s={dead_s:.2f} recovered_s={recovered:.2f} "
          f"run_s={_summary(stdout)['elapsed_s']:.1f}")


def test_sigkill_harness_actor_mid_batch(cluster):
    """The process of a harness actor on the harness node is SIGKILLed while it holds
    in-flight batches: those rollouts become retryable ``actor_lost`` rows, run again on
    a replacement harness (rows from both harness slots after the kill), and every key
    ends with exactly one final row, none graded twice."""
    c = cluster
    out = c.tmp / "harnesskill"
    group = 36
    n = 5 * group
    proc = _eval_proc(c, _shell_taskset(c, "harnesskill-src"), out, group)
    try:
        _wait_final_rows(out, proc, 40)
        harnesses = _harness_actors(c)
        assert len(harnesses) == 2 and {h["ip"] for h in harnesses} == {HARNESS_IP}, harnesses
        victim = harnesses[0]["pid"]
        killed_at = time.time()
        c.run(["kill", "-9", str(victim)])  # the pid inside the cluster's namespace
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    rows, final = _check_one_final_each(out, n)
    lost = [r for r in rows if not r["final"]]
    assert lost and all(r["error_type"] == "actor_lost" and r["worker"] == "driver"
                        and r["error_message"].startswith("harness actor lost")
                        for r in lost), Counter((r["error_type"], r["worker"]) for r in lost)
    noticed = min(_ts(r["ended_at"]) for r in lost)
    after = {r["worker"] for r in final if _ts(r["started_at"]) > noticed}
    assert after == {"harness-0", "harness-1"}, after  # the replacement took the slot
    lost_keys = {r["rollout_key"] for r in lost}
    recovered = max(_ts(r["ended_at"]) for r in final if r["rollout_key"] in lost_keys) \
        - killed_at
    print(f"\nRESULT harness_kill rollouts={n} lost_in_flight={len(lost_keys)} "
          f"noticed_s={noticed - killed_at:.2f} recovered_s={recovered:.2f} "
          f"run_s={_summary(stdout)['elapsed_s']:.1f}")


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
