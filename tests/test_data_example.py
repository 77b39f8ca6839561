"""The end-to-end example trains from a running eval: steps arrive, each a real batch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parent.parent


def test_example_trains_while_the_eval_runs(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples/train_while_eval_runs.py"), "--tasks", "4",
         "--group-size", "4", "--batch", "4", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"})
    assert proc.returncode == 0, proc.stderr
    steps = re.findall(r"step \d+: 4 datums, (\d+) trained tokens, loss (\S+), "
                       r"mean \|A\| (\S+)", proc.stderr)
    assert steps, proc.stderr
    assert all(int(tokens) > 0 for tokens, _, _ in steps)
    assert any(float(a) > 0 for _, _, a in steps)  # groups with reward variance trained
    assert f"{len(steps)} steps from" in proc.stderr
    assert (tmp_path / "run" / "_summary.json").exists()  # the eval finished too
