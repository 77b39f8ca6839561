"""Harbor task folders: task.toml, the Dockerfile fallback, the verifier's rules, and
end-to-end runs on real Ray with real ssh sandboxes (oracle, nop, a model, cheaters)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from hud_ray import Taskset, read_rollouts
from hud_ray.capabilities.isolation import bwrap_available
from hud_ray.capabilities.ssh import Workspace
from hud_ray.engine import EvalConfig, run_eval_async
from hud_ray.errors import CapabilityError, GradeError, TasksetError
from hud_ray.integrations import harbor
from hud_ray.integrations.harbor.dockerfile import materialise
from hud_ray.testing import FakeProvider, ProviderRequest, Reply, ToolCall

needs_sandbox = pytest.mark.skipif(not bwrap_available(), reason="needs bubblewrap")


def make_task(root: Path, name: str, *, test_sh: str, solve_sh: str | None = None,
              toml: str = 'schema_version = "1.1"\n', instruction: str = "Do the thing.\n",
              dockerfile: str = "FROM debian:bookworm-slim\nWORKDIR /app\n",
              files: dict[str, str] | None = None) -> Path:
    task = root / name
    (task / "environment").mkdir(parents=True)
    (task / "tests").mkdir()
    (task / "task.toml").write_text(toml)
    (task / "instruction.md").write_text(instruction)
    (task / "environment" / "Dockerfile").write_text(dockerfile)
    for rel, text in (files or {}).items():
        (task / "environment" / rel).parent.mkdir(parents=True, exist_ok=True)
        (task / "environment" / rel).write_text(text)
    (task / "tests" / "test.sh").write_text("#!/bin/bash\n" + test_sh)
    if solve_sh is not None:
        (task / "solution").mkdir()
        (task / "solution" / "solve.sh").write_text("#!/bin/bash\n" + solve_sh)
    return task


# ---- task.toml ------------------------------------------------------------------------------

CURRENT = """
schema_version = "1.1"
[task]
name = "org/demo"
description = "a demo"
authors = [{ name = "A", email = "a@example.com" }]
[metadata]
difficulty = "easy"
[agent]
timeout_sec = 90.0
user = "agent"
[verifier]
timeout_sec = 30.0
env = { TOKEN = "${DEMO_TOKEN:-none}" }
user = "root"
[environment]
workdir = "/srv"
cpus = 2
memory_mb = 1024
network_mode = "no-network"
env = { A = "1" }
[environment.healthcheck]
command = "true"
retries = 5
future_field = 1
[solution]
env = { S = "x" }
"""


def test_task_toml_current_schema():
    cfg = harbor.parse_task_toml(CURRENT)
    assert cfg.schema_version == "1.1" and cfg.task is not None and cfg.task.name == "org/demo"
    assert cfg.agent.timeout_sec == 90.0 and cfg.verifier.timeout_sec == 30.0
    assert cfg.verifier.env == {"TOKEN": "${DEMO_TOKEN:-none}"} and cfg.verifier.user == "root"
    env = cfg.environment
    assert (env.workdir, env.cpus, env.memory_mb, env.network) == ("/srv", 2, 1024, "no-network")
    assert env.healthcheck is not None and env.healthcheck.retries == 5
    assert cfg.solution.env == {"S": "x"} and cfg.metadata == {"difficulty": "easy"}


def test_task_toml_defaults_are_harbors():
    cfg = harbor.parse_task_toml("")
    assert cfg.verifier.timeout_sec == 600.0 and cfg.agent.timeout_sec is None
    assert cfg.environment.network == "public" and cfg.environment.memory_mb == 2048


def test_task_toml_legacy_forms():
    cfg = harbor.parse_task_toml('version = "1.0"\n[environment]\nmemory = "4G"\n'
                                 'storage = "512M"\nallow_internet = false\n')
    assert cfg.schema_version == "1.0"
    assert cfg.environment.memory_mb == 4096 and cfg.environment.storage_mb == 512
    assert cfg.environment.network == "no-network"


def test_task_toml_unknown_keys_are_ignored_and_listed():
    cfg = harbor.parse_task_toml('shiny = 1\n[verifier]\nfancy = "x"\n[new_section]\nk = 2\n')
    assert cfg.unknown_keys == ("new_section", "shiny", "verifier.fancy")
    assert cfg.verifier.timeout_sec == 600.0


@pytest.mark.parametrize("text", ["[agent\n", '[environment]\nmemory = "lots"\n',
                                  '[verifier]\ntimeout_sec = "soon"\n'])
def test_task_toml_errors_are_one_line(text):
    with pytest.raises(TasksetError) as info:
        harbor.parse_task_toml(text, origin="t/task.toml")
    assert str(info.value).startswith("t/task.toml") and "\n" not in str(info.value)


def test_env_values_resolve_from_the_host():
    host = {"SET": "v", "EMPTY": ""}
    out = harbor.resolve_env({"a": "${SET}", "b": "${UNSET:-dflt}", "c": "${EMPTY:-dflt}",
                              "d": "x-${SET}-${SET:-no}", "e": "$SET plain"}, host)
    assert out == {"a": "v", "b": "dflt", "c": "dflt", "d": "x-v-v", "e": "$SET plain"}
    with pytest.raises(TasksetError, match="MISSING"):
        harbor.resolve_env({"a": "${MISSING}"}, host)


def test_canary_lines_are_stripped():
    text = "<!-- BENCHMARK DATA canary GUID 123 -->\n# canary 456\n\nDo this.\n# Heading\n"
    assert harbor.strip_canary(text) == "Do this.\n# Heading\n"
    assert harbor.strip_canary("# Title\nbody\n") == "# Title\nbody\n"


# ---- reward files ---------------------------------------------------------------------------

def test_rewards_txt_and_json():
    assert harbor.parse_rewards("txt", " 0.75\n") == (0.75, {})
    assert harbor.parse_rewards("json", '{"reward": 0.5, "a": 1}') == (0.5, {"reward": 0.5,
                                                                            "a": 1.0})
    assert harbor.parse_rewards("json", '{"score": 1}') == (1.0, {"score": 1.0})


@pytest.mark.parametrize("kind,text,code", [
    ("txt", "", "reward_empty"), ("txt", "  \n", "reward_empty"),
    ("txt", "pass", "reward_malformed"), ("txt", "nan", "reward_malformed"),
    ("txt", "inf", "reward_malformed"), ("txt", "1 2", "reward_malformed"),
    ("json", "", "reward_empty"), ("json", "{", "reward_malformed"),
    ("json", "[1]", "reward_malformed"), ("json", "{}", "reward_malformed"),
    ("json", '{"reward": NaN}', "reward_malformed"), ("json", '{"reward": true}',
                                                      "reward_malformed"),
    ("json", '{"reward": {"a": 1}}', "reward_malformed"),
    ("json", '{"reward": "1"}', "reward_malformed"),
    ("json", '{"a": 1, "b": 0}', "reward_malformed"),
])
def test_bad_reward_files_are_grade_errors(kind, text, code):
    with pytest.raises(GradeError) as info:
        harbor.parse_rewards(kind, text)
    assert info.value.code == code


# ---- the Dockerfile fallback ----------------------------------------------------------------

def test_dockerfile_plan_and_materialise(tmp_path):
    ctx = tmp_path / "ctx"
    (ctx / "src" / "pkg").mkdir(parents=True)
    (ctx / "src" / "pkg" / "m.py").write_text("x = 1\n")
    (ctx / "tool.sh").write_text("echo hi\n")
    (ctx / "a.txt").write_text("a")
    (ctx / "b.txt").write_text("b")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"inside the archive\n"
        info = tarfile.TarInfo("pack/readme.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (ctx / "bundle.tar.gz").write_bytes(buf.getvalue())
    (ctx / "Dockerfile").write_text(
        "# syntax=docker/dockerfile:1\nFROM python:3.11-slim AS base\nARG HOME_DIR=/srv/app\n"
        "ENV APP=${HOME_DIR} MODE=\"fast mode\"\nENV LEGACY value with spaces\n"
        "RUN apt-get update && \\\n    apt-get install -y git\nWORKDIR $APP\n"
        "COPY --chown=app:app src/ ./src/\nCOPY --chmod=755 tool.sh /opt/bin/tool\n"
        'COPY ["a.txt", "b.txt", "/data/"]\nCOPY *.txt /globbed/\nADD bundle.tar.gz /vendor\n'
        "WORKDIR sub\nUSER app\nCMD [\"python\"]\n")
    plan = harbor.plan_dockerfile(ctx)
    assert plan.workdir == "/srv/app/sub" and plan.problems == []
    assert plan.env == {"APP": "/srv/app", "MODE": "fast mode", "LEGACY": "value with spaces"}
    assert plan.roots == ["/data", "/globbed", "/opt", "/srv", "/vendor"]
    assert any(f.startswith("RUN skipped") and "apt-get install -y git" in f
               for f in plan.findings)
    assert any("--chown=app:app" in f for f in plan.findings)
    assert any(f.startswith("USER app") for f in plan.findings)
    stage = tmp_path / "stage"
    materialise(plan, stage)
    assert (stage / "srv/app/src/pkg/m.py").read_text() == "x = 1\n"
    assert (stage / "srv/app/sub").is_dir()
    assert (stage / "opt/bin/tool").stat().st_mode & 0o777 == 0o755
    assert (stage / "data/a.txt").read_text() == "a" and (stage / "data/b.txt").exists()
    assert (stage / "globbed/a.txt").exists() and (stage / "globbed/b.txt").exists()
    assert (stage / "vendor/pack/readme.txt").read_text() == "inside the archive\n"


@pytest.mark.parametrize("line,needle", [
    ("COPY --from=builder /out /app", "another stage"),
    ("COPY tool.sh /usr/local/bin/tool", "/usr"),
    ("COPY missing.txt /app/", "no such file"),
    ("COPY ../secret /app/", "outside the build context"),
    ("ADD https://example.com/x.tgz /app/", "URLs"),
])
def test_dockerfile_problems(tmp_path, line, needle):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "tool.sh").write_text("x")
    (tmp_path / "secret").write_text("s")
    (ctx / "Dockerfile").write_text(f"FROM x\nWORKDIR /app\n{line}\n")
    plan = harbor.plan_dockerfile(ctx)
    assert any(needle in p for p in plan.problems), plan.problems


def test_workspace_mounts_refuse_system_paths():
    for bad in ("/usr/local", "/etc", "relative", "/", "/workspace/x", "/tmp"):
        with pytest.raises(CapabilityError):
            Workspace(mounts={bad: None})
    assert Workspace(mounts={"/app/": None}).mounts == {"/app": None}


# ---- loading --------------------------------------------------------------------------------

def test_load_samples_and_cli_dispatch(root):
    ts = harbor.load(root / "tasksets/harbor")
    assert len(ts) >= 6 and all(t.env == f"harbor:{t.id}" and t.slug == t.id for t in ts)
    assert Taskset.from_file(root / "tasksets/harbor").digest() == ts.digest()
    one = Taskset.from_file(root / "tasksets/harbor/hello-file")
    assert [t.slug for t in one] == ["hello-file"]
    assert one["hello-file"].agent_config == {"timeout_seconds": 120.0, "grade_on_timeout": True}
    assert ts["nonzero-exit"].agent_config is None  # no [agent] timeout_sec: no limit
    chown = ts["chown-workdir"].columns or {}
    assert any(f.startswith("RUN skipped") for f in chown["harbor_findings"])
    assert not harbor.is_harbor_path(root / "tasksets")  # .py tasksets are not Harbor
    with pytest.raises(TasksetError):
        harbor.load(root / "tests" / "fixtures")


def test_instruction_is_the_prompt_without_canary(root):
    task = harbor.read_task(root / "tasksets/harbor/hello-file")
    assert task.instruction.startswith("Create a file named `greeting.txt`")
    assert "canary" not in task.instruction.lower()


# ---- end to end on Ray ------------------------------------------------------------------------

def rows_by_slug(result) -> dict[str, dict]:
    return {r["slug"]: r for r in read_rollouts(result.out_dir).to_pylist()}


@pytest.mark.ray
@needs_sandbox
async def test_samples_oracle_one_nop_zero(ray_session, tmp_path, root):
    src = str(root / "tasksets/harbor")
    oracle = rows_by_slug(await run_eval_async(config=EvalConfig(
        source=src, agent="oracle", out=str(tmp_path / "o"))))
    assert len(oracle) >= 6
    assert all(r["status"] == "ok" and r["reward"] == 1.0 for r in oracle.values()), \
        [(s, r["status"], r["reward"], r["error_message"]) for s, r in oracle.items()]
    csv = oracle["csv-report"]
    assert {s["key"]: s["value"] for s in csv["subscores"]} == {"orders": 1.0, "total": 1.0, "top_customer": 1.0,
                                      "reward": 1.0}
    info = json.loads(oracle["nonzero-exit"]["grade_info"])
    assert info["test_exit_code"] == 3 and "on purpose" in info["stderr"]
    assert json.loads(oracle["env-json-wins"]["grade_info"])["reward_file"] == "reward.json"
    nop = rows_by_slug(await run_eval_async(config=EvalConfig(
        source=src, agent="nop", out=str(tmp_path / "n"))))
    assert all(r["status"] == "ok" and r["reward"] == 0.0 for r in nop.values()), \
        [(s, r["status"], r["reward"], r["error_message"]) for s, r in nop.items()]


CHEATS = {
    # The agent plants reward.json; the tests write only reward.txt (0). Without the
    # verifier's clean-up, reward.json would win and score 1.
    "plant-json": dict(test_sh="echo 0 > /logs/verifier/reward.txt\n",
                       solve_sh="echo '{\"reward\": 1}' > /logs/verifier/reward.json\n"),
    # The agent plants reward.txt; the tests write nothing unless the work is done.
    "plant-txt": dict(test_sh="[ -f /app/done ] && echo 1 > /logs/verifier/reward.txt\n"
                              "exit 0\n",
                      solve_sh="echo 1 > /logs/verifier/reward.txt\n"),
    # The agent leaves a conftest-style file in /tests: the upload replaces the folder.
    "plant-tests": dict(test_sh="if [ -e /tests/extra ]; then echo 1; else echo 0; fi "
                                "> /logs/verifier/reward.txt\n",
                        solve_sh="mkdir -p /tests && echo hi > /tests/extra\n"),
    "malformed-txt": dict(test_sh="echo passed > /logs/verifier/reward.txt\n", solve_sh=""),
    "malformed-json": dict(test_sh="echo '{\"a\": 1, \"b\": 2}' > /logs/verifier/reward.json\n"
                                   "echo 1 > /logs/verifier/reward.txt\n", solve_sh=""),
    "empty-json": dict(test_sh=": > /logs/verifier/reward.json\n"
                               "echo 1 > /logs/verifier/reward.txt\n", solve_sh=""),
    "missing": dict(test_sh="echo 'tests ran but wrote nothing'\nexit 1\n", solve_sh=""),
    "slow-tests": dict(test_sh="sleep 20\necho 1 > /logs/verifier/reward.txt\n", solve_sh="",
                       toml='[verifier]\ntimeout_sec = 1.0\n'),
    "slow-agent": dict(test_sh="if [ -f /app/done ]; then echo 1; else echo 0; fi "
                               "> /logs/verifier/reward.txt\n",
                       solve_sh="sleep 20; touch /app/done\n",
                       toml='[agent]\ntimeout_sec = 1.0\n'),
    "broken-env": dict(test_sh="echo 1 > /logs/verifier/reward.txt\n", solve_sh="",
                       dockerfile="FROM x\nCOPY nothing-here.txt /app/\n"),
    "needs-var": dict(test_sh="echo 1 > /logs/verifier/reward.txt\n", solve_sh="",
                      toml='[environment]\nenv = { K = "${HUD_RAY_TEST_UNSET_VAR_9}" }\n'),
    "unhealthy": dict(test_sh="echo 1 > /logs/verifier/reward.txt\n", solve_sh="",
                      toml='[environment.healthcheck]\ncommand = "test -f /app/never"\n'
                           'retries = 1\n'),
}


@pytest.mark.ray
@needs_sandbox
async def test_verifier_rules_against_cheats_and_bad_reward_files(ray_session, tmp_path):
    data = tmp_path / "cheats"
    for name, spec in CHEATS.items():
        make_task(data, name, **spec)
    rows = rows_by_slug(await run_eval_async(config=EvalConfig(
        source=str(data), agent="oracle", max_retries=0, out=str(tmp_path / "o"))))
    assert set(rows) == set(CHEATS)
    summary = {s: (r["status"], r["reward"], r["reward_valid"], r["error_type"])
               for s, r in rows.items()}
    assert summary["plant-json"] == ("ok", 0.0, True, None)
    assert summary["plant-tests"] == ("ok", 0.0, True, None)
    for name, code in (("plant-txt", "reward_missing"), ("missing", "reward_missing"),
                       ("malformed-txt", "reward_malformed"),
                       ("malformed-json", "reward_malformed"), ("empty-json", "reward_empty"),
                       ("slow-tests", "verifier_timeout")):
        assert summary[name] == ("grader_error", None, False, code), (name, summary[name])
    assert "tests ran but wrote nothing" in rows["missing"]["error_message"]
    assert summary["slow-agent"] == ("ok", 0.0, True, None)
    assert rows["slow-agent"]["stop_reason"] == "timeout"
    assert summary["broken-env"] == ("infra_error", None, False, "harbor_task_unprepared")
    assert "nothing-here.txt" in rows["broken-env"]["error_message"]
    assert summary["needs-var"] == ("infra_error", None, False, "harbor_task_unprepared")
    assert "HUD_RAY_TEST_UNSET_VAR_9" in rows["needs-var"]["error_message"]
    assert summary["unhealthy"] == ("infra_error", None, False, "harbor_healthcheck")


def harbor_policy(req: ProviderRequest) -> Reply:
    """A 'model' that solves hello-file with one bash call and checks where it is."""
    if req.turn == 0:
        assert "canary" not in req.prompt_text.lower()
        return Reply(tool_calls=(ToolCall("bash", {
            "command": "pwd && echo 'Hello, Harbor!' > greeting.txt && ls /logs"}),))
    return Reply(text="done: " + req.last_text.replace("\n", " "))


@pytest.mark.ray
@needs_sandbox
async def test_model_harness_gets_instruction_and_ssh_tools(ray_session, tmp_path, root):
    with FakeProvider(harbor_policy) as p:
        result = await run_eval_async(config=EvalConfig(
            source=str(root / "tasksets/harbor"), agent="openai_compatible", model="m",
            base_url=p.base_url, task_ids=["hello-file"], out=str(tmp_path / "m")))
        prompts = [r.prompt_text for r in p.log]
    row = rows_by_slug(result)["hello-file"]
    assert row["status"] == "ok" and row["reward"] == 1.0, row["error_message"]
    assert prompts[0].startswith("Create a file named `greeting.txt` in `/app`")
    assert "done: /app" in row["answer"] and "agent" in row["answer"] \
        and "verifier" in row["answer"]


# ---- export -----------------------------------------------------------------------------------

@needs_sandbox
def test_export_ssh_tasks_as_harbor_folders_graded_through_hud_ray(root, tmp_path):
    bin_dir = Path(sys.executable).parent
    source = Taskset.from_file(root / "tasksets/shell.py").select(["fix_script"])
    folders = asyncio.run(harbor.export(source, tmp_path / "out"))
    assert [f.name for f in folders] == [t.slug for t in source]
    back = harbor.load(tmp_path / "out")  # the folders are valid Harbor tasks
    task = harbor.read_task(folders[0])
    assert task.problems == [] and "broken/greet.sh" in task.instruction
    meta = task.config.metadata
    assert meta["hud_ray_template"] == "fix_script" and len(back) == len(source)
    args = json.loads(meta["hud_ray_args"])

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HUD_RAY_STATE_DIR": str(tmp_path / "state"),
           "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "HUD_RAY_CONTROL_URL": f"127.0.0.1:{port}",
           "HARBOR_VERIFIER_DIR": str(tmp_path / "verifier")}
    server = subprocess.Popen([str(bin_dir / "hud-ray"), "serve",
                               str(root / "tasksets/shell.py"), "--port", str(port)],
                              stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "tcp://" in server.stderr.readline()

        def run_once(fix: bool) -> dict:
            start = subprocess.run(["hud-ray", "task", "start", "fix_script", "--args",
                                    json.dumps(args)], capture_output=True, text=True, env=env,
                                   timeout=60)
            assert start.returncode == 0, start.stderr
            if fix:
                line = next(x for x in start.stdout.splitlines() if x.startswith("# shell: ssh"))
                ssh = line.split(": ", 1)[1].split()
                done = subprocess.run([*ssh, "-o", "BatchMode=yes",
                                       "sed -i 's/\\$nme/$name/' broken/greet.sh"],
                                      capture_output=True, text=True, timeout=60)
                assert done.returncode == 0, done.stderr
            graded = subprocess.run(["bash", str(folders[0] / "tests" / "test.sh")],
                                    capture_output=True, text=True, env=env, timeout=120)
            assert graded.returncode == 0, graded.stderr
            return json.loads((tmp_path / "verifier" / "reward.json").read_text())

        assert run_once(fix=False)["reward"] == 0.0
        assert run_once(fix=True)["reward"] == 1.0
    finally:
        server.terminate()
        server.wait(timeout=10)
