"""The run configuration: what ``hud-ray eval`` and ``run_eval`` accept."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hud_ray.data.policy import GroupPolicy
from hud_ray.errors import ConfigError
from hud_ray.placement import check_request
from hud_ray.types import AgentConfig, AgentSpec


class EvalConfig(BaseModel):
    """Everything that defines a run. Fields in :data:`RESUME_FIELDS` must match to resume."""

    model_config = ConfigDict(extra="forbid")

    source: str
    agent: str = "oracle"
    model: str | None = None
    base_url: str | None = None
    gateway: bool = False
    agent_config: dict[str, Any] = Field(default_factory=dict)
    group_size: int = Field(default=1, ge=1)
    max_concurrent: int = Field(default=64, ge=1)
    task_ids: list[str] | None = None
    env_source: str | None = None
    out: str | None = None
    resume: str | None = None
    address: str | None = None
    max_retries: int = Field(default=2, ge=0)
    rollout_timeout: float | None = Field(default=None, gt=0)
    workers: int | None = Field(default=None, ge=1)
    colocate: bool = True
    sessions_per_sandbox: int = Field(default=8, ge=1)
    batch_size: int = Field(default=128, ge=1)
    sandbox_resources: dict[str, float] = Field(default_factory=dict)
    harness_resources: dict[str, float] = Field(default_factory=dict)
    placement_timeout: float = Field(default=300.0, gt=0)  # s until an unplaced actor fails
    pass_threshold: float = 1.0
    ship: bool | None = None  # upload working_dir to the cluster (default: when address set)
    working_dir: str | None = None  # what to upload (default: the tasks file's folder)
    excludes: list[str] = Field(default_factory=list)  # gitignore-style paths left out

    @field_validator("sandbox_resources", "harness_resources", mode="before")
    @classmethod
    def _resources(cls, value: Any, info: Any) -> dict[str, float]:
        """CPU/GPU/memory/custom amounts, canonical keys (``num_cpus`` -> ``CPU``)."""
        try:
            return check_request(value, what=info.field_name)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("agent_config")
    @classmethod
    def _agent_config_valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Bad agent settings (``-c max_steps=0``) fail here, before anything starts."""
        try:
            AgentConfig.model_validate(value)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ValueError(f"{where}: {err['msg']} (got {err.get('input')!r})") from None
        return value
    # training metadata stamped on every row, and how groups become advantages
    policy_version: int | None = None
    tokenizer: str | None = None
    renderer: str | None = None
    logprobs_mode: Literal["raw", "processed"] = "raw"
    group_policy: GroupPolicy = Field(default_factory=GroupPolicy)

    @field_validator("group_policy", mode="before")
    @classmethod
    def _group_policy(cls, value: Any) -> GroupPolicy:
        return GroupPolicy.parse(value)

    def agent_spec(self) -> AgentSpec:
        return AgentSpec(name=self.agent, model=self.model, base_url=self.base_url,
                         gateway=self.gateway,
                         config=AgentConfig.model_validate(self.agent_config))

    def resume_view(self) -> dict[str, Any]:
        """The part of the config a resumed run must share with the original."""
        return {k: getattr(self, k) for k in RESUME_FIELDS}

    def digest(self) -> str:
        blob = json.dumps(self.resume_view(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


RESUME_FIELDS: tuple[str, ...] = ("agent", "model", "base_url", "agent_config", "group_size",
                                  "task_ids", "pass_threshold")
