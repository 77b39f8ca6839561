"""Template code reads and writes under the workspace root around the agent's turn.

On HUD the workspace serves ``root`` itself, so the template sees the agent's files
there; hud-ray shows each rollout's own copy at ``root`` while its template code runs.
"""

import os
import shutil
import tempfile
from pathlib import Path

from hud import Environment

ROOT = Path(tempfile.gettempdir()) / f"hud-compat-ws-{os.getpid()}"

env = Environment(name="compat-workspace")
env.workspace(ROOT)


@env.initialize
async def seed():
    (ROOT / "notes.txt").write_text("pristine")


@env.shutdown
async def remove_root():
    shutil.rmtree(ROOT, ignore_errors=True)


@env.template()
async def edit_notes(content: str = "", expect: str = ""):
    yield f"Overwrite notes.txt. [[run: printf '{content}' > notes.txt]] [[answer: done]]"
    yield 1.0 if (ROOT / "notes.txt").read_text() == expect else 0.0


@env.template()
async def echo_seed(word: str = ""):
    (ROOT / "seed.txt").write_text(word)
    yield "Copy seed.txt to echo.txt. [[run: cp seed.txt echo.txt]] [[answer: done]]"
    echoed = ROOT / "echo.txt"
    yield 1.0 if echoed.exists() and echoed.read_text() == word else 0.0


tasks = [
    edit_notes(content="agent wrote", expect="agent wrote"),
    edit_notes(content="something else", expect="agent wrote"),
    echo_seed(word="kiwi"),
]
