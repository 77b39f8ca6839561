"""Agent tools: a name, a JSON-schema for its arguments, and an async executor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Tool:
    """One tool a harness offers the model. ``run`` returns the text the model sees."""

    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[dict[str, Any]], Awaitable[str]]

    def openai_chat(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name,
                                                 "description": self.description,
                                                 "parameters": self.parameters}}

    def openai_responses(self) -> dict[str, Any]:
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": self.parameters}

    def anthropic(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "input_schema": self.parameters}


async def _think(args: dict[str, Any]) -> str:
    return "noted"


THINK = Tool(
    name="think",
    description="Write down a thought or plan. It changes nothing; the reply is 'noted'.",
    parameters={"type": "object", "properties": {"thought": {"type": "string"}},
                "required": ["thought"]},
    run=_think,
)
