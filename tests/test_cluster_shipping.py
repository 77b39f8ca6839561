"""Shipped code on a real multi-node cluster (``ray start`` processes, one IP per node).

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

pytestmark = [pytest.mark.ray, pytest.mark.slow,
              pytest.mark.skipif(available() is not None, reason=str(available()))]

FIXTURE = Path(__file__).parent / "fixtures" / "shipped"
WORKER_IP = "10.77.0.2"


@pytest.fixture(scope="module")
def cluster():
    c = NetnsCluster()
    try:
        c.start_head(num_cpus=1)
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
