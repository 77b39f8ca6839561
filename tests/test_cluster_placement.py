"""Placement on a multi-node Ray cluster (``ray.cluster_utils.Cluster``: a head, two
``sandbox`` nodes, one ``harness`` node): an environment's ``placement=`` routes its
sandbox actors, run options override it key by key, pools spread over the nodes that fit
and refill on the survivor after a node dies, and a request no node can meet ends as
typed rows (or a typed error) after the placement timeout instead of hanging.

Each rollout's prompt is the Ray node id of the process that ran its template, so the
rows say where every environment ran.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(400)]

HC = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000,
      "health_check_timeout_ms": 1000, "health_check_failure_threshold": 5}

TASKS = '''
import asyncio

import ray

from hud_ray import Environment

DELAY = {delay}
boxed = Environment("boxed", placement={"CPU": 0.25, "memory": 64 * 1024**2, "sandbox": 1})
plain = Environment("plain")


def _node() -> str:
    return ray.get_runtime_context().get_node_id()


@boxed.template()
async def boxed_where(i: int = 0):
    yield _node()
    await asyncio.sleep(DELAY)
    yield 1.0


@boxed_where.solution
async def _boxed(i: int = 0):
    return "ok"


@plain.template()
async def plain_where(i: int = 0):
    yield _node()
    yield 1.0


@plain_where.solution
async def _plain(i: int = 0):
    return "ok"


tasks = [boxed_where(i=i) for i in range(12)] + [plain_where(i=i) for i in range(4)]
'''


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    tmp = tmp_path_factory.mktemp("placement")
    c = Cluster(initialize_head=True, head_node_args=dict(
        num_cpus=1, include_dashboard=False, _system_config=HC))
    nodes = {
        "sb1": c.add_node(num_cpus=1, resources={"sandbox": 4}, temp_dir=str(tmp / "sb1")),
        "sb2": c.add_node(num_cpus=1, resources={"sandbox": 4}, temp_dir=str(tmp / "sb2")),
        "hn": c.add_node(num_cpus=1, resources={"harness": 4}, temp_dir=str(tmp / "hn")),
    }
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, configure_logging=False)
    try:
        yield c, {k: n.node_id for k, n in nodes.items()}, nodes
    finally:
        ray.shutdown()
        c.shutdown()


def _tasks(folder: Path, delay: float = 0.0) -> Path:
    path = folder / "tasks.py"
    path.write_text(TASKS.replace("{delay}", repr(delay)))
    return path


@pytest.fixture
def tasks(tmp_path) -> Path:
    return _tasks(tmp_path)


def _rows(out: Path) -> list[dict]:
    from hud_ray import read_rollouts

    return read_rollouts(out).to_pylist()


def _where(rows: list[dict], env: str) -> Counter:
    return Counter(r["prompt"] for r in rows if r["env"] == env and r["status"] == "ok")


def _one_final_each(rows: list[dict], n: int) -> list[dict]:
    final = [r for r in rows if r["final"]]
    keys = [r["rollout_key"] for r in final]
    assert len(keys) == len(set(keys)) == n, Counter(keys).most_common(3)
    assert {r["rollout_key"] for r in rows} == set(keys)
    return final


def _run_in_thread(tasks: Path, out: Path, **options: object
                   ) -> tuple[threading.Thread, dict]:
    """An oracle run (2 harnesses on the ``harness`` node, 16 tasks x 4) in a thread;
    the box gets its ``result`` or ``error``."""
    from hud_ray import run_eval

    box: dict = {}

    def run() -> None:
        try:
            box["result"] = run_eval(str(tasks), "oracle", out=str(out), workers=2,
                                     harness_resources={"harness": 1}, max_concurrent=8,
                                     group_size=4, **options)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def _wait_first_part(out: Path, thread: threading.Thread, box: dict) -> float:
    """Wait until the run wrote its first part; returns the test's deadline."""
    deadline = time.monotonic() + 120
    while not list(out.glob("rollouts-*.arrow")):
        assert thread.is_alive() and time.monotonic() < deadline, box
        time.sleep(0.2)
    return deadline


def test_env_placement_routes_sandboxes_and_pools_spread(cluster, tasks, tmp_path):
    """``Environment(placement={"sandbox": 1, ...})``: its sandbox actors run only on
    the sandbox nodes, spread over both; the co-located env runs in the harness, which
    ``harness_resources`` puts on the harness node."""
    from hud_ray import run_eval

    _, ids, _ = cluster
    result = run_eval(str(_tasks(tmp_path, 0.3)), "oracle", out=str(tmp_path / "out"),
                      workers=2, harness_resources={"harness": 1}, sessions_per_sandbox=1,
                      max_concurrent=8, group_size=2)
    final = _one_final_each(_rows(result.out_dir), 32)
    assert all(r["status"] == "ok" for r in final), Counter(r["error_type"] for r in final)
    boxed = _where(final, "boxed")
    assert set(boxed) == {ids["sb1"], ids["sb2"]}, (boxed, ids)  # only, and both
    assert set(_where(final, "plain")) == {ids["hn"]}


def test_run_options_override_env_placement(cluster, tasks, tmp_path):
    """The run's ``sandbox_resources`` win key by key: ``sandbox: 0`` drops the env's
    custom resource and ``harness: 1`` adds one, so its sandboxes move to the harness
    node; CPU and memory from the env still apply (given as ``num_cpus``)."""
    from hud_ray import run_eval

    _, ids, _ = cluster
    result = run_eval(str(tasks), "oracle", out=str(tmp_path / "out"), workers=1,
                      harness_resources={"harness": 1},
                      sandbox_resources={"sandbox": 0, "harness": 1, "num_cpus": 0.5})
    final = _one_final_each(_rows(result.out_dir), 16)
    assert all(r["status"] == "ok" for r in final)
    assert set(_where(final, "boxed")) == {ids["hn"]}


def test_impossible_request_fails_typed_after_timeout(cluster, tasks, tmp_path):
    """A resource no node has: sandbox leases end as typed, final rows after the
    placement timeout (the co-located env is unaffected); an impossible harness request
    is a one-line PlacementError. Neither hangs."""
    from hud_ray import run_eval
    from hud_ray.errors import PlacementError

    started = time.monotonic()
    result = run_eval(str(tasks), "oracle", out=str(tmp_path / "out"), workers=1,
                      sandbox_resources={"robot": 1}, placement_timeout=3)
    assert time.monotonic() - started < 90
    final = _one_final_each(_rows(result.out_dir), 16)
    boxed = [r for r in final if r["env"] == "boxed"]
    assert {(r["status"], r["error_type"], r["reward_valid"]) for r in boxed} == \
        {("infra_error", "placement_timeout", False)}
    assert "no live node offers robot>=1" in boxed[0]["error_message"]
    assert all(r["status"] == "ok" for r in final if r["env"] == "plain")

    started = time.monotonic()
    with pytest.raises(PlacementError, match="harness actors not placed within 3 s: "
                       "requested robot=1; no live node offers robot>=1"):
        run_eval(str(tasks), "oracle", out=str(tmp_path / "out2"), workers=1,
                 harness_resources={"robot": 1}, placement_timeout=3)
    assert time.monotonic() - started < 60


def test_pools_refill_on_the_surviving_node(cluster, tmp_path):
    """A sandbox node SIGKILLed mid-run: its rollouts are retried, the pools refill on
    the other sandbox node (never elsewhere), every key ends with one final ``ok`` row.
    Removes a sandbox node of the module's cluster."""
    import ray

    c, ids, nodes = cluster
    out = tmp_path / "out"
    thread, box = _run_in_thread(_tasks(tmp_path, 0.5), out, sessions_per_sandbox=1,
                                 max_retries=5)
    try:
        deadline = _wait_first_part(out, thread, box)
        c.remove_node(nodes["sb1"], allow_graceful=False)
        while any(n["Alive"] for n in ray.nodes() if n["NodeID"] == ids["sb1"]):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        dead_at = time.time()
    finally:
        thread.join(240)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    rows = _rows(out)
    final = _one_final_each(rows, 64)
    assert all(r["status"] == "ok" for r in final), Counter(r["error_type"] for r in final)
    after = {r["prompt"] for r in final if r["env"] == "boxed"
             and r["started_at"].timestamp() > dead_at + 0.5}
    assert after == {ids["sb2"]}, (after, ids)
    print(f"\nRESULT placement_refill lost={Counter(r['error_type'] for r in rows if not r['final'])}")


def test_lost_harness_node_ends_in_typed_rows(cluster, tmp_path):
    """The only ``harness`` node is SIGKILLed mid-run: replacement harnesses can never be
    placed, so their batches end as final ``placement_timeout`` rows after the placement
    timeout instead of hanging (and without burning their retries on replacements Ray
    put on the dying node); every key still ends with exactly one final row. Runs last:
    it removes the module's harness node."""
    import ray

    c, ids, nodes = cluster
    out = tmp_path / "out"
    thread, box = _run_in_thread(_tasks(tmp_path, 0.5), out, placement_timeout=20)
    try:
        _wait_first_part(out, thread, box)
        killed = time.monotonic()
        c.remove_node(nodes["hn"], allow_graceful=False)
        thread.join(180)
        ended = time.monotonic() - killed
    finally:
        thread.join(60)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    assert any(not n["Alive"] for n in ray.nodes() if n["NodeID"] == ids["hn"])
    final = _one_final_each(_rows(out), 64)
    failed = Counter((r["status"], r["error_type"]) for r in final if r["status"] != "ok")
    # Replacements Ray put on the dying node are started again without charging the
    # rollouts a retry, so none ends as actor_lost with its retries burnt.
    assert set(failed) == {("infra_error", "placement_timeout")}, failed
    assert "requested harness=1; no live node offers harness>=1" in next(
        r["error_message"] for r in final if r["status"] != "ok")
    print(f"\nRESULT harness_node_lost ended_after_s={ended:.1f} failed={dict(failed)}")
