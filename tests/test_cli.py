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


# ---- -c key=value, settings, one-line errors ----------------------------------------------

AGENT_SETTINGS = ["-c", "max_steps=3", "-c", "grade_on_timeout=true", "-c", "temperature=0.5",
                  "-c", "system_prompt=Be brief", "-c", "timeout_seconds=null"]
PARSED = {"max_steps": 3, "grade_on_timeout": True, "temperature": 0.5,
          "system_prompt": "Be brief", "timeout_seconds": None}


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without HUD_RAY_* settings or provider keys."""
    drop = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "HUD_API_KEY", "RAY_ADDRESS")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HUD_RAY_") and k not in drop}
    return {**env, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", **extra}


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env or clean_env())


def test_config_key_values_reach_the_run(fixtures, tmp_path):
    """Every -c key=value used to crash (TypeError in the value parser)."""
    out = tmp_path / "out"
    proc = run_cli("eval", str(fixtures / "quickstart.py"), "nop", *AGENT_SETTINGS,
                   "--policy-version", "3", "--json", "--out", str(out), cwd=tmp_path,
                   env=clean_env(HUD_RAY_GROUP_POLICY="keep_partial:2"))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["config"]["agent_config"] == PARSED
    assert manifest["config"]["policy_version"] == 3
    assert "keep_partial" in json.dumps(manifest["config"]["group_policy"])
    from hud_ray import read_rollouts

    assert set(read_rollouts(out).column("policy_version").to_pylist()) == {3}


def test_config_key_values_with_click_runner(fixtures, tmp_path):
    """The same parse in-process; the run stops at the unwritable --out, before Ray."""
    from click.testing import CliRunner

    from hud_ray.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = CliRunner().invoke(main, ["eval", str(fixtures / "quickstart.py"), "nop",
                                       *AGENT_SETTINGS, "--out", str(blocker / "run")],
                                env={k: None for k in os.environ if k.startswith("HUD_RAY_")})
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 3, result.output
    assert "not writable" in result.stderr
    # and the values themselves, through the real option callback
    ctx = main.commands["eval"].make_context(
        "eval", [str(fixtures / "quickstart.py"), "nop", *AGENT_SETTINGS])
    assert ctx.params["config_values"] == PARSED


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("0.5", 0.5), ("true", True), ("False", False), ("null", None),
    ("abc", "abc"), ("Be brief", "Be brief"), ('"3"', "3"), ("[1, 2]", [1, 2]),
    ('{"a": 1}', {"a": 1}), ("", ""), ("yes", "yes"), ("1e3", 1000.0),
])
def test_parse_value(text, value):
    from hud_ray.cli._options import parse_value

    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_settings_precedence(fixtures, tmp_path, monkeypatch):
    """Command line, then HUD_RAY_* variables, then --config FILE, then defaults."""
    from hud_ray.cli import main

    cfg = tmp_path / "run.yaml"
    cfg.write_text("group_size: 2\nmax_retries: 5\nrollout_timeout: 9\n")
    for key in [k for k in os.environ if k.startswith("HUD_RAY_")]:
        monkeypatch.delenv(key)
    src = str(fixtures / "quickstart.py")

    def params(*args: str) -> dict:
        return main.commands["eval"].make_context("eval", [src, "nop", *args]).params

    assert params()["group_size"] == 1                                     # default
    assert params("-c", str(cfg))["group_size"] == 2                       # file
    monkeypatch.setenv("HUD_RAY_GROUP_SIZE", "3")
    monkeypatch.setenv("HUD_RAY_JSON", "true")
    got = params("-c", str(cfg))
    assert (got["group_size"], got["max_retries"], got["as_json"]) == (3, 5, True)  # env
    assert params("-c", str(cfg), "-g", "4")["group_size"] == 4            # command line
    monkeypatch.setenv("HUD_RAY_CONFIG", str(cfg))
    assert params()["rollout_timeout"] == 9                                # HUD_RAY_CONFIG


def test_settings_table():
    from hud_ray.settings import Settings

    s = Settings.from_env({"HUD_RAY_GROUP_SIZE": "7", "HUD_RAY_TASK_IDS": "a,b",
                           "HUD_RAY_GATEWAY_KEY": "k" * 12, "HUD_RAY_TYPO": "1",
                           "HUD_RAY_FAKE_PROVIDER_PORT": "0", "HUD_RAY_STATE_DIR": "/x"})
    assert s.defaults_for("eval") == {"group_size": 7, "task_ids": ["a,b"]}
    assert s.defaults_for("validate") == {"task_ids": ["a,b"]}
    assert s.default_map()["fake-provider"] == {"port": 0}
    assert s.unknown == ("HUD_RAY_TYPO",)
    assert s.gateway_key() == ("k" * 12, "HUD_RAY_GATEWAY_KEY")
    assert str(s.state_dir) == "/x"


def test_hud_ray_variables_are_read_in_one_place(root):
    """No module reads a HUD_RAY_* variable itself; hud_ray/settings.py has the table."""
    import re

    from hud_ray.settings import BY_NAME

    pending: set[str] = set()
    offenders = []
    for path in [*root.glob("hud_ray/**/*.py"), *root.glob("actors/**/*.py")]:
        rel = path.relative_to(root).as_posix()
        if rel == "hud_ray/settings.py" or rel in pending:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"(environ\.get|environ\[|getenv|envvar=)[^#]*HUD_RAY_", line) \
                    and "HUD_RAY_IN_ACTOR" not in line:
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert not offenders, "read these through hud_ray.settings.Settings:\n" + "\n".join(offenders)
    documented = {v for v in re.findall(r"HUD_RAY_[A-Z_]+", (root / "README.md").read_text())
                  if not v.endswith("_")}  # not prefixes like HUD_RAY_FAKE_PROVIDER_<OPTION>
    assert documented <= set(BY_NAME), documented - set(BY_NAME)


JSON_ARGS = """\
from hud_ray import Environment

env = Environment(name="objs")


@env.template()
async def t(x=None):
    answer = yield "hi"
    yield 1.0


tasks = [t(x=object())]
"""


def _isolated_from_ray(argv: list[str]) -> list[str] | None:
    """``argv`` in a new pid namespace with an empty /tmp/ray, so Ray's ``auto`` lookup
    cannot find other clusters on this machine; None if that is impossible here."""
    import shutil

    bwrap = shutil.which("bwrap")
    if bwrap:
        wrap = [bwrap, "--dev-bind", "/", "/", "--unshare-pid", "--proc", "/proc",
                "--tmpfs", "/tmp/ray"]
        if subprocess.run([*wrap, "true"], capture_output=True).returncode == 0:
            return [*wrap, *argv]
    from ray._private.services import get_ray_address_from_environment

    try:
        get_ray_address_from_environment("auto", None)
    except ConnectionError:
        return argv
    return None


@pytest.mark.parametrize("args, env, code, message", [
    (["--out", "{tmp}/a-file/run"], {}, 3, "--out {tmp}/a-file/run: not writable"),
    (["--out", "{tmp}/a-file"], {}, 3, "exists and is not a directory"),
    (["--out", "/proc/hud-ray-run"], {}, 3, "not writable"),
    (["--address", "auto"], {}, 2, "--address auto: no running Ray cluster"),
    (["--rollout-timeout", "-1"], {}, 2, "'--rollout-timeout': -1.0 is not in the range x>0"),
    (["--rollout-timeout", "0"], {}, 2, "'--rollout-timeout': 0.0 is not in the range x>0"),
    (["--rollout-timeout", "soon"], {}, 2, "'--rollout-timeout': 'soon' is not a valid"),
    ([], {"HUD_RAY_ROLLOUT_TIMEOUT": "soon"}, 2, "HUD_RAY_ROLLOUT_TIMEOUT='soon': expected a number"),
    (["-c", "{tmp}/bad.yaml"], {}, 2, "'--rollout-timeout': -5.0 is not in the range x>0"),
    (["-c", "timeout_seconds=0"], {}, 2, "agent_config: timeout_seconds: Input should be greater"),
    (["-c", "max_steps=many"], {}, 2, "agent_config: max_steps: Input should be a valid integer"),
    (["--group-size", "0"], {}, 2, "'-g': 0 is not in the range x>=1"),
    ([], {"HUD_RAY_GROUP_SIZE": "lots"}, 2, "HUD_RAY_GROUP_SIZE='lots': expected an integer"),
    (["--no-such-flag"], {}, 2, "No such option '--no-such-flag'"),
    (["--sandbox-resources", "sandbox"], {}, 2,
     "--sandbox-resources 'sandbox': expected NAME=AMOUNT"),
    (["--harness-resources", "CPU=half"], {}, 2, "'half' is not a number"),
    (["--sandbox-resources", "CPU=-1"], {}, 2, "--sandbox-resources: CPU must be a number >= 0"),
    (["--sandbox-resources", "memory=1.5"], {}, 2, "memory is in bytes, a whole number"),
    ([], {"HUD_RAY_HARNESS_RESOURCES": "robot=2.5"}, 2, "amounts above 1 must be whole"),
])
def test_eval_mistakes_are_one_line(fixtures, tmp_path, args, env, code, message):
    (tmp_path / "a-file").write_text("")
    (tmp_path / "bad.yaml").write_text("rollout_timeout: -5\n")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    message = message.replace("{tmp}", str(tmp_path))
    argv = [str(BIN), "eval", str(fixtures / "quickstart.py"), "nop", *args]
    if "auto" in args:
        isolated = _isolated_from_ray(argv)
        if isolated is None:
            pytest.skip("a Ray cluster runs on this machine and cannot be hidden from `auto`")
        argv = isolated
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=clean_env(**env))
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert message in lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing started


@pytest.mark.parametrize("case, code, message", [
    ("json_args", 2, "template 't': arguments must be JSON-serialisable"),
    ("unknown_agent", 2, "unknown agent 'gpt-banana'"),
    ("missing_tasks", 2, "nope.py: no such file"),
    ("no_key", 2, "agent 'claude' has no endpoint: set ANTHROPIC_API_KEY"),
    ("gateway_no_key", 2, "--gateway needs HUD_RAY_GATEWAY_KEY or HUD_API_KEY"),
    ("missing_agent", 2, "missing AGENT"),
])
def test_task_and_agent_mistakes_are_one_line(fixtures, tmp_path, case, code, message):
    (tmp_path / "objs.py").write_text(JSON_ARGS)
    quick = str(fixtures / "quickstart.py")
    args = {"json_args": ["objs.py", "nop"], "unknown_agent": [quick, "gpt-banana"],
            "missing_tasks": ["nope.py", "oracle"], "no_key": [quick, "claude"],
            "gateway_no_key": [quick, "openai", "--gateway"], "missing_agent": [quick]}[case]
    proc = run_cli("eval", *args, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], \
        proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_fake_provider_is_a_click_command_with_settings(tmp_path):
    """Options and HUD_RAY_FAKE_PROVIDER_* variables; a real OpenAI client gets an answer."""
    import openai

    proc = subprocess.Popen([str(BIN), "fake-provider", "--policy", "echo"], cwd=tmp_path,
                            env=clean_env(HUD_RAY_FAKE_PROVIDER_PORT="0",
                                          HUD_RAY_FAKE_PROVIDER_API_KEY="sekrit-key"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), proc.stderr.read()
        url = line.split()[-1]
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sekrit-key", max_retries=0)
        reply = client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": "ping"}])
        assert "ping" in (reply.choices[0].message.content or "")
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0) \
                .chat.completions.create(model="fake", messages=[{"role": "user",
                                                                  "content": "x"}])
    finally:
        proc.send_signal(2)
        proc.wait(timeout=30)
    bad = run_cli("fake-provider", cwd=tmp_path,
                  env=clean_env(HUD_RAY_FAKE_PROVIDER_PORT="eighty"))
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: HUD_RAY_FAKE_PROVIDER_PORT='eighty': expected an integer"
    helptext = run_cli("fake-provider", "--help", cwd=tmp_path)
    assert helptext.returncode == 0 and "HUD_RAY_FAKE_PROVIDER_POLICY" in helptext.stdout


def test_resource_options_win_over_the_config_file(fixtures, tmp_path):
    """``--harness-resources`` (and its variable) replace the config file's request: the
    file asks for a resource no node has, the option for half a CPU, and the run places."""
    cfg = tmp_path / "run.yaml"
    cfg.write_text("harness_resources: {no_such_node_type: 1}\nplacement_timeout: 20\n")
    out = tmp_path / "out"
    proc = run_cli("eval", str(fixtures / "quickstart.py"), "nop", "-c", str(cfg),
                   "--harness-resources", "CPU=0.5", "--workers", "1", "--json",
                   "--out", str(out), cwd=tmp_path,
                   env=clean_env(HUD_RAY_SANDBOX_RESOURCES="CPU=0.25,sandbox=0"))
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "_manifest.json").read_text())["config"]
    assert config["harness_resources"] == {"CPU": 0.5}
    assert config["sandbox_resources"] == {"CPU": 0.25, "sandbox": 0.0}
    assert json.loads(proc.stdout)["rollouts"] == 3
    assert "blocking ray.get" not in proc.stderr
    # without the option the file's request stands, and no node offers it: one line
    failed = run_cli("eval", str(fixtures / "quickstart.py"), "nop", "-c", str(cfg),
                     "--workers", "1", "--out", str(tmp_path / "out2"), cwd=tmp_path)
    assert failed.returncode != 0
    assert "no_such_node_type" in failed.stderr and "Traceback" not in failed.stderr
