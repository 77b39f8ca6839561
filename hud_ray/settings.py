"""Every ``HUD_RAY_*`` variable hud-ray reads (and ``HUD_API_KEY``): one table, one reader.

Precedence for a command-line option (first match wins): the command line, then the
environment (:class:`Settings`), then a ``--config FILE`` YAML file, then the built-in
default. Library code that needs a variable (the gateway key, the state directory) asks
:meth:`Settings.from_env` instead of reading ``os.environ``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hud_ray.errors import ConfigError

PREFIX = "HUD_RAY_"


@dataclass(frozen=True)
class Var:
    """One variable: its name, value kind, and the command options it is the default of."""

    name: str
    kind: str  # "str" | "int" | "float" | "bool" | "list"
    help: str
    options: tuple[tuple[str, str], ...] = ()  # (command path, option dest)
    secret: bool = False


def _opts(commands: str, dest: str) -> tuple[tuple[str, str], ...]:
    return tuple((c, dest) for c in commands.split(","))


VARIABLES: tuple[Var, ...] = (
    Var("HUD_RAY_LOG_LEVEL", "str", "log level (DEBUG, INFO, WARNING, ERROR)"),
    Var("HUD_RAY_CONFIG", "list", "eval --config values (whitespace-separated)",
        _opts("eval", "config_values")),
    Var("HUD_RAY_MODEL", "str", "eval --model", _opts("eval", "model")),
    Var("HUD_RAY_BASE_URL", "str", "eval --base-url", _opts("eval", "base_url")),
    Var("HUD_RAY_GATEWAY", "bool", "eval --gateway", _opts("eval", "gateway")),
    Var("HUD_RAY_GROUP_SIZE", "int", "eval --group-size", _opts("eval", "group_size")),
    Var("HUD_RAY_MAX_CONCURRENT", "int", "eval --max-concurrent",
        _opts("eval", "max_concurrent")),
    Var("HUD_RAY_TASK_IDS", "list", "--task-ids (comma-separated)",
        _opts("eval,validate", "task_ids")),
    Var("HUD_RAY_ENV", "str", "--env FILE", _opts("eval,validate", "env_source")),
    Var("HUD_RAY_OUT", "str", "eval --out", _opts("eval", "out")),
    Var("HUD_RAY_RESUME", "str", "eval --resume", _opts("eval", "resume")),
    Var("HUD_RAY_ADDRESS", "str", "--address", _opts("eval,validate,sweep", "address")),
    Var("HUD_RAY_WORKING_DIR", "str", "eval --working-dir", _opts("eval", "working_dir")),
    Var("HUD_RAY_EXCLUDE", "list", "eval --exclude", _opts("eval", "excludes")),
    Var("HUD_RAY_SHIP", "bool", "eval --ship/--no-ship", _opts("eval", "ship")),
    Var("HUD_RAY_MAX_RETRIES", "int", "eval --max-retries", _opts("eval", "max_retries")),
    Var("HUD_RAY_ROLLOUT_TIMEOUT", "float", "--rollout-timeout",
        _opts("eval,validate", "rollout_timeout")),
    Var("HUD_RAY_WORKERS", "int", "eval --workers", _opts("eval", "workers")),
    Var("HUD_RAY_SANDBOX_RESOURCES", "list", "eval --sandbox-resources (NAME=AMOUNT ...)",
        _opts("eval", "sandbox_items")),
    Var("HUD_RAY_HARNESS_RESOURCES", "list", "eval --harness-resources (NAME=AMOUNT ...)",
        _opts("eval", "harness_items")),
    Var("HUD_RAY_JSON", "bool", "--json", _opts("eval,validate", "as_json")),
    Var("HUD_RAY_SERVE_ENV", "str", "serve --env", _opts("serve", "env_name")),
    Var("HUD_RAY_SERVE_HOST", "str", "serve --host", _opts("serve", "host")),
    Var("HUD_RAY_SERVE_PORT", "int", "serve --port", _opts("serve", "port")),
    Var("HUD_RAY_SERVE_INSECURE", "bool", "serve --insecure", _opts("serve", "insecure")),
    Var("HUD_RAY_SERVE_MAX_PARKED", "int", "serve --max-parked", _opts("serve", "max_parked")),
    Var("HUD_RAY_SERVE_IDLE_TTL", "float", "serve --idle-ttl", _opts("serve", "idle_ttl")),
    Var("HUD_RAY_CONTROL_URL", "str", "task --url",
        _opts("task list,task start,task grade,task cancel", "url")),
    Var("HUD_RAY_CONTROL_TOKEN", "str", "task --token (the control channel's secret)",
        _opts("task list,task start,task grade,task cancel", "token"), secret=True),
    Var("HUD_RAY_JOBS_ADDRESS", "str", "submit/jobs --address (the dashboard, http://HEAD:8265)",
        _opts("submit,jobs list,jobs status,jobs logs,jobs stop", "address")),
    Var("HUD_RAY_RUNS_DIR", "str", "submit --runs-dir", _opts("submit", "runs_dir")),
    Var("HUD_RAY_SWEEP_OUT", "str", "sweep --out", _opts("sweep", "out")),
    Var("HUD_RAY_POLICY_VERSION", "int", "eval --policy-version", _opts("eval", "policy_version")),
    Var("HUD_RAY_GROUP_POLICY", "str", "--group-policy",
        _opts("eval,export", "group_policy")),
    Var("HUD_RAY_EXPORT_FORMAT", "str", "export --format", _opts("export", "fmt")),
    Var("HUD_RAY_EXPORT_OUT", "str", "export --out", _opts("export", "out")),
    Var("HUD_RAY_SLIME_RUN", "str", "the run directory slime's rollout function follows"),
    Var("HUD_RAY_CHROMIUM", "str", "the Chromium binary env.browser() launches"),
    Var("HUD_RAY_CHROMIUM_SANDBOX", "bool",
        "0: run Chromium unjailed with --no-sandbox (hosts without user namespaces)"),
    Var("HUD_RAY_STATE_DIR", "str", "where `hud-ray task` keeps its session and keys"),
    Var("HUD_RAY_GATEWAY_KEY", "str", "key for the model gateway (else HUD_API_KEY)",
        secret=True),
    Var("HUD_API_KEY", "str", "HUD's own key: the gateway key if HUD_RAY_GATEWAY_KEY is unset",
        secret=True),
    Var("HUD_RAY_GATEWAY_URL", "str", "the gateway's OpenAI-compatible URL"),
    Var("HUD_RAY_JUDGE_BASE_URL", "str", "endpoint of the LLM-judge grader"),
    Var("HUD_RAY_JUDGE_API_KEY", "str", "key of the LLM-judge grader", secret=True),
    Var("HUD_RAY_HUD_SHIM", "bool", "install the `hud` import shim (default true)"),
    Var("HUD_RAY_FAKE_PROVIDER_HOST", "str", "fake-provider --host",
        _opts("fake-provider", "host")),
    Var("HUD_RAY_FAKE_PROVIDER_PORT", "int", "fake-provider --port",
        _opts("fake-provider", "port")),
    Var("HUD_RAY_FAKE_PROVIDER_POLICY", "str", "fake-provider --policy",
        _opts("fake-provider", "policy")),
    Var("HUD_RAY_FAKE_PROVIDER_LATENCY", "float", "fake-provider --latency",
        _opts("fake-provider", "latency")),
    Var("HUD_RAY_FAKE_PROVIDER_TURNS", "int", "fake-provider --turns",
        _opts("fake-provider", "turns")),
    Var("HUD_RAY_FAKE_PROVIDER_TOKEN_IDS", "bool", "fake-provider --token-ids",
        _opts("fake-provider", "token_ids")),
    Var("HUD_RAY_FAKE_PROVIDER_API_KEY", "str", "fake-provider --api-key",
        _opts("fake-provider", "api_key"), secret=True),
    Var("HUD_RAY_FAKE_PROVIDER_LENIENT", "bool", "fake-provider --lenient",
        _opts("fake-provider", "lenient")),
)
BY_NAME: dict[str, Var] = {v.name: v for v in VARIABLES}
#: Set by hud-ray itself inside Ray actors; not a user setting.
INTERNAL = frozenset({"HUD_RAY_IN_ACTOR"})

_KIND = {"int": "an integer", "float": "a number"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _convert(var: Var, raw: str) -> Any:
    text = raw.strip()
    shown = "***" if var.secret else repr(raw)
    try:
        if var.kind == "int":
            return int(text)
        if var.kind == "float":
            return float(text)
    except ValueError:
        raise ConfigError(f"{var.name}={shown}: expected {_KIND[var.kind]}") from None
    if var.kind == "bool":
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise ConfigError(f"{var.name}={shown}: expected true/false or 1/0")
    if var.kind == "list":
        return shlex.split(text) if var.name == "HUD_RAY_CONFIG" else [text]
    return raw


@dataclass(frozen=True)
class Settings:
    """The ``HUD_RAY_*`` variables that are set, typed. Build with :meth:`from_env`."""

    values: Mapping[str, Any] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and type-check every known variable; a bad value is a :class:`ConfigError`."""
        environ = os.environ if environ is None else environ
        values = {name: _convert(var, environ[name]) for name, var in BY_NAME.items()
                  if name in environ}
        unknown = tuple(sorted(k for k in environ if k.startswith(PREFIX)
                               and k not in BY_NAME and k not in INTERNAL))
        return cls(values, unknown)

    def get(self, name: str, default: Any = None) -> Any:
        if name not in BY_NAME:
            raise KeyError(f"{name} is not a hud-ray setting")
        return self.values.get(name, default)

    def defaults_for(self, command: str) -> dict[str, Any]:
        """Option defaults (dest -> value) the environment sets for ``command``."""
        return {dest: self.values[v.name] for v in VARIABLES if v.name in self.values
                for cmd, dest in v.options if cmd == command}

    def default_map(self) -> dict[str, Any]:
        """The same for every command, nested like click's ``default_map``."""
        tree: dict[str, Any] = {}
        for v in VARIABLES:
            for cmd, dest in v.options:
                if v.name in self.values:
                    node = tree
                    for part in cmd.split():
                        node = node.setdefault(part, {})
                    node[dest] = self.values[v.name]
        return tree

    @property
    def state_dir(self) -> Path:
        return Path(self.get("HUD_RAY_STATE_DIR") or Path.home() / ".hud-ray")

    def gateway_key(self) -> tuple[str, str] | None:
        """``(key, variable)`` for the gateway: ``HUD_RAY_GATEWAY_KEY``, else ``HUD_API_KEY``."""
        if key := self.get("HUD_RAY_GATEWAY_KEY"):
            return key, "HUD_RAY_GATEWAY_KEY"
        if key := self.get("HUD_API_KEY"):
            return key, "HUD_API_KEY"
        return None


__all__ = ["VARIABLES", "Settings", "Var"]
