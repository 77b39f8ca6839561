"""ssh sandbox benchmarks: warm lease + `true`, cold start, 50 concurrent ssh rollouts."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks._procs import ROOT


async def _in_process() -> dict[str, Any]:
    from hud_ray.capabilities.ssh import Workspace
    from hud_ray.capabilities.ssh_client import SSHClient

    ws = Workspace()
    t0 = time.perf_counter()
    await ws.start()
    server_start = time.perf_counter() - t0
    opens, connects, trues = [], [], []
    for i in range(30):
        t0 = time.perf_counter()
        cap = (await ws.open(f"s{i}"))[0]
        t1 = time.perf_counter()
        client = await SSHClient.connect(cap)
        t2 = time.perf_counter()
        await client.run("true")
        t3 = time.perf_counter()
        opens.append(t1 - t0)
        connects.append(t2 - t1)
        trues.append(t3 - t2)
        await client.close()
        await ws.close(f"s{i}")
    await ws.stop()
    ms = lambda xs: round(statistics.median(xs) * 1000, 1)  # noqa: E731
    return {"server_start_ms": round(server_start * 1000, 1),
            "open_workspace_ms_median": ms(opens), "connect_ms_median": ms(connects),
            "run_true_ms_median": ms(trues),
            "warm_lease_open_connect_true_ms_median": ms(
                [a + b + c for a, b, c in zip(opens, connects, trues, strict=True)])}


def run() -> dict[str, Any]:
    result = asyncio.run(_in_process())
    # cold start and 50 concurrent rollouts through the whole engine (sandbox actors)
    out = subprocess.run([sys.executable, "-m", "benchmarks.ssh_bench", "--engine"],
                         capture_output=True, text=True, cwd=ROOT, timeout=900,
                         env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"engine ssh benchmark failed ({out.returncode}): "
                           f"{out.stdout[-500:]} {out.stderr[-1500:]}")
    result.update(json.loads(lines[-1]))
    return result


def _engine() -> dict[str, Any]:
    import tempfile

    import ray

    import hud_ray

    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    src = str(ROOT / "tasksets" / "shell.py")
    tmp = tempfile.mkdtemp()
    cold = hud_ray.run_eval(src, "oracle", task_ids=["find_failed_order"],
                            out=f"{tmp}/cold")
    t0 = time.perf_counter()
    many = hud_ray.run_eval(src, "oracle", task_ids=["find_failed_order", "fix_script",
                                                     "sum_by_product"],
                            group_size=10, max_concurrent=50, out=f"{tmp}/many")
    wall = time.perf_counter() - t0
    table = hud_ray.read_rollouts(many.out_dir).to_pylist()
    starts = [r["start_s"] for r in table if r["start_s"] is not None]
    return {"cold_rollout_s (actor start + sandbox + solve + grade)":
            round(cold.summary["elapsed_s"], 2),
            "concurrent_50_rollouts": many.summary["rollouts"],
            "concurrent_50_ok": many.summary["status"].get("ok", 0),
            "concurrent_50_wall_s": round(wall, 2),
            "concurrent_50_rollouts_per_s": many.summary["rollouts_per_s"],
            "concurrent_50_start_s_median": round(statistics.median(starts), 3)}


if __name__ == "__main__":
    if "--engine" in sys.argv:
        print(json.dumps(_engine()))
    else:
        print(json.dumps(run(), indent=2))
