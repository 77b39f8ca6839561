"""A game served over MCP, in HUD's published shape: an ``@env.initialize`` hook starts a
FastMCP server and publishes it with ``Capability.mcp``; the template grades on the
game's state, which only the agent's tool calls change."""

import asyncio
import json
import socket

from hud import Environment
from hud.capabilities import Capability
from mcp.server.fastmcp import FastMCP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT = _free_port()
server = FastMCP(name="game", host="127.0.0.1", port=PORT)
STATE = {"pos": 0, "secret": 0, "won": False}


@server.tool()
def move(steps: int) -> str:
    """Move the token by `steps`."""
    STATE["pos"] += steps
    return f"token at {STATE['pos']}"


@server.tool()
def guess(value: int) -> str:
    """Guess the secret number."""
    STATE["won"] = STATE["won"] or value == STATE["secret"]
    return "correct" if value == STATE["secret"] else "wrong"


env = Environment(name="compat-mcp-game")
_task = None


@env.initialize
async def _up():  # the server lives as long as the process (HUD restarts the env per run)
    global _task
    if _task is None:
        _task = asyncio.create_task(server.run_streamable_http_async())
        for _ in range(400):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", PORT)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
    env.add_capability(Capability.mcp(name="tools", url=f"http://127.0.0.1:{PORT}/mcp"))


@env.template()
async def play(secret: int = 0, target: int = 0, steps: list[int] = (), guesses: list[int] = ()):
    STATE.update(pos=0, secret=secret, won=False)
    calls = [f"[[call: move {json.dumps({'steps': s})}]]" for s in steps]
    calls += [f"[[call: guess {json.dumps({'value': g})}]]" for g in guesses]
    yield (f"Move the token to {target} and guess the secret. {' '.join(calls)} "
           "[[answer: done]]")
    yield 0.5 * (STATE["pos"] == target) + 0.5 * STATE["won"]


tasks = [
    play(secret=7, target=3, steps=[1, 2], guesses=[4, 7]),
    play(secret=7, target=3, steps=[2], guesses=[7]),
    play(secret=5, target=-2, steps=[-2], guesses=[1]),
    play(secret=5, target=2),
]
