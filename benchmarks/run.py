"""The benchmark suite. ``--quick`` (CI): hud-ray vs the bare loop, guarded against a
recorded ratio. ``--full``: every section, and ``RESULTS.md`` regenerated.

    python -m benchmarks.run --quick
    python -m benchmarks.run --full [--only limit,memory,tasktable,hud,latency,sink,ssh]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import sections
from benchmarks._machine import machine
from benchmarks.report import write_report

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline.json"
RESULTS = HERE / "results.json"


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def quick(record: bool = False) -> int:
    res = sections.limit_ratio(tasks=500, group=8, repeats=2)
    ratio = res["ratio"]["median"]
    print(json.dumps(res, indent=2))
    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    if record:
        baseline["quick_ratio"] = ratio
        BASELINE.write_text(json.dumps(baseline, indent=2) + "\n")
    recorded = baseline.get("quick_ratio")
    if recorded is None:
        print(f"quick: ratio {ratio:.2f} (no recorded baseline)")
        return 0
    floor = recorded / 2
    verdict = "ok" if ratio >= floor else "REGRESSION"
    print(f"quick: hud-ray/bare ratio {ratio:.2f}; recorded {recorded:.2f}; floor {floor:.2f}"
          f" -> {verdict}")
    return 0 if ratio >= floor else 1


def full(only: set[str] | None) -> int:
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = machine()
    results["date"] = time.strftime("%Y-%m-%d")
    plan = [("limit", lambda: sections.limit_ratio(tasks=1250, group=8, repeats=3)),
            ("memory", sections.driver_memory),
            ("tasktable", sections.task_table),
            ("latency", sections.latency_bound),
            ("sink", sections.sink),
            ("training", sections.training),
            ("ssh", sections.ssh),
            ("browser", sections.browser),
            ("hud", sections.hud_side_by_side)]
    for name, fn in plan:
        if only and name not in only:
            continue
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            results[name] = fn()
        except Exception as exc:
            results[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        print(json.dumps(results[name], indent=2), file=sys.stderr, flush=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    if "limit" in results and "ratio" in results["limit"]:
        baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
        baseline["limit_ratio"] = results["limit"]["ratio"]["median"]
        BASELINE.write_text(json.dumps(baseline, indent=2) + "\n")
    write_report(results, HERE / "RESULTS.md")
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--full", action="store_true")
    p.add_argument("--only", default="")
    p.add_argument("--record", action="store_true", help="quick: store this ratio as baseline")
    a = p.parse_args()
    if a.quick:
        return quick(a.record)
    return full({s for s in a.only.split(",") if s} or None)


if __name__ == "__main__":
    sys.exit(main())
