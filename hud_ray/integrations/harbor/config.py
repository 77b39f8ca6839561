"""``task.toml``: Harbor's task settings, current schema and legacy spellings.

Field names and defaults are Harbor's. Unknown keys are ignored (``unknown_keys``
lists them). Legacy forms are normalised on read: top-level ``version`` becomes
``schema_version``, ``memory``/``storage`` size strings (``"4G"``) become
``memory_mb``/``storage_mb``, ``allow_internet = false`` becomes the
``no-network`` network mode.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hud_ray.errors import TasksetError

NetworkMode = Literal["public", "no-network", "allowlist"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class VerifierSettings(_Section):
    timeout_sec: float = 600.0
    env: dict[str, str] = Field(default_factory=dict)
    user: str | int | None = None


class AgentSettings(_Section):
    timeout_sec: float | None = None
    user: str | int | None = None


class SolutionSettings(_Section):
    env: dict[str, str] = Field(default_factory=dict)


class Healthcheck(_Section):
    command: str
    interval_sec: float = 5.0
    timeout_sec: float = 30.0
    start_period_sec: float = 0.0
    start_interval_sec: float = 5.0
    retries: int = 3


class EnvironmentSettings(_Section):
    build_timeout_sec: float = 600.0
    docker_image: str | None = None
    workdir: str | None = None
    cpus: float = 1
    memory_mb: int = 2048
    storage_mb: int = 10240
    gpus: int = 0
    allow_internet: bool = True
    network_mode: NetworkMode | None = None
    allowed_hosts: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    healthcheck: Healthcheck | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_sizes(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for old, new in (("memory", "memory_mb"), ("storage", "storage_mb")):
                value = data.pop(old, None)
                if value is not None:
                    data[new] = size_to_mb(value)
        return data

    @property
    def network(self) -> NetworkMode:
        """The effective network mode (``network_mode``, else from ``allow_internet``)."""
        if self.network_mode is not None:
            return self.network_mode
        if self.allowed_hosts:
            return "allowlist"
        return "public" if self.allow_internet else "no-network"


class TaskInfo(_Section):
    name: str | None = None
    description: str = ""
    keywords: list[str] = Field(default_factory=list)


class TaskConfig(_Section):
    """One ``task.toml``."""

    schema_version: str = "1.1"
    task: TaskInfo | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    verifier: VerifierSettings = Field(default_factory=VerifierSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    environment: EnvironmentSettings = Field(default_factory=EnvironmentSettings)
    solution: SolutionSettings = Field(default_factory=SolutionSettings)
    source: str | None = None
    unknown_keys: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _legacy_version(cls, data: Any) -> Any:
        if isinstance(data, dict) and "version" in data:
            data = dict(data)
            version = data.pop("version")
            data.setdefault("schema_version", str(version))
        return data


_KNOWN = {
    "": set(TaskConfig.model_fields) | {"version"},
    "task": set(TaskInfo.model_fields) | {"authors"},
    "verifier": set(VerifierSettings.model_fields),
    "agent": set(AgentSettings.model_fields),
    "environment": set(EnvironmentSettings.model_fields) | {"memory", "storage"},
    "solution": set(SolutionSettings.model_fields),
}


def parse_task_toml(text: str, *, origin: str = "task.toml") -> TaskConfig:
    """Parse ``task.toml`` text; a bad file is a one-line :class:`TasksetError`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TasksetError(f"{origin}: invalid TOML: {exc}") from None
    unknown = [k for k in data if k not in _KNOWN[""]]
    for section, known in _KNOWN.items():
        if section and isinstance(data.get(section), dict):
            unknown += [f"{section}.{k}" for k in data[section] if k not in known]
    try:
        return TaskConfig.model_validate({**data, "unknown_keys": tuple(sorted(unknown))})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise TasksetError(f"{origin}: {where}: {err['msg']}") from None
    except ValueError as exc:  # a legacy size string that does not parse
        raise TasksetError(f"{origin}: {exc}") from None


def read_task_toml(path: Path) -> TaskConfig:
    return parse_task_toml(path.read_text(), origin=str(path))


def size_to_mb(value: Any) -> int:
    """A legacy size (``"4G"``, ``"512M"``, ``"2048K"``, or a number of MB) in MB."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    text = str(value).strip().upper().removesuffix("B")
    units = {"G": 1024.0, "M": 1.0, "K": 1 / 1024}
    if text and text[-1] in units:
        try:
            number = float(text[:-1])
        except ValueError:
            number = math.nan
        if math.isfinite(number) and number >= 0:
            return int(number * units[text[-1]])
    raise ValueError(f"invalid size {value!r} (expected e.g. '4G' or '512M')")


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def resolve_env(values: Mapping[str, str], environ: Mapping[str, str] | None = None,
                *, origin: str = "env") -> dict[str, str]:
    """``${VAR}`` and ``${VAR:-default}`` in values, from the host environment.

    An unset ``${VAR}`` without a default is an error (the task needs it); ``:-``
    also uses the default when the variable is set but empty, as in a shell.
    """
    source = os.environ if environ is None else environ
    out: dict[str, str] = {}
    missing: list[str] = []

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = source.get(name)
        if default is not None:
            return value if value else default
        if value is None:
            missing.append(name)
            return ""
        return value

    for key, value in values.items():
        out[str(key)] = _VAR.sub(sub, str(value))
    if missing:
        raise TasksetError(f"{origin}: host environment variable(s) not set: "
                           f"{', '.join(sorted(set(missing)))}")
    return out
