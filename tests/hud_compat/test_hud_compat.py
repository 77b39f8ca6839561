"""HUD v6 files run unchanged on hud-ray and score as on HUD, row by row.

Every folder under ``cases/`` is a HUD-shaped project (``tasks.py``, often beside an
``env.py``) importing from ``hud``. hud-ray runs it through the real engine on Ray,
with the ``openai_compatible`` harness against the local provider; the agent answers
what the prompt's ``[[answer: ...]]`` marker says, after making the tool calls its
``[[run: cmd]]`` (bash) and ``[[call: tool {json}]]`` (MCP) markers ask for. ``expected.json`` holds the rewards the real HUD
SDK (0.6.21) gave; when its venv exists (``make hud-venv``) the case is also run on HUD
in a subprocess and compared live. HUD's ``LLMJudgeGrader`` calls its inference gateway
through the OpenAI client at ``HUD_GATEWAY_URL`` with ``HUD_API_KEY``: the subprocess
points both at the same local provider, so both sides get the same judge verdicts.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from hud_ray import read_rollouts
from hud_ray.engine import EvalConfig, run_eval_async
from hud_ray.testing import FakeProvider, ProviderRequest, Reply, ToolCall

pytestmark = pytest.mark.ray

HERE = Path(__file__).resolve().parent
CASES = sorted(p for p in (HERE / "cases").iterdir() if (p / "tasks.py").exists())
HUD_PYTHON = Path(os.environ.get("HUD_RAY_HUD_VENV",
                                 HERE.parents[1] / "benchmarks" / ".hud-venv")) / "bin" / "python"
MARKER = re.compile(r"\[\[answer: (.*)\]\]", re.S)
ACTION = re.compile(r"\[\[(run|call): (.*?)\]\]", re.S)


def actions(text: str) -> list[tuple[str, dict]]:
    """The prompt's tool calls in order: ``[[run: cmd]]`` (bash), ``[[call: tool {json}]]``."""
    out = []
    for kind, body in ACTION.findall(text):
        if kind == "run":
            out.append(("bash", {"command": body}))
        else:
            name, _, args = body.partition(" ")
            out.append((name, json.loads(args or "{}")))
    return out
VERDICT = re.compile(r"<criterion>\n(.*?)\n</criterion>.*<response>\n(.*?)\n</response>", re.S)


def marker_policy(req: ProviderRequest) -> Reply:
    """Answer the marker; as a judge, MET when the response contains the criterion."""
    text = "\n\n".join(m["content"] for m in req.messages
                       if m["role"] == "user" and isinstance(m["content"], str))
    if judged := VERDICT.search(text):
        met = judged.group(1).lower() in judged.group(2).lower()
        return Reply(json.dumps({"criterion_status": "MET" if met else "UNMET",
                                 "explanation": "substring check"}))
    todo = actions(text)
    if req.turn < len(todo) and todo[req.turn][0] in req.tools:
        return Reply(tool_calls=(ToolCall(*todo[req.turn]),))
    found = MARKER.search(text)
    return Reply(found.group(1) if found else "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The LLM judge runs inside sandbox actors, whose environment is fixed when Ray starts:
# point it at the local provider now, at collection, before any test starts Ray.
PORT = _free_port()
os.environ.setdefault("HUD_RAY_JUDGE_BASE_URL", f"http://127.0.0.1:{PORT}/v1")


@pytest.fixture(scope="module")
def provider():
    with FakeProvider(marker_policy, port=PORT) as p:
        assert os.environ["HUD_RAY_JUDGE_BASE_URL"] == p.base_url
        yield p


HUD_JUDGE_MODEL = "claude-sonnet-5-5"  # LLMJudgeGrader's default model in hud 0.6.21


def run_on_hud(case: Path, provider: FakeProvider) -> dict[str, float | None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUD_", "PYTHONPATH"))}
    # Telemetry off keeps HUD from reporting jobs with the key; the key only satisfies the
    # gateway client's check, and the "gateway" is the local provider.
    env.update(HUD_TELEMETRY_ENABLED="false", HUD_GATEWAY_URL=provider.base_url,
               HUD_API_KEY="hud-compat-local")
    proc = subprocess.run([str(HUD_PYTHON), str(HERE / "hud_side.py"), str(case)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=case)
    for line in proc.stdout.splitlines():
        if line.startswith("HUD_COMPAT_RESULT="):
            return json.loads(line.split("=", 1)[1])
    raise AssertionError(f"HUD run of {case.name} failed:\n{proc.stdout[-2000:]}\n"
                         f"{proc.stderr[-3000:]}")


async def run_on_hud_ray(case: Path, provider, tmp_path: Path) -> dict[str, float | None]:
    config = EvalConfig(source=str(case / "tasks.py"), agent="openai_compatible",
                        base_url=provider.base_url, model="m", out=str(tmp_path / case.name),
                        max_retries=0, rollout_timeout=120)
    result = await run_eval_async(config=config)
    rows = read_rollouts(result.out_dir).to_pylist()
    return {r["slug"]: (r["reward"] if r["reward_valid"] else None) for r in rows if r["final"]}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_case_scores_as_on_hud(case, ray_session, provider, tmp_path):
    expected = json.loads((case / "expected.json").read_text())
    got = await run_on_hud_ray(case, provider, tmp_path)
    assert got == expected, f"hud-ray differs from HUD's recorded rewards for {case.name}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_recording_matches_live_hud(case, provider):
    if not HUD_PYTHON.exists():
        pytest.skip(f"no HUD SDK venv at {HUD_PYTHON.parent.parent} (run `make hud-venv`)")
    before = provider.requests
    assert run_on_hud(case, provider) == json.loads((case / "expected.json").read_text())
    if "LLMJudgeGrader" in (case / "tasks.py").read_text():
        # HUD's own judge got its verdicts from the local provider (its agent makes no calls)
        assert provider.requests > before
        assert provider.log[-1].model == HUD_JUDGE_MODEL
