"""Run one compat case on the real HUD SDK and print ``{slug: reward}`` as JSON.

Runs inside the venv that has ``hud`` installed (``make hud-venv``); imports nothing
from hud-ray. The agent answers what the prompt's ``[[answer: ...]]`` marker says (an
empty answer when there is none), after running the ``[[run: cmd]]`` markers' commands
in the ``shell`` workspace and calling the ``[[call: tool {json}]]`` markers' tools on the
``tools`` MCP capability, exactly as the hud-ray side's provider policy does.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

MARKER = re.compile(r"\[\[answer: (.*)\]\]", re.S)
ACTION = re.compile(r"\[\[(run|call): (.*?)\]\]", re.S)


def marker_agent():
    from hud.agents.base import Agent

    class MarkerAgent(Agent):
        async def __call__(self, run) -> None:
            for kind, body in ACTION.findall(run.prompt_text or ""):
                if kind == "run":
                    shell = await run.client.open("shell")
                    await shell.run(body)
                else:
                    name, _, args = body.partition(" ")
                    tools = await run.client.open("tools")
                    await tools.call_tool(name, json.loads(args or "{}"))
            found = MARKER.search(run.prompt_text or "")
            run.trace.content = found.group(1) if found else ""

    return MarkerAgent()


async def main(case: Path) -> None:
    from hud.eval import Taskset

    os.chdir(case)
    sys.path.insert(0, str(case))
    taskset = Taskset.from_file(case / "tasks.py")
    job = await taskset.run(marker_agent(), max_concurrent=1)
    out = {}
    for run in job.runs:
        out[run.slug] = None if run.grade.is_error else run.reward
    print("HUD_COMPAT_RESULT=" + json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]).resolve()))
