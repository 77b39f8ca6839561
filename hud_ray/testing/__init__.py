"""Test doubles that ship with hud-ray: a local model provider speaking the OpenAI and
Anthropic wire protocols, driven by policies. Usable by your own tests.

    async with FakeProvider(scripted(Reply(tool_calls=(ToolCall("bash", {"cmd": "ls"}),)),
                                     Reply("done"))) as p:
        client = AsyncOpenAI(base_url=p.base_url, api_key="x")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hud_ray.testing.policy import (
    Fault,
    Policy,
    ProviderRequest,
    Reply,
    ToolCall,
    answer_from_prompt,
    echo_policy,
    faults,
    letters_policy,
    scripted,
    tool_turns,
)

if TYPE_CHECKING:
    from hud_ray.testing.provider import FakeProvider


def __getattr__(name: str) -> Any:
    # imported on first use, so `python -m hud_ray.testing.provider` runs a fresh module
    if name == "FakeProvider":
        from hud_ray.testing.provider import FakeProvider

        return FakeProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FakeProvider", "Fault", "Policy", "ProviderRequest", "Reply", "ToolCall",
           "answer_from_prompt", "echo_policy", "faults", "letters_policy", "scripted",
           "tool_turns"]
