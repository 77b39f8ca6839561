"""A hud-ray taskset of ssh tasks written out as Harbor task folders.

Each row becomes ``<out>/<slug>/`` with ``instruction.md`` (the template's prompt),
``task.toml`` (the row in ``[metadata]``, its agent timeout) and ``tests/test.sh``,
which grades through ``hud-ray task grade`` against the ``hud-ray serve`` the task was
started on and writes the grade to ``/logs/verifier/reward.json`` (``reward`` plus the
subscores). The world the agent changes is the hud-ray workspace (reached over ssh),
not the Harbor container: see docs/HARBOR.md for how a Harbor run is wired to it.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from hud_ray.errors import TasksetError
from hud_ray.sandbox import Sandbox, load_environments
from hud_ray.task import Taskset

_TEST_SH = """#!/bin/bash
# Grades the hud-ray task {slug} through `hud-ray task grade` (written by hud-ray's
# Harbor export). The answer is /logs/agent/answer.txt when the agent wrote one.
set -u
out="${{HARBOR_VERIFIER_DIR:-/logs/verifier}}"
mkdir -p "$out"
answer=()
if [ -f /logs/agent/answer.txt ]; then answer=(--answer "$(cat /logs/agent/answer.txt)"); fi
grade=$(hud-ray task grade "${{answer[@]}}") || {{ echo "hud-ray task grade failed" >&2; exit 1; }}
printf '%s' "$grade" | python3 -c '
import json, sys
grade = json.load(sys.stdin)
rewards = {{str(k): float(v) for k, v in (grade.get("subscores") or {{}}).items()}}
rewards["reward"] = float(grade["score"])
json.dump(rewards, open(sys.argv[1], "w"))
' "$out/reward.json"
"""


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


async def export(taskset: Taskset, out: str | os.PathLike[str], *,
                 verifier_timeout: float = 600.0) -> list[Path]:
    """Write every row of ``taskset`` as a Harbor task folder under ``out``.

    Prompts are rendered by starting each task in an in-process sandbox (then
    cancelled), so an environment with a workspace needs the ssh sandbox here.
    """
    root = Path(out)
    if not taskset.sources:
        raise TasksetError("export needs a taskset loaded from its Python source")
    sandbox = Sandbox(load_environments(taskset.sources))
    written: list[Path] = []
    try:
        for task in taskset:
            prompt = await sandbox.start(task)
            await sandbox.cancel(prompt.session_id)
            folder = root / task.slug
            (folder / "tests").mkdir(parents=True, exist_ok=True)
            (folder / "instruction.md").write_text(prompt.text.rstrip("\n") + "\n")
            timeout = (task.agent_config or {}).get("timeout_seconds")
            lines = ['schema_version = "1.1"', "", "[task]",
                     f"name = {_toml_str('hud-ray/' + task.slug)}", "", "[metadata]",
                     f"hud_ray_env = {_toml_str(task.env)}",
                     f"hud_ray_template = {_toml_str(task.id)}",
                     f"hud_ray_args = {_toml_str(json.dumps(task.args, sort_keys=True))}",
                     f"hud_ray_start = {_toml_str(_start_command(task.id, task.args))}", "",
                     "[verifier]", f"timeout_sec = {float(verifier_timeout)}",
                     'env = { HUD_RAY_CONTROL_URL = "${HUD_RAY_CONTROL_URL:-127.0.0.1:8765}", '
                     'HUD_RAY_CONTROL_TOKEN = "${HUD_RAY_CONTROL_TOKEN:-}" }']
            if timeout:
                lines += ["", "[agent]", f"timeout_sec = {float(timeout)}"]
            (folder / "task.toml").write_text("\n".join(lines) + "\n")
            test = folder / "tests" / "test.sh"
            test.write_text(_TEST_SH.format(slug=task.slug))
            test.chmod(0o755)
            written.append(folder)
    finally:
        await sandbox.close()
    return written


def _start_command(template: str, args: dict[str, object]) -> str:
    return f"hud-ray task start {shlex.quote(template)} --args {shlex.quote(json.dumps(args))}"
