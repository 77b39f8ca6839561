"""One run over a generated taskset of ``--rows`` rows, stopped after ``--rollouts``:
driver memory before and during the run, each harness actor's memory, the task
table's size in the object store, and rollouts/s. Prints one JSON line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


def memory(pid: int | str = "self") -> dict[str, int]:
    """``VmRSS``, ``VmHWM``, ``RssAnon`` (private), ``RssShmem`` of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssShmem"):
                out[key] = int(rest.split()[0])
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--rollouts", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--list", action="store_true", help="module-level list, not a generator")
    a = p.parse_args()
    env = {"HUD_RAY_BENCH_TASKS": str(a.rows), "HUD_RAY_BENCH_LIST": "1" if a.list else "0"}
    os.environ.update(env)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from hud_ray.engine.config import EvalConfig
    from hud_ray.engine.driver import Driver
    from hud_ray.errors import RunInterrupted

    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": env})
    before = memory()
    out = Path(tempfile.mkdtemp(prefix="hud-ray-tasktable-")) / "run"
    config = EvalConfig(source=str(HERE / "tasks_generated.py"), agent="oracle",
                        workers=a.workers, max_concurrent=256, out=str(out))
    t_load = time.perf_counter()
    marks: dict[str, Any] = {}

    def on_progress(progress: Any) -> None:
        now = time.perf_counter()
        if "first" not in marks and progress.in_flight:
            marks["first"] = (now, progress.done)
            marks["ready_s"] = now - t_load
            marks["driver_at_start"] = memory()
        if "stop" not in marks and progress.done >= a.rollouts:
            marks["stop"] = (now, progress.done)
            pids = [r["pid"] for r in ray.get([h.ready.remote() for h in driver._actors])]
            marks["actors"] = [memory(pid) for pid in pids]
            marks["table"] = getattr(driver, "_table", None)  # None: before the task table
            os.kill(os.getpid(), signal.SIGTERM)  # stop the run as Ctrl-C/SIGTERM would

    driver = Driver(config, on_progress=on_progress)
    try:
        asyncio.run(driver.run())
    except RunInterrupted:
        pass
    end = memory()
    ray.shutdown()
    shutil.rmtree(out.parent, ignore_errors=True)
    (t0, d0), (t1, d1) = marks["first"], marks["stop"]
    table = marks["table"]
    at_start = marks["driver_at_start"]
    print(json.dumps({
        "rows": a.rows, "list": a.list, "workers": a.workers,
        "table_object_store_mib": round(table.nbytes / 2**20, 1) if table else None,
        "driver_rss_before_mib": _mib(before["VmRSS"]),
        "driver_anon_before_mib": _mib(before["RssAnon"]),
        "driver_rss_at_run_start_mib": _mib(at_start["VmRSS"]),
        "driver_anon_at_run_start_mib": _mib(at_start["RssAnon"]),
        "driver_peak_rss_mib": _mib(end["VmHWM"]),
        "load_and_start_s": round(marks["ready_s"], 1),
        "actor_rss_mib": [_mib(m["VmRSS"]) for m in marks["actors"]],
        "actor_anon_mib": [_mib(m["RssAnon"]) for m in marks["actors"]],
        "actor_shmem_mib": [_mib(m.get("RssShmem", 0)) for m in marks["actors"]],
        "rollouts": d1 - d0, "rollouts_per_s": round((d1 - d0) / max(t1 - t0, 1e-9), 1),
    }))


if __name__ == "__main__":
    main()
