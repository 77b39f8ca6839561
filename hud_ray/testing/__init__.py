"""Test doubles that ship with hud-ray: a local model provider speaking the OpenAI and
Anthropic wire protocols, driven by policies. Usable by your own tests."""

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
from hud_ray.testing.provider import FakeProvider

__all__ = ["FakeProvider", "Fault", "Policy", "ProviderRequest", "Reply", "ToolCall",
           "answer_from_prompt", "echo_policy", "faults", "letters_policy", "scripted",
           "tool_turns"]
