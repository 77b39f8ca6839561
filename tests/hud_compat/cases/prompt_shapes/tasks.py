"""Prompt shapes: chat messages, MCP-style content blocks, dict bindings."""

from hud import Environment

env = Environment(name="compat-prompts")


@env.template()
async def blocks(given: str = ""):
    answer = yield [{"role": "user", "content": [
        {"type": "text", "text": "Read carefully."},
        {"type": "text", "text": f"Say blue. [[answer: {given}]]"}]}]
    yield 1.0 if answer == "blue" else 0.0


@env.template()
async def chat(given: str = ""):
    answer = yield [{"role": "user", "content": f"Say green. [[answer: {given}]]"}]
    yield 1.0 if answer == "green" else 0.0


@env.template()
async def with_bindings(given: str = ""):
    answer = yield {"prompt": f"Say red. [[answer: {given}]]",
                    "bindings": {"robot": {"token": "episode-1"}}}
    yield 1.0 if answer == "red" else 0.0


tasks = [blocks(given="blue"), blocks(given="red"), chat(given="green"),
         with_bindings(given="red"), with_bindings(given="blue")]
