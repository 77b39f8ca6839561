"""Which endpoint and key a model call uses.

Precedence, first match wins:

1. ``--base-url`` (``AgentSpec.base_url``): that endpoint, with the key from the env var
   named by ``api_key_env`` or the provider's usual variable, else ``"EMPTY"`` (local
   servers such as vLLM take any key). An ``api_key_env`` naming an unset variable is a
   ConfigError, whatever the route.
2. ``--gateway`` forces the gateway (below).
3. A provider key in the environment calls the provider directly:
   ``ANTHROPIC_API_KEY`` for ``claude``, ``OPENAI_API_KEY`` for ``openai`` and
   ``openai_compatible``, ``GEMINI_API_KEY`` for ``gemini``.
4. A gateway key (``HUD_RAY_GATEWAY_KEY`` or ``HUD_API_KEY``) routes through the
   OpenAI-compatible gateway at ``HUD_RAY_GATEWAY_URL`` (default
   ``https://inference.hud.ai/v1``). Through the gateway every harness speaks Chat
   Completions.

Keys never reach records, logs or error messages: :class:`Secret` hides them in reprs
and :func:`redact` scrubs them from any text.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from hud_ray.errors import ConfigError
from hud_ray.types import AgentSpec

Protocol = Literal["anthropic", "responses", "chat", "gemini"]

DEFAULT_GATEWAY_URL = "https://inference.hud.ai/v1"
PROVIDER_KEYS = {"claude": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY",
                 "openai_compatible": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}
NATIVE_PROTOCOL: dict[str, Protocol] = {"claude": "anthropic", "openai": "responses",
                                        "openai_compatible": "chat", "gemini": "gemini"}

_KNOWN_KEYS: set[str] = set()


class Secret:
    """A string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        if len(value) >= 8:
            _KNOWN_KEYS.add(value)

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class Endpoint:
    """Where a harness sends model calls."""

    protocol: Protocol
    base_url: str | None
    api_key: Secret
    via_gateway: bool = False
    key_source: str = ""


def redact(text: str, keys: Iterable[str] = ()) -> str:
    """Replace every known key (and ``keys``) in ``text`` with ``***``."""
    for key in {*_KNOWN_KEYS, *keys}:
        if key and key in text:
            text = text.replace(key, "***")
    return text


def _gateway(spec: AgentSpec) -> Endpoint:
    from hud_ray.settings import Settings

    settings = Settings.from_env()
    if found := settings.gateway_key():
        key, var = found
        url = settings.get("HUD_RAY_GATEWAY_URL") or DEFAULT_GATEWAY_URL
        return Endpoint("chat", url, Secret(key), via_gateway=True, key_source=var)
    raise ConfigError("--gateway needs HUD_RAY_GATEWAY_KEY or HUD_API_KEY in the environment")


def resolve_endpoint(spec: AgentSpec) -> Endpoint:
    """Pick the endpoint for ``spec`` by the precedence in the module docstring."""
    provider_var = PROVIDER_KEYS.get(spec.name)
    if provider_var is None:
        raise ConfigError(f"agent {spec.name!r} does not call a model provider")
    native = NATIVE_PROTOCOL[spec.name]
    extras = spec.config.model_extra or {}
    named = extras.get("api_key_env")
    if named and not os.environ.get(named):
        raise ConfigError(f"agent {spec.name!r}: api_key_env names {named}, which is not set "
                          "in the environment")
    if spec.base_url:
        var = named or provider_var
        key = os.environ.get(var) or "EMPTY"
        return Endpoint(native, spec.base_url, Secret(key), key_source=var)
    if spec.gateway:
        return _gateway(spec)
    if direct := os.environ.get(provider_var):
        return Endpoint(native, None, Secret(direct), key_source=provider_var)
    try:
        return _gateway(spec)
    except ConfigError:
        raise ConfigError(f"agent {spec.name!r} has no endpoint: set {provider_var}, or "
                          "HUD_RAY_GATEWAY_KEY / HUD_API_KEY for the gateway, or pass "
                          "--base-url") from None
