"""The CLI as a user runs it: real subprocesses, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "hud-ray"


def hud_ray(*args: str, cwd: Path | None = None, timeout: float = 180,
            **env_extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", **env_extra}
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env)


@pytest.mark.parametrize("args, message", [
    (["eval", "nope.py", "oracle"], "nope.py: no such file"),
    (["eval", "{fx}/broken_syntax.py", "oracle"], "broken_syntax.py:6: syntax error"),
    (["eval", "{fx}/broken_import.py", "oracle"], "ModuleNotFoundError"),
    (["eval", "{fx}/empty.py", "oracle"], "no tasks found"),
    (["eval", "{fx}/quickstart.py", "gpt-banana"], "unknown agent 'gpt-banana'"),
    (["eval", "{fx}/quickstart.py", "oracle", "-t", "nope"], "unknown task id(s): nope"),
    (["eval", "{fx}/quickstart.py", "oracle", "--config", "missing.yaml"], "no such config"),
])
def test_user_errors_are_one_line(fixtures, tmp_path, args, message):
    args = [a.replace("{fx}", str(fixtures)) for a in args]
    proc = hud_ray(*args, cwd=tmp_path, timeout=60)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    if "Usage" not in proc.stderr:
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_eval_with_config_file_and_json(fixtures, tmp_path, root):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("group_size: 2\nmax_concurrent: 8\n")
    proc = hud_ray("eval", str(fixtures / "quickstart.py"), "nop", "--config", str(cfg),
                   "--json", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["rollouts"] == 6 and summary["mean_reward"] == 0.0
    assert summary["group_size"] == 2
    on_disk = json.loads((tmp_path / "out" / "_summary.json").read_text())
    assert on_disk["rollouts"] == 6


def test_validate_reports_broken_tasks(fixtures, tmp_path, root):
    good = hud_ray("validate", str(root / "tasksets/letters.py"), cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert "tasks valid" in good.stdout and "BROKEN" not in good.stdout
    # quickstart has no solutions (like every HUD file): nop still must score 0.0
    plain = hud_ray("validate", str(fixtures / "quickstart.py"), cwd=tmp_path)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "3/3 tasks valid (3 without a solution: oracle skipped)" in plain.stdout
    # a grader that pays for an empty answer is broken; HUD validation answers are checked
    (tmp_path / "env.py").write_text(
        "from hud import Environment\n"
        "env = Environment(name='v')\n"
        "@env.template()\n"
        "async def lenient(word: str):\n"
        "    answer = yield f'Say {word}'\n"
        "    yield 1.0 if not answer or answer == word else 0.0\n")
    rows = [{"env": "v", "id": "lenient", "args": {"word": "a"},
             "validation": [{"answer": "a"}, {"answer": "b", "reward": 0.0},
                            {"answer": "c"}, {"name": "bash", "arguments": {}}]}]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    private_tmp = Path(tempfile.mkdtemp(prefix="v", dir="/tmp"))  # short: Ray sockets
    bad = hud_ray("validate", "rows.json", "--env", "env.py", cwd=tmp_path,
                  TMPDIR=str(private_tmp))
    assert bad.returncode == 1
    assert "nop scored 1.0 (expected 0.0)" in bad.stdout
    assert "validation[2] scored 0.0 (expected 1.0)" in bad.stdout
    assert "validation[0]" not in bad.stdout and "validation[1]" not in bad.stdout
    assert "1 validation entries without an answer skipped" in bad.stdout
    assert not list(private_tmp.glob("hud-ray-validate-*"))  # its run records are removed
    shutil.rmtree(private_tmp, ignore_errors=True)
