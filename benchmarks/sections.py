"""The benchmark sections; each returns a JSON-able dict of measurements."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._procs import provider, run_child

HERE = Path(__file__).resolve().parent
HUD_VENV = HERE / ".hud-venv"


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}


def limit_ratio(*, tasks: int, group: int, repeats: int, concurrency: int = 256) -> dict[str, Any]:
    """hud-ray (openai_compatible on Ray) vs the bare asyncio loop on the same provider."""
    hud, bare = [], []
    with provider(latency=0.0) as (url, pid):
        for _ in range(repeats):
            bare.append(run_child(["benchmarks.bare_loop", "--base-url", url, "--tasks",
                                   str(tasks), "--group", str(group), "--concurrency",
                                   str(concurrency)], provider_pid=pid))
            hud.append(run_child(["benchmarks.hudray_run", "--base-url", url, "--tasks",
                                  str(tasks), "--group", str(group), "--concurrency",
                                  str(concurrency)], provider_pid=pid))
    for r in hud:
        if r["ok"] != r["rollouts"] or r["mean_reward"] != 1.0:
            raise RuntimeError(f"hud-ray run was not all-correct: {r}")
    ratios = [h["rollouts_per_s"] / b["rollouts_per_s"] for h, b in zip(hud, bare, strict=True)]
    n = tasks * group

    def per_rollout(runs: list[dict[str, Any]], key: str) -> dict[str, float]:
        return _stats([r[key] / n * 1000 for r in runs])

    return {
        "rollouts": n, "concurrency": concurrency,
        "hud_ray_rps": _stats([r["rollouts_per_s"] for r in hud]),
        "bare_rps": _stats([r["rollouts_per_s"] for r in bare]),
        "ratio": _stats(ratios),
        "hud_ray_machine_cpu_ms_per_rollout": per_rollout(hud, "machine_cpu_s"),
        "hud_ray_provider_cpu_ms_per_rollout": per_rollout(hud, "provider_cpu_s"),
        "hud_ray_driver_cpu_ms_per_rollout": per_rollout(hud, "driver_cpu_s"),
        "bare_machine_cpu_ms_per_rollout": per_rollout(bare, "machine_cpu_s"),
        "bare_provider_cpu_ms_per_rollout": per_rollout(bare, "provider_cpu_s"),
        "hud_ray_driver_peak_rss_mib": _stats([r["driver_peak_rss_mib"] for r in hud]),
        "ray_init_s": _stats([r["ray_init_s"] for r in hud]),
    }


def driver_memory() -> dict[str, Any]:
    """Driver peak RSS at 1k, 10k and 50k rollouts (group 8): it must stay flat."""
    out: dict[str, Any] = {}
    with provider(latency=0.0) as (url, pid):
        for tasks in (125, 1250, 6250):
            r = run_child(["benchmarks.hudray_run", "--base-url", url, "--tasks", str(tasks),
                           "--group", "8"], provider_pid=pid)
            out[str(tasks * 8)] = {"driver_peak_rss_mib": round(r["driver_peak_rss_mib"], 1),
                                   "rollouts_per_s": r["rollouts_per_s"],
                                   "ok": r["ok"]}
    return out


def task_table(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000),
               rollouts: int = 2000) -> dict[str, Any]:
    """Generated tasksets of 10k, 100k and 1M rows (oracle, 2 harness actors, stopped after
    ``rollouts``): driver memory before and at run start, each harness actor's memory,
    the task table's bytes in the object store, rollouts/s. ``list_100000`` is the same
    100k rows as a module-level list, which every importer (each actor too) builds."""
    out: dict[str, Any] = {}
    for rows in sizes:
        out[str(rows)] = run_child(["benchmarks.tasktable_run", "--rows", str(rows),
                                    "--rollouts", str(rollouts)])
    out["list_100000"] = run_child(["benchmarks.tasktable_run", "--rows", "100000",
                                    "--rollouts", str(rollouts), "--list"])
    return out


def latency_bound(*, rollouts: int = 2000, turns: int = 3, latency: float = 1.0) -> dict[str, Any]:
    """2,000 rollouts in flight, each ``turns`` model calls with ``latency`` s each."""
    source = HERE / "tasks_tools.py"
    with provider(latency=latency, policy="tools", extra=("--turns", str(turns))) as (url, pid):
        r = run_child(["benchmarks.hudray_run", "--base-url", url, "--tasks", str(rollouts),
                       "--group", "1", "--concurrency", str(rollouts), "--source", str(source),
                       "--agent-config", json.dumps({"max_steps": turns + 2, "think_tool": True})],
                      provider_pid=pid, env={"HUD_RAY_BENCH_TASKS": str(rollouts)})
    ideal = turns * latency
    return {"rollouts": r["rollouts"], "ok": r["ok"], "turns": turns, "latency_s": latency,
            "elapsed_s": r["rollout_phase_s"], "setup_s": r["setup_s"], "ideal_s": ideal,
            "ratio_to_ideal": round(r["rollout_phase_s"] / ideal, 3),
            "driver_peak_rss_mib": round(r["driver_peak_rss_mib"], 1),
            "machine_cpu_s": round(r["machine_cpu_s"], 1)}


def sink(*, rows: int = 100_000) -> dict[str, Any]:
    """Arrow sink rows/s and bytes/row; resume scan time over a 100k-row run."""
    from hud_ray.records import RolloutRecord
    from hud_ray.sink import ArrowSink, ResumeState

    tmp = Path(tempfile.mkdtemp(prefix="hud-ray-sink-"))
    steps = json.dumps([{"role": "assistant", "content": "4"}])
    proto = RolloutRecord(run_id="r", trace_id="0" * 32, rollout_key="k#0", slug="k",
                          env="bench", template_id="count_letter",
                          args='{"letter": "r", "word": "strawberry"}', group_id="g" * 16,
                          sample_index=0, attempt=0, final=True, agent="openai_compatible",
                          model="bench", prompt="How many 'r's are in 'strawberry'?",
                          answer="3", reward=1.0, reward_valid=True, status="ok",
                          num_steps=1, steps=steps, prompt_tokens=20, completion_tokens=1,
                          model_calls=1, call_latencies=[0.001]).to_row()
    batch = []
    for i in range(rows):
        row = dict(proto)
        row["trace_id"] = f"{i:032x}"
        row["rollout_key"] = f"k{i // 8}#{i % 8}"
        batch.append(row)
    s = ArrowSink(tmp)
    s.open({"run_id": "r"})
    t0 = time.perf_counter()
    for i in range(0, rows, 256):
        s.write_rows(batch[i:i + 256])
    s.close()
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    state = ResumeState.scan(tmp)
    scan_s = time.perf_counter() - t0
    assert len(state.done) == rows
    shutil.rmtree(tmp)
    return {"rows": rows, "rows_per_s": round(rows / write_s), "bytes_per_row":
            round(s.bytes_written / rows, 1), "resume_scan_s": round(scan_s, 3)}


def training() -> dict[str, Any]:
    from benchmarks.training import training as run

    return run()


def ssh() -> dict[str, Any]:
    from benchmarks import ssh_bench

    return ssh_bench.run()


def browser() -> dict[str, Any]:
    from benchmarks import browser_bench

    return browser_bench.run()


def hud_venv() -> Path:
    python = HUD_VENV / "bin" / "python"
    if not (HUD_VENV / "bin" / "hud").exists():
        subprocess.run([sys.executable, "-m", "venv", str(HUD_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "hud==0.6.21",
                        "typer==0.20.0"], check=True)
    return HUD_VENV / "bin" / "hud"


def hud_side_by_side(*, rollouts: int = 30) -> dict[str, Any]:
    """HUD SDK's ``hud eval`` (a subprocess per rollout) on the same work and provider."""
    hud = hud_venv()
    work = Path(tempfile.mkdtemp(prefix="hud-bench-"))
    shutil.copy(HERE / "tasks_letters.py", work / "tasks.py")
    env = {**os.environ, "HUD_RAY_BENCH_IMPORT": "hud", "HUD_RAY_BENCH_TASKS": str(rollouts),
           "HUD_API_KEY": "", "OPENAI_API_KEY": "EMPTY", "HUD_TELEMETRY_ENABLED": "false"}
    env.pop("HUD_API_KEY")
    with provider(latency=0.0) as (url, _pid):
        t0 = time.perf_counter()
        proc = subprocess.run([str(hud), "eval", "tasks.py", "openai_compatible", "--all",
                               "--config", f"base_url={url}", "--model", "bench", "--yes",
                               "--max-concurrent", "30"], cwd=work, env=env,
                              capture_output=True, text=True, timeout=3600)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"hud eval failed: {proc.stdout[-1500:]} {proc.stderr[-1500:]}")
    hud_rps = rollouts / wall
    return {"rollouts": rollouts, "wall_s": round(wall, 2), "hud_rps": round(hud_rps, 3),
            "tail": proc.stdout[-600:]}
