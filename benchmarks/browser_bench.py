"""Browser sandbox benchmarks: Chromium cold start, warm lease (context + page + connect +
one navigation), and rollouts/s for a short web task through the engine; each measured in
``RUNS`` separate runs (fresh process, fresh Ray), reported as the median and every run."""

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
    from hud_ray.capabilities.cdp import Browser
    from hud_ray.capabilities.cdp_client import CDPClient
    from hud_ray.capabilities.webapp import WebApp

    app = WebApp()

    @app.page("/")
    async def home(req: Any) -> str:
        return "<h1>hi</h1>"

    browser = Browser(app=app)
    t0 = time.perf_counter()
    await browser.start()
    cold = time.perf_counter() - t0
    opens, connects, navs = [], [], []
    for i in range(20):
        t0 = time.perf_counter()
        cap = (await browser.open(f"s{i}"))[0]
        t1 = time.perf_counter()
        client = await CDPClient.connect(cap)
        t2 = time.perf_counter()
        await client.page.goto(cap.params["start_url"])
        t3 = time.perf_counter()
        opens.append(t1 - t0)
        connects.append(t2 - t1)
        navs.append(t3 - t2)
        await client.close()
        await browser.close(f"s{i}")
    await browser.stop()
    ms = lambda xs: round(statistics.median(xs) * 1000, 1)  # noqa: E731
    return {"cold_start_ms (Chromium + bridge + app server)": round(cold * 1000, 1),
            "open_context_ms_median": ms(opens), "playwright_connect_ms_median": ms(connects),
            "navigate_ms_median": ms(navs),
            "warm_lease_open_connect_navigate_ms_median": ms(
                [a + b + c for a, b, c in zip(opens, connects, navs, strict=True)])}


RUNS = 3
_MARK = "BROWSER_BENCH "


def _child(flag: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "benchmarks.browser_bench", flag],
                         capture_output=True, text=True, cwd=ROOT, timeout=900,
                         env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith(_MARK)]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"browser benchmark {flag} failed ({out.returncode}): "
                           f"{out.stdout[-500:]} {out.stderr[-1500:]}")
    return dict(json.loads(lines[-1].removeprefix(_MARK)))


def run(runs: int = RUNS) -> dict[str, Any]:
    """Each part in ``runs`` fresh processes: the median of each number, and every run."""
    samples = [_child("--in-process") for _ in range(runs)]
    samples = [{**s, **_child("--engine")} for s in samples]
    result: dict[str, Any] = {"runs": runs}
    for key in samples[0]:
        values = [s[key] for s in samples]
        result[key] = round(statistics.median(values), 2)
        result[key + " (each run)"] = values
    return result


def _engine() -> dict[str, Any]:
    import tempfile

    import ray

    import hud_ray

    ray.init(address="local", include_dashboard=False, log_to_driver=False,
             configure_logging=False)  # its own cluster, never another one on the host
    src = str(ROOT / "tasksets" / "browser.py")
    tmp = tempfile.mkdtemp()
    cold = hud_ray.run_eval(src, "oracle", task_ids=["invite_code"], out=f"{tmp}/cold")
    t0 = time.perf_counter()
    many = hud_ray.run_eval(src, "oracle", task_ids=["invite_code"], group_size=20,
                            out=f"{tmp}/many")
    wall = time.perf_counter() - t0
    return {"cold_rollout_s (actor + Chromium + solve + grade)":
            round(cold.summary["elapsed_s"], 2),
            "short_task_rollouts": many.summary["rollouts"],
            "short_task_ok": many.summary["status"].get("ok", 0),
            "short_task_wall_s": round(wall, 2),
            "short_task_rollouts_per_s": many.summary["rollouts_per_s"]}


if __name__ == "__main__":
    if "--engine" in sys.argv:
        print(_MARK + json.dumps(_engine()), flush=True)
    elif "--in-process" in sys.argv:
        print(_MARK + json.dumps(asyncio.run(_in_process())), flush=True)
    else:
        print(json.dumps(run(), indent=2))
