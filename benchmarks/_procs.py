"""Start the local provider as its own process and run benchmark children."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks._machine import Window, process_cpu

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def provider(*, latency: float = 0.0, policy: str = "letters", extra: tuple[str, ...] = ()):
    """A fake provider process; yields (base_url, pid)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "hud_ray.testing.provider", "--port", "0", "--policy", policy,
         "--latency", str(latency), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if "listening on" not in line:
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"provider did not start: {line!r} {err[-500:]}")
        url = line.strip().split("listening on", 1)[1].strip()
        yield url.rstrip("/") + "/v1", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_child(args: list[str], *, provider_pid: int | None = None,
              env: dict[str, str] | None = None, timeout: float = 3600) -> dict[str, Any]:
    """Run ``python -m <args>``; parse its last stdout line as JSON; add CPU accounting."""
    before = process_cpu(provider_pid) if provider_pid else 0.0
    with Window() as w:
        proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                              cwd=ROOT, timeout=timeout,
                              env={**os.environ, "RAY_AUTH_MODE": "disabled",
                                   "RAY_USAGE_STATS_ENABLED": "0", **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): "
                           f"{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = w.wall
    result["machine_cpu_s"] = w.cpu
    if provider_pid:
        result["provider_cpu_s"] = process_cpu(provider_pid) - before
    return result
