"""``hud-ray validate SOURCE``: every task's oracle must score 1.0 and nop 0.0."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import click

from hud_ray.cli._options import handle_errors
from hud_ray.engine import EvalConfig, run_eval_async
from hud_ray.sink import read_rollouts


async def validate(source: str, *, env_source: str | None = None,
                   task_ids: list[str] | None = None, address: str | None = None,
                   rollout_timeout: float | None = None,
                   workdir: str | None = None) -> dict[str, Any]:
    """Run ``oracle`` and ``nop`` once per task; return the tasks that fail the check."""
    base = Path(workdir or tempfile.mkdtemp(prefix="hud-ray-validate-"))
    findings: dict[str, list[str]] = {}
    results = {}
    for agent, want in (("oracle", 1.0), ("nop", 0.0)):
        config = EvalConfig(source=source, agent=agent, env_source=env_source,
                            task_ids=task_ids, out=str(base / agent), address=address,
                            rollout_timeout=rollout_timeout, max_retries=1)
        result = await run_eval_async(config=config)
        results[agent] = result
        table = read_rollouts(result.out_dir).to_pylist()
        for row in table:
            if not row["final"]:
                continue
            if row["status"] != "ok":
                problem = f"{agent}: {row['status']} ({row['error_type']}): " \
                          f"{(row['error_message'] or '')[:160]}"
            elif row["reward"] != want:
                problem = f"{agent} scored {row['reward']} (expected {want})"
            else:
                continue
            findings.setdefault(row["slug"], []).append(problem)
    tasks = results["oracle"].summary["rollouts"]
    return {"tasks": tasks, "broken": findings, "out_dir": str(base)}


@click.command("validate")
@click.argument("source", type=click.Path())
@click.option("--env", "env_source", type=click.Path(), envvar="HUD_RAY_ENV",
              help="The .py defining the environment, for .json/.jsonl task rows.")
@click.option("--task-ids", "-t", multiple=True, envvar="HUD_RAY_TASK_IDS")
@click.option("--address", envvar="HUD_RAY_ADDRESS")
@click.option("--rollout-timeout", type=float, envvar="HUD_RAY_ROLLOUT_TIMEOUT", default=300.0,
              show_default=True)
@click.option("--json", "as_json", is_flag=True, envvar="HUD_RAY_JSON")
@handle_errors
def validate_command(source: str, env_source: str | None, task_ids: tuple[str, ...],
                     address: str | None, rollout_timeout: float, as_json: bool) -> None:
    """Check each task: the oracle solution must score 1.0, the nop agent 0.0."""
    ids = [i for v in task_ids for i in v.split(",") if i] or None
    report = asyncio.run(validate(source, env_source=env_source, task_ids=ids, address=address,
                                  rollout_timeout=rollout_timeout))
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for slug, problems in sorted(report["broken"].items()):
            for p in problems:
                click.echo(f"BROKEN {slug}: {p}")
        ok = report["tasks"] - len(report["broken"])
        click.echo(f"{ok}/{report['tasks']} tasks valid (oracle 1.0, nop 0.0)")
    if report["broken"]:
        raise SystemExit(1)
