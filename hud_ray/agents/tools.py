"""Agent tools: a name, a JSON-schema for its arguments, and an async executor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


class ToolOutput(str):
    """Tool output text that also carries images (``(mime type, base64 data)`` pairs).

    It is a ``str``, so transcripts record its text; the harnesses send the images to the
    model as image content blocks (Anthropic: in the tool result; Chat Completions and
    Responses: in a user message right after the tool results).
    """

    images: tuple[tuple[str, str], ...]

    def __new__(cls, text: str, images: tuple[tuple[str, str], ...] = ()) -> ToolOutput:
        obj = super().__new__(cls, text)
        obj.images = tuple(images)
        return obj


def tool_images(output: str) -> tuple[tuple[str, str], ...]:
    """The images a tool output carries (none for plain text)."""
    return getattr(output, "images", ())


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
        """``strict`` is always stated: true only when the schema already meets strict
        mode's rules (every property required, no additional properties)."""
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": self.parameters, "strict": strict_schema(self.parameters)}

    def anthropic(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "input_schema": self.parameters}


def strict_schema(schema: dict[str, Any]) -> bool:
    """Whether an object schema already satisfies OpenAI strict mode (checked shallowly
    at every nested object)."""
    if schema.get("type") != "object":
        return False
    props = schema.get("properties") or {}
    if schema.get("additionalProperties") is not False or \
            set(schema.get("required") or ()) != set(props):
        return False
    return all(strict_schema(p) for p in props.values()
               if isinstance(p, dict) and p.get("type") == "object")


async def _think(args: dict[str, Any]) -> str:
    return "noted"


THINK = Tool(
    name="think",
    description="Write down a thought or plan. It changes nothing; the reply is 'noted'.",
    parameters={"type": "object", "properties": {"thought": {"type": "string"}},
                "required": ["thought"]},
    run=_think,
)
