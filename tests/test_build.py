"""``hud-ray build ENV_DIR`` writes a Dockerfile for the environment on the node image."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from hud_ray.cli import main


def test_build_writes_a_dockerfile_that_installs_requirements(tmp_path):
    env = tmp_path / "myenv"
    env.mkdir()
    (env / "tasks.py").write_text("")
    (env / "requirements.txt").write_text("numpy\n")
    result = CliRunner().invoke(main, ["build", str(env), "--no-build", "-t", "me/env:1"])
    assert result.exit_code == 0, result.output
    text = (env / "Dockerfile.hud-env").read_text()
    assert text.splitlines()[1] == "FROM hud-ray:0.1.0"
    assert "pip install --no-cache-dir -r requirements.txt" in text
    assert "Taskset.from_file('/opt/env')" in text
    assert "me/env:1" in result.output
    # The generated check runs: the folder loads as a taskset.
    line = next(x for x in text.splitlines() if x.startswith('RUN python -c "'))
    check = line.removeprefix('RUN python -c "').removesuffix('"').replace("/opt/env", str(env))
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_build_bad_input_is_one_line(tmp_path):
    runner = CliRunner()
    for args, msg in ((["build", str(tmp_path / "missing")], "not a directory"),
                      (["build", str(tmp_path)], "no .py files")):
        result = runner.invoke(main, args)
        assert result.exit_code == 2 and msg in result.output
        assert len(result.output.strip().splitlines()) == 1
