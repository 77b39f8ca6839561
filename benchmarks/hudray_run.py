"""One hud-ray eval in its own process, reporting driver memory and CPU as JSON."""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--tasks", type=int, default=1250)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--agent-config", default="{}")
    p.add_argument("--source", default=None)
    a = p.parse_args()
    os.environ["HUD_RAY_BENCH_TASKS"] = str(a.tasks)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    import hud_ray

    here = os.path.dirname(os.path.abspath(__file__))
    t0 = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"HUD_RAY_BENCH_TASKS": str(a.tasks)}})
    ray_init_s = time.perf_counter() - t0
    out = tempfile.mkdtemp(prefix="hud-ray-bench-")
    cpu0 = time.process_time()
    result = hud_ray.run_eval(a.source or os.path.join(here, "tasks_letters.py"),
                              "openai_compatible", base_url=a.base_url, model="bench",
                              group_size=a.group, max_concurrent=a.concurrency,
                              workers=a.workers, out=os.path.join(out, "run"),
                              agent_config=json.loads(a.agent_config))
    s = result.summary
    print(json.dumps({
        "rollouts": s["rollouts"], "ok": s["status"].get("ok", 0), "elapsed_s": s["elapsed_s"],
        "rollouts_per_s": s["rollouts_per_s"], "mean_reward": s["mean_reward"],
        "setup_s": s["setup_s"], "rollout_phase_s": s["rollout_phase_s"],
        "ray_init_s": ray_init_s, "driver_cpu_s": time.process_time() - cpu0,
        "driver_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "out": str(result.out_dir),
    }))


if __name__ == "__main__":
    main()
