"""Shipped code and Ray Jobs on a real multi-node cluster (``ray start`` processes, one IP
per node).

The tasks file, the environment module it imports and its data files live in a tmpfs
only the driver's mount namespace sees; the driver runs from another directory. The
harness actors must run on the worker node (only it has the ``harness`` resource) and
read everything from the copy Ray shipped there.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from _netns_cluster import PY, NetnsCluster, available

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(600),
              pytest.mark.skipif(available() is not None, reason=str(available()))]

FIXTURE = Path(__file__).parent / "fixtures" / "shipped"
WORKER_IP = "10.77.0.2"


@pytest.fixture(scope="module")
def cluster():
    c = NetnsCluster()
    try:
        c.start_head(num_cpus=1, dashboard=True)
        c.add_worker(WORKER_IP, num_cpus=1, resources={"harness": 8})
        c.wait_nodes(2)
        yield c
    finally:
        c.close()


def _private_taskset(c: NetnsCluster, name: str) -> Path:
    """A copy of the fixture that only the driver will see (at ``<tmp>/<name>``)."""
    private = c.tmp / name
    private.mkdir()
    shutil.copytree(FIXTURE, c.tmp / f"{name}.stage")
    return private


def _eval(c: NetnsCluster, name: str, *extra: str, check: bool = True):
    src = _private_taskset(c, name)
    cwd = c.tmp / f"{name}-cwd"
    cwd.mkdir()
    cfg = cwd / "cluster.yaml"
    cfg.write_text(yaml.safe_dump({"harness_resources": {"harness": 1}, "workers": 2}))
    out = c.tmp / f"{name}-out"
    cmd = [PY, "-m", "hud_ray.cli", "eval", str(src / "tasks.py"), "oracle",
           "--address", c.gcs, "-g", "2", "--out", str(out), "-c", str(cfg), "--json", *extra]
    return c.run(cmd, cwd=cwd, private_dir=src, check=check, timeout=240), out


def test_eval_ships_tasks_env_module_and_data(cluster):
    proc, out = _eval(cluster, "ship")
    summary = json.loads(proc.stdout)
    assert summary["rollouts"] == 6, summary
    from hud_ray import read_rollouts

    rows = read_rollouts(out).to_pylist()
    final = [r for r in rows if r["final"]]
    assert sorted(r["rollout_key"] for r in final) == sorted({r["rollout_key"] for r in rows})
    assert len(final) == 6
    assert all(r["status"] == "ok" and r["reward"] == 1.0 for r in final), final
    # Ran on the worker node, reading the shipped data file relative to its cwd.
    assert all(r["prompt"].startswith(f"[{WORKER_IP}] [shipped-ok]") for r in final)


def test_no_ship_fails_in_one_line(cluster):
    """The control: without shipping the nodes cannot see the files at all."""
    proc, out = _eval(cluster, "noship", "--no-ship", check=False)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    assert "harness actors failed to start" in errors[0] and "tasks.py" in errors[0]
    assert not out.exists() or not any(r["final"] for r in _rows(out))


def _rows(out: Path) -> list[dict]:
    from hud_ray import read_rollouts

    try:
        return read_rollouts(out).to_pylist()
    except Exception:
        return []


ROOT = Path(__file__).resolve().parent.parent


def _submit(c: NetnsCluster, private: Path, *args: str, check: bool = True, timeout=300):
    return c.run([PY, "-m", "hud_ray.cli", "submit", "--address", "http://127.0.0.1:8265",
                  *args], cwd=private, private_dir=private, check=check, timeout=timeout)


def test_submit_follow_runs_shell_taskset_as_a_job(cluster):
    """`hud-ray submit --follow -- eval tasksets/shell.py oracle` from a folder no node saw."""
    c = cluster
    private = c.tmp / "jobsrc"
    private.mkdir()
    stage = c.tmp / "jobsrc.stage"
    (stage / "tasksets").mkdir(parents=True)
    shutil.copy(ROOT / "tasksets" / "shell.py", stage / "tasksets" / "shell.py")
    # Harnesses only fit on the worker node; the config file travels with the job.
    (stage / "tasksets" / "on-worker.yaml").write_text("harness_resources: {harness: 1}\n")
    runs = c.tmp / "job-runs"
    proc = _submit(c, private, "--follow", "--submission-id", "ci-shell-1", "--runs-dir",
                   str(runs), "--", "eval", "tasksets/shell.py", "oracle", "--json",
                   "-c", "tasksets/on-worker.yaml")
    lines = proc.stdout.splitlines()
    assert lines[0] == "job: ci-shell-1"
    assert lines[1] == f"run directory (on the cluster): {runs}/ci-shell-1"
    assert lines[-1] == "job ci-shell-1: SUCCEEDED", proc.stdout[-3000:]
    from hud_ray import read_rollouts
    from hud_ray.task import Taskset

    n_tasks = len(Taskset.from_file(ROOT / "tasksets" / "shell.py"))
    rows = read_rollouts(runs / "ci-shell-1").to_pylist()
    final = [r for r in rows if r["final"]]
    assert len(final) == n_tasks == len({r["rollout_key"] for r in rows})
    assert all(r["status"] == "ok" and r["reward"] == 1.0 for r in final), final
    assert any(p.name.endswith(".json") for p in (runs / "ci-shell-1").iterdir())

    # jobs list / status / logs see it; a bad job id is one line.
    listed = c.run([PY, "-m", "hud_ray.cli", "jobs", "list", "--address",
                    "http://127.0.0.1:8265", "--json"])
    assert {"job": "ci-shell-1", "status": "SUCCEEDED", "out": f"{runs}/ci-shell-1"}.items() \
        <= json.loads(listed.stdout)[0].items()
    logs = c.run([PY, "-m", "hud_ray.cli", "jobs", "logs", "ci-shell-1", "--address",
                  "http://127.0.0.1:8265"])
    assert '"rollouts"' in logs.stdout
    bad = c.run([PY, "-m", "hud_ray.cli", "jobs", "status", "no-such-job", "--address",
                 "http://127.0.0.1:8265"], check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_jobs_stop_then_resume_keeps_one_final_row_per_key(cluster):
    c = cluster
    private = _private_taskset(c, "stopsrc")
    out = c.tmp / "stop-out"
    args = ["--env-var", "SHIPPED_DELAY=0.1", "--", "eval", "tasks.py", "oracle", "-g",
            "100", "--max-concurrent", "4",
            "--out", str(out), "--json"]
    proc = _submit(c, private, "--submission-id", "ci-stop-1", *args)
    assert "follow with: hud-ray jobs logs --follow ci-stop-1" in proc.stdout
    import time

    from hud_ray import read_rollouts

    deadline = time.time() + 120
    while not (out.exists() and any(out.glob("*.arrow"))):
        assert time.time() < deadline, "no rows written"
        time.sleep(0.5)
    stop = c.run([PY, "-m", "hud_ray.cli", "jobs", "stop", "ci-stop-1", "--address",
                  "http://127.0.0.1:8265"])
    assert stop.stdout.strip() == "job ci-stop-1: STOPPED"
    before = [r for r in read_rollouts(out).to_pylist() if r["final"]]
    assert 0 < len(before) < 300
    resume = ["--env-var", "SHIPPED_DELAY=0.1", "--", "eval", "tasks.py", "oracle", "-g",
              "100", "--max-concurrent", "16", "--resume", str(out), "--json"]
    proc = _submit(c, private, "--follow", "--submission-id", "ci-stop-2", *resume)
    assert proc.stdout.splitlines()[-1] == "job ci-stop-2: SUCCEEDED", proc.stdout[-3000:]
    rows = read_rollouts(out).to_pylist()
    final = [r["rollout_key"] for r in rows if r["final"]]
    assert len(final) == len(set(final)) == 300


def test_submit_follow_of_a_failing_eval_exits_nonzero_in_one_line(cluster):
    c = cluster
    private = _private_taskset(c, "failsrc")
    proc = _submit(c, private, "--follow", "--submission-id", "ci-fail-1", "--runs-dir",
                   str(c.tmp / "fail-runs"), "--", "eval", "tasks.py", "no-such-agent",
                   check=False)
    assert proc.returncode == 1, proc.stdout[-2000:]  # a failed run, not a usage error
    assert proc.stdout.splitlines()[-1] == "job ci-fail-1: FAILED"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: job ci-fail-1 failed"), proc.stderr
