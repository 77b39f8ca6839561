"""Harbor's verifier, run inside the rollout's sandbox.

After the agent: remove any ``reward.txt``/``reward.json`` under ``/logs/verifier``,
put the task's ``tests/`` at ``/tests``, run ``tests/test.sh`` with the verifier's
environment and timeout (its exit status is ignored), then read ``reward.json``
before ``reward.txt``. Every file operation runs inside the sandbox through the
workspace's grader ``exec`` — never on the host, where a path the agent planted (a
symlink) would point at the host's files.
"""

from __future__ import annotations

import io
import json
import math
import shlex
import tarfile
from pathlib import Path
from typing import Any

from hud_ray.errors import GradeError

VERIFIER_DIR = "/logs/verifier"
TESTS_DIR = "/tests"
OUTPUT_CAP = 8_000
REWARD_CAP = 64_000


def tar_directory(folder: Path) -> bytes:
    """``folder``'s contents as an uncompressed tar (for ``tar -x`` inside the sandbox)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(folder.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def exports(env: dict[str, str]) -> str:
    return "".join(f"export {k}={shlex.quote(v)}; " for k, v in env.items()
                   if k.isidentifier())


def parse_rewards(kind: str, text: str) -> tuple[float, dict[str, float]]:
    """The scalar reward and the subscores from a reward file's text.

    ``reward.json``: a flat object of finite numbers; all of it is the subscores; the
    scalar is its ``reward`` key, or its only value. ``reward.txt``: one finite float.
    Anything else is a :class:`GradeError` (a ``grader_error`` row, never a 0.0).
    """
    name = f"reward.{kind}"
    if not text.strip():
        raise GradeError(f"{VERIFIER_DIR}/{name} is empty", code="reward_empty")
    if kind == "txt":
        try:
            value = float(text.strip())
        except ValueError:
            raise GradeError(f"{VERIFIER_DIR}/{name} is not a number: {text.strip()[:80]!r}",
                             code="reward_malformed") from None
        if not math.isfinite(value):
            raise GradeError(f"{VERIFIER_DIR}/{name} is not finite: {value}",
                             code="reward_malformed")
        return value, {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GradeError(f"{VERIFIER_DIR}/{name} is not JSON: {exc.msg} (line {exc.lineno})",
                         code="reward_malformed") from None
    if not isinstance(data, dict) or not data:
        raise GradeError(f"{VERIFIER_DIR}/{name} must be a non-empty JSON object of numbers, "
                         f"got {type(data).__name__}", code="reward_malformed")
    subscores: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise GradeError(f"{VERIFIER_DIR}/{name}: {key!r} is not a finite number "
                             f"({json.dumps(value)[:60]})", code="reward_malformed")
        subscores[key] = float(value)
    if "reward" in subscores:
        return subscores["reward"], subscores
    if len(subscores) == 1:
        return next(iter(subscores.values())), subscores
    raise GradeError(f"{VERIFIER_DIR}/{name} has {len(subscores)} keys and no 'reward' "
                     f"({', '.join(sorted(subscores))[:120]})", code="reward_malformed")


_READ = (f"cd {VERIFIER_DIR} 2>/dev/null || {{ echo none; exit 0; }}; "
         "if [ -e reward.json ]; then echo json; cat reward.json; "
         "elif [ -e reward.txt ]; then echo txt; cat reward.txt; else echo none; fi")


async def run_verifier(ws: Any, tests: Path, *, timeout: float, env: dict[str, str],
                       workdir: str) -> dict[str, Any]:
    """Verify a finished rollout in workspace session ``ws``; returns a HUD grade dict.

    The agent's turn ends first (its connections closed, its processes killed), and every
    verifier step runs as the sandbox's grader user, which the agent cannot impersonate."""
    await ws.stop_agent(kill=True)
    reset = (f"if [ -L {VERIFIER_DIR} ] || {{ [ -e {VERIFIER_DIR} ] && "
             f"[ ! -d {VERIFIER_DIR} ]; }}; then rm -f {VERIFIER_DIR}; fi; "
             f"mkdir -p {VERIFIER_DIR} && "
             f"rm -rf {VERIFIER_DIR}/reward.txt {VERIFIER_DIR}/reward.json && "
             f"chmod -R u+rwX {TESTS_DIR} 2>/dev/null; "
             f"find {TESTS_DIR} -mindepth 1 -delete && tar -x -C {TESTS_DIR}")
    prepared = await ws.exec(reset, timeout=120, stdin=tar_directory(tests), as_grader=True)
    if not prepared.ok:
        raise GradeError(f"could not prepare the verifier: {_one_line(prepared.stderr)}",
                         code="verifier_setup")
    script = f"cd {shlex.quote(workdir)} && {exports(env)}bash {TESTS_DIR}/test.sh"
    result = await ws.exec(script, timeout=timeout, max_output=OUTPUT_CAP, as_grader=True)
    info: dict[str, Any] = {"test_exit_code": result.exit_code,
                            "stdout": result.stdout[-OUTPUT_CAP:],
                            "stderr": result.stderr[-OUTPUT_CAP:]}
    if result.timed_out:
        raise GradeError(f"tests/test.sh passed its {timeout:g}s timeout; "
                         f"output: {_tail(result)}", code="verifier_timeout")
    found = await ws.exec(_READ, timeout=60, max_output=REWARD_CAP, as_grader=True)
    kind, _, text = found.stdout.partition("\n")
    if found.truncated:
        raise GradeError(f"{VERIFIER_DIR}/reward.{kind} is larger than {REWARD_CAP} bytes",
                         code="reward_malformed")
    if kind not in ("json", "txt"):
        raise GradeError(f"tests/test.sh wrote no {VERIFIER_DIR}/reward.json or reward.txt "
                         f"(exit {result.exit_code}); output: {_tail(result)}",
                         code="reward_missing")
    try:
        reward, subscores = parse_rewards(kind, text)
    except GradeError as exc:
        raise GradeError(f"{exc}; test output: {_tail(result)}", code=exc.code) from None
    info["reward_file"] = f"reward.{kind}"
    return {"score": reward, "subscores": subscores, "info": info}


def _one_line(text: str, limit: int = 300) -> str:
    return " | ".join(line for line in text.strip().splitlines() if line)[-limit:]


def _tail(result: Any) -> str:
    return _one_line(f"{result.stdout}\n{result.stderr}") or "(none)"
