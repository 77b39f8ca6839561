"""How ``hud-ray submit`` rewrites an eval for the cluster (no cluster needed)."""

from __future__ import annotations

import shlex

import pytest

from hud_ray.cluster.jobs import prepare_eval_job
from hud_ray.errors import ConfigError


@pytest.fixture
def project(tmp_path, monkeypatch):
    src = tmp_path / "proj"
    (src / "sets").mkdir(parents=True)
    (src / "sets" / "tasks.jsonl").write_text("")
    (src / "sets" / "env.py").write_text("")
    (src / "sets" / "agent.yaml").write_text("group_size: 2\n")
    (tmp_path / "outside.yaml").write_text("group_size: 2\n")
    monkeypatch.chdir(src)
    return src


def _argv(job):
    return shlex.split(job.entrypoint)


def test_paths_become_relative_to_the_shipped_folder(project):
    job = prepare_eval_job(
        ["eval", "sets/tasks.jsonl", "oracle", "--env", "sets/env.py", "-c",
         "sets/agent.yaml", "-c", "temperature=0", "--address", "auto", "-g", "3",
         "--exclude", "*.bin", "--json"], submission_id="j1", runs_dir="/data/runs")
    assert job.shipment.root == (project / "sets").resolve()
    assert job.runtime_env["working_dir"] == str(project / "sets")
    assert "*.bin" in job.runtime_env["excludes"]
    argv = _argv(job)
    assert argv[:4] == ["python", "-m", "hud_ray.cli", "eval"]
    assert argv[4:] == ["tasks.jsonl", "oracle", "--env", "env.py", "-c", "agent.yaml", "-c",
                        "temperature=0", "-g", "3", "--json", "--out", "/data/runs/j1"]
    assert job.out == "/data/runs/j1" and job.metadata["out"] == "/data/runs/j1"


def test_explicit_out_is_kept_and_home_expands_on_the_head(project):
    job = prepare_eval_job(["eval", "sets/tasks.jsonl", "oracle", "--out=/shared/r1"],
                           submission_id="j2")
    assert job.out == "/shared/r1" and _argv(job)[-1] == "--out=/shared/r1"
    job = prepare_eval_job(["eval", "sets/tasks.jsonl", "oracle"], submission_id="j3")
    assert job.out == "~/hud-ray-runs/j3" and job.entrypoint.endswith("--out ~/hud-ray-runs/j3")


def test_bad_invocations_are_one_line_errors(project):
    cases = {
        ("eval",): "missing SOURCE",
        ("run", "x"): "submit runs an eval",
        ("eval", "nope.py", "oracle"): "no such file",
        ("eval", "sets/tasks.jsonl", "oracle", "--bogus"): "no such option --bogus",
        ("eval", "sets/tasks.jsonl", "oracle", "-c", "../outside.yaml"): "outside the shipped",
        ("eval", "sets/tasks.jsonl", "oracle", "-g"): "needs a value",
    }
    for args, msg in cases.items():
        with pytest.raises(ConfigError, match=msg) as info:
            prepare_eval_job(list(args))
        assert "\n" not in str(info.value)


def test_runs_dir_uri_keeps_its_query(project):
    runs = "s3://bucket/runs?endpoint_override=10.0.0.5:9000&scheme=http"
    job = prepare_eval_job(["eval", "sets/tasks.jsonl", "oracle"], submission_id="j9",
                           runs_dir=runs)
    uri = "s3://bucket/runs/j9?endpoint_override=10.0.0.5:9000&scheme=http"
    assert _argv(job)[-2:] == ["--out", uri] and job.out == uri
