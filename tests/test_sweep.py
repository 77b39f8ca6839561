"""``hud-ray sweep``: 2 agents x 2 tasksets x 2 seeds, interrupted and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hud_ray.errors import ConfigError
from hud_ray.sweep import SweepConfig, cells

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "tests" / "fixtures" / "shipped" / "tasks.py"


def _sweep_file(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({
        "out": str(tmp_path / "sweep"),
        "agents": ["oracle", "nop"],
        "tasksets": [str(ROOT / "tasksets" / "letters.py"),
                     {"source": str(SHIPPED), "label": "sums"}],
        "group_sizes": [1], "seeds": [0, 1],
        "eval": {"workers": 1, "max_concurrent": 1, "ship": True}}))
    return path


def _cli(*args: str, **kw):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "SHIPPED_DELAY": "2.0"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([sys.executable, "-m", "hud_ray.cli", "sweep", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _snapshot(cell_dir: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in cell_dir.iterdir()}


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sweep_interrupted_then_resumed_without_rerunning_finished_cells(tmp_path):
    sweep_file = _sweep_file(tmp_path)
    root = tmp_path / "sweep"
    plan = [c.id for c in cells(SweepConfig.load(sweep_file))]
    assert len(plan) == 8 and len(set(plan)) == 8

    proc = _cli(str(sweep_file))
    interrupted_in: str | None = None
    try:
        deadline = time.time() + 300
        while interrupted_in is None:
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "sweep never reached a second cell"
            states = {c: ((root / c / "_summary.json").exists(), (root / c).exists())
                      for c in plan}
            done = [c for c, (d, _) in states.items() if d]
            started = [c for c, (d, e) in states.items() if e and not d]
            # a slow cell (2 s a rollout, one at a time) with rows on disk and more to come;
            # the oracle's letters cells can finish between the check and the signal
            slow = [c for c in started if "__sums__" in c and _parts(root / c)]
            if done and slow:
                interrupted_in = slow[0]
                break
            time.sleep(0.05)
        finished_before = {c: _snapshot(root / c) for c in done}
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert not (root / interrupted_in / "_summary.json").exists()

    proc = _cli(str(sweep_file), "--json")
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]
    for c in finished_before:  # finished cells were not touched
        assert _snapshot(root / c) == finished_before[c]
        assert f"{c}: done, skipped" in err
    assert f"{interrupted_in}: resuming" in err
    rows = json.loads(out)
    assert [r["cell"] for r in rows] == plan
    from hud_ray import read_rollouts

    for r in rows:
        expected = 24 if r["taskset"] == "letters" else 3
        assert r["rollouts"] == expected and r["errors"] == 0, r
        assert r["mean_reward"] == (1.0 if r["agent"] == "oracle" else 0.0), r
        table = read_rollouts(root / r["cell"]).to_pylist()
        final = [x["rollout_key"] for x in table if x["final"]]
        assert len(final) == len(set(final)) == expected
        assert {x["rollout_key"] for x in table} == set(final)
    assert json.loads((root / "_summary.json").read_text()) == rows
    csv_lines = (root / "summary.csv").read_text().splitlines()
    assert len(csv_lines) == 9 and csv_lines[0].startswith("cell,agent,taskset")
    svg = (root / "reward.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<rect") == 8



def test_bad_sweep_files_are_one_line_errors(tmp_path):
    cases = {
        "agents: []\ntasksets: [a.py]\n": "agents",
        "agents: [oracle]\ntasksets: [a.py]\ngroup_sizes: [0]\n": "group sizes",
        "agents: [oracle]\ntasksets: [a.py]\nbogus: 1\n": "bogus",
        "agents: [oracle, oracle]\ntasksets: [a.py]\n": "share a name",
        "- just a list\n": "expected a mapping",
    }
    for text, msg in cases.items():
        path = tmp_path / "s.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=msg) as info:
            cells(SweepConfig.load(path))
        assert "\n" not in str(info.value)


def _parts(cell: Path) -> list[Path]:
    return list(cell.glob("rollouts-*.arrow")) if cell.exists() else []
