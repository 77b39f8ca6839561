"""Sweeps: agents x tasksets x group sizes x seeds, one run directory per cell.

A sweep directory holds ``sweep.json`` (the expanded plan), one run directory per cell
(``<agent>__<taskset>__g<G>__s<seed>``), and once every cell is done ``_summary.json``,
``summary.csv`` and ``reward.svg`` (mean reward per cell). Running the same sweep again
skips finished cells (their run directory has a summary), resumes a cell that was
interrupted (``--resume`` semantics: same config, same tasks) and starts the others.
The seed reaches the harness as the agent setting ``seed``. The sweep directory may be a
URI (``s3://bucket/sweeps/x?...``), like a run directory.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hud_ray.engine.config import EvalConfig
from hud_ray.errors import ConfigError
from hud_ray.rundir import RunDir, storage_errors
from hud_ray.sink import MANIFEST, SUMMARY, read_summary

log = logging.getLogger(__name__)

PLAN = "sweep.json"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class AgentEntry(BaseModel):
    """One agent of the sweep: a harness name plus model/endpoint/settings."""

    model_config = ConfigDict(extra="forbid")

    name: str
    label: str | None = None
    model: str | None = None
    base_url: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)

    @property
    def slug(self) -> str:
        return _slug(self.label or "-".join(x for x in (self.name, self.model) if x))


class TasksetEntry(BaseModel):
    """One taskset of the sweep: a source (tasks.py, folder, rows) and its options."""

    model_config = ConfigDict(extra="forbid")

    source: str
    label: str | None = None
    env: str | None = None
    task_ids: list[str] | None = None

    @property
    def slug(self) -> str:
        return _slug(self.label or Path(self.source).stem)


class SweepConfig(BaseModel):
    """The sweep file (``configs/sweep.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    out: str | None = None
    agents: list[AgentEntry] = Field(min_length=1)
    tasksets: list[TasksetEntry] = Field(min_length=1)
    group_sizes: list[int] = Field(default_factory=lambda: [1], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    eval: dict[str, Any] = Field(default_factory=dict)

    @field_validator("agents", mode="before")
    @classmethod
    def _agent_names(cls, value: Any) -> Any:
        return [{"name": v} if isinstance(v, str) else v for v in value or []]

    @field_validator("tasksets", mode="before")
    @classmethod
    def _taskset_paths(cls, value: Any) -> Any:
        return [{"source": v} if isinstance(v, str) else v for v in value or []]

    @field_validator("group_sizes")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(g < 1 for g in value):
            raise ValueError("group sizes must be >= 1")
        return value

    @classmethod
    def load(cls, path: str | Path) -> SweepConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such sweep file")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping (agents, tasksets, ...)")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{path}: {where}: {err['msg']}") from None


@dataclass(frozen=True)
class Cell:
    """One run of the sweep."""

    id: str
    agent: AgentEntry
    taskset: TasksetEntry
    group_size: int
    seed: int

    def config(self, out: Path | str, base: dict[str, Any]) -> EvalConfig:
        agent_config = {**base.get("agent_config", {}), **self.agent.config, "seed": self.seed}
        fields = {k: v for k, v in base.items() if k != "agent_config"}
        try:
            return EvalConfig(**{
                **fields, "source": self.taskset.source, "env_source": self.taskset.env,
                "task_ids": self.taskset.task_ids, "agent": self.agent.name,
                "model": self.agent.model, "base_url": self.agent.base_url,
                "agent_config": agent_config, "group_size": self.group_size,
                "out": str(out), "resume": None})
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(f"sweep eval option {'.'.join(map(str, err['loc']))}: "
                              f"{err['msg']}") from None


def cells(config: SweepConfig) -> list[Cell]:
    """Every combination, in a stable order; duplicate ids are an error."""
    out: list[Cell] = []
    for agent in config.agents:
        for ts in config.tasksets:
            for g in config.group_sizes:
                for seed in config.seeds:
                    cid = f"{agent.slug}__{ts.slug}__g{g}__s{seed}"
                    out.append(Cell(cid, agent, ts, g, seed))
    ids = [c.id for c in out]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ConfigError(f"sweep cells share a name ({', '.join(dupes)}): give agents or "
                          "tasksets distinct labels")
    return out


def cell_state(directory: Path | str | RunDir) -> str:
    """``done`` (has a summary), ``partial`` (started, unfinished) or ``new``."""
    names = RunDir.resolve(directory).names()
    if SUMMARY in names:
        return "done"
    if MANIFEST in names:
        return "partial"
    return "new"


async def run_sweep(config: SweepConfig, out: str | Path | RunDir, *,
                    on_cell: Callable[[Cell, str], None] | None = None,
                    address: str | None = None) -> list[dict[str, Any]]:
    """Run (or continue) every cell; return the combined summary rows."""
    from hud_ray.engine import run_eval_async

    root = RunDir.resolve(out)
    plan = cells(config)
    base = dict(config.eval)
    if address is not None:
        base["address"] = address
    _write_plan(root, config, plan)
    for cell in plan:
        directory = root.child(cell.id)
        state = cell_state(directory)
        if on_cell:
            on_cell(cell, state)
        if state == "done":
            continue
        cfg = cell.config(directory.location, base)
        if state == "partial":
            cfg = cfg.model_copy(update={"out": None, "resume": directory.location})
        await run_eval_async(config=cfg)
        if on_cell:
            on_cell(cell, "finished")
    rows = combined(root, plan)
    write_reports(root, rows)
    return rows


def _write_plan(root: RunDir, config: SweepConfig, plan: list[Cell]) -> None:
    with storage_errors(f"{root}: cannot create the sweep directory"):
        root.mkdir()
    body = {"sweep": config.model_dump(mode="json"), "cells": [c.id for c in plan]}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    old = root.read_bytes(PLAN)
    if old is not None and json.loads(old).get("digest") != digest:
        log.warning("%s: the sweep file changed since this sweep started; finished cells "
                    "are kept, cells whose config changed will refuse to resume", root)
    _write(root, PLAN, json.dumps({**body, "digest": digest}, indent=2))


def combined(root: Path | str | RunDir, plan: list[Cell]) -> list[dict[str, Any]]:
    base = RunDir.resolve(root)
    rows = []
    for cell in plan:
        directory = base.child(cell.id)
        summary = read_summary(directory) or {}
        g = cell.group_size
        rows.append({
            "cell": cell.id, "agent": cell.agent.slug, "taskset": cell.taskset.slug,
            "group_size": g, "seed": cell.seed, "rollouts": summary.get("rollouts"),
            "mean_reward": summary.get("mean_reward"), f"pass@{g}": summary.get(f"pass@{g}"),
            "pass@1": summary.get("pass@1"), "errors": summary.get("errors"),
            "run_dir": str(directory)})
    return rows


def write_reports(root: Path | str | RunDir, rows: list[dict[str, Any]]) -> None:
    base = RunDir.resolve(root)
    _write(base, SUMMARY, json.dumps(rows, indent=2, default=str))
    keys = ["cell", "agent", "taskset", "group_size", "seed", "rollouts", "mean_reward",
            "pass@k", "pass@1", "errors", "run_dir"]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=keys)
    writer.writeheader()
    for r in rows:
        writer.writerow({**{k: r.get(k) for k in keys},
                         "pass@k": r.get(f"pass@{r['group_size']}")})
    _write(base, "summary.csv", text.getvalue())
    _write(base, "reward.svg", reward_svg(rows))


def _write(root: RunDir, name: str, text: str) -> None:
    with storage_errors(f"{root.where(name)}: write failed"):
        root.write_bytes(name, text.encode())


def table(rows: list[dict[str, Any]]) -> str:
    """The combined summary as a fixed-width text table."""
    head = ["agent", "taskset", "G", "seed", "rollouts", "reward", "pass@G", "pass@1", "errors"]
    body = [[r["agent"], r["taskset"], str(r["group_size"]), str(r["seed"]),
             str(r["rollouts"]), _num(r["mean_reward"]), _num(r.get(f"pass@{r['group_size']}")),
             _num(r["pass@1"]), str(r["errors"])] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=False)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True))
             for line in [head, *body]]
    return "\n".join(lines)


def reward_svg(rows: list[dict[str, Any]]) -> str:
    """A horizontal bar per cell: its mean reward on a 0..1 axis."""
    bar_h, gap, label_w, plot_w = 18, 6, 360, 300
    height = len(rows) * (bar_h + gap) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 60}" '
             f'height="{height}" font-family="monospace" font-size="12">',
             '<text x="4" y="14">mean reward per cell (0 to 1)</text>']
    for i, r in enumerate(rows):
        y = 24 + i * (bar_h + gap)
        reward = r["mean_reward"] if isinstance(r["mean_reward"], int | float) else 0.0
        width = max(0.0, min(1.0, float(reward))) * plot_w
        parts.append(f'<text x="4" y="{y + 13}">{html.escape(r["cell"])}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{width:.1f}" height="{bar_h}" '
                     'fill="#4a7bd0"/>')
        parts.append(f'<text x="{label_w + width + 4:.1f}" y="{y + 13}">'
                     f'{_num(r["mean_reward"])}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _slug(text: str) -> str:
    return _SAFE.sub("-", text).strip("-") or "x"
