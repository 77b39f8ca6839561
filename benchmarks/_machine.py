"""Machine facts and CPU accounting for benchmark reports."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass

CLK = os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import ray

    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory_gib": f"{mem:.0f}",
            "python": sys.version.split()[0], "ray": ray.__version__,
            "kernel": platform.release(),
            "git": _git()}


def _git() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=False).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def busy_seconds() -> float:
    """CPU-seconds spent by the whole machine (all cores, user+system) since boot."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLK


def process_cpu(pid: int) -> float:
    """CPU-seconds (user+system) of one process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(parts[11]) + int(parts[12])) / CLK


@dataclass
class Window:
    """Wall time and machine CPU over a measured section."""

    wall: float = 0.0
    cpu: float = 0.0

    def __enter__(self) -> Window:
        self._t, self._c = time.perf_counter(), busy_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t
        self.cpu = busy_seconds() - self._c
