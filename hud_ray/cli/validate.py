"""``hud-ray validate SOURCE``: check every task's grader before spending model calls.

* ``nop`` (an empty answer) must score 0.0 on every task;
* a task whose template has a ``@template.solution`` must score 1.0 with the ``oracle``;
  a task without one (every plain HUD file) is not broken for that: its oracle check
  is skipped and counted;
* a row carrying HUD's ``validation`` field is checked against it: each entry with an
  ``answer`` is graded in-process and must score its ``reward`` (default 1.0). Entries
  without an ``answer`` (HUD tool-call replays) cannot be replayed and are counted.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from hud_ray.cli._options import handle_errors
from hud_ray.engine import EvalConfig, run_eval_async
from hud_ray.sink import read_rollouts
from hud_ray.task import Task, Taskset, split_task_ids


async def validate(source: str, *, env_source: str | None = None,
                   task_ids: list[str] | None = None, address: str | None = None,
                   rollout_timeout: float | None = None,
                   workdir: str | None = None) -> dict[str, Any]:
    """Run the checks; return counts and the tasks that fail one.

    Run records go under ``workdir`` when given (and stay); otherwise into a
    temporary directory that is removed before returning.
    """
    from hud_ray.sandbox import load_environments

    taskset = Taskset.from_file(source, env_source=env_source)
    if task_ids:
        taskset = taskset.select(task_ids)
    envs = load_environments(taskset.sources)
    solvable = [t.slug for t in taskset if _has_solution(envs, t)]
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="hud-ray-validate-"))
    findings: dict[str, list[str]] = {}
    try:
        runs = [("nop", 0.0, [t.slug for t in taskset])]
        if solvable:
            runs.append(("oracle", 1.0, solvable))
        for agent, want, slugs in runs:
            config = EvalConfig(source=source, agent=agent, env_source=env_source,
                                task_ids=slugs, out=str(base / agent), address=address,
                                rollout_timeout=rollout_timeout, max_retries=1)
            result = await run_eval_async(config=config)
            for row in read_rollouts(result.out_dir).to_pylist():
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
        checked, unreplayable = await _check_validation_rows(taskset, envs, findings)
    finally:
        if workdir is None:
            shutil.rmtree(base, ignore_errors=True)
    return {"tasks": len(taskset), "broken": findings,
            "without_solution": len(taskset) - len(solvable),
            "validation_entries_checked": checked,
            "validation_entries_skipped": unreplayable,
            "out_dir": str(base) if workdir else None}


def _has_solution(envs: dict[str, Any], task: Task) -> bool:
    env = envs.get(task.env)
    template = env.templates.get(task.id) if env is not None else None
    return template is not None and template.solution_fn is not None


async def _check_validation_rows(taskset: Taskset, envs: dict[str, Any],
                                 findings: dict[str, list[str]]) -> tuple[int, int]:
    from hud_ray.errors import HudRayError
    from hud_ray.sandbox import Sandbox

    checked = skipped = 0
    rows = [t for t in taskset if t.validation]
    if not rows:
        return 0, 0
    sandbox = Sandbox(envs)
    try:
        for task in rows:
            for i, entry in enumerate(task.validation or []):
                if not isinstance(entry, dict) or "answer" not in entry:
                    skipped += 1
                    continue
                want = float(entry.get("reward", entry.get("expected", 1.0)))
                checked += 1
                try:
                    prompt = await sandbox.start(task)
                    got = (await sandbox.grade(prompt.session_id, entry["answer"])).reward
                except HudRayError as exc:
                    findings.setdefault(task.slug, []).append(
                        f"validation[{i}]: {exc.code}: {str(exc)[:160]}")
                    continue
                if got != want:
                    findings.setdefault(task.slug, []).append(
                        f"validation[{i}] scored {got} (expected {want})")
    finally:
        await sandbox.close()
    return checked, skipped


@click.command("validate")
@click.argument("source", type=click.Path())
@click.option("--env", "env_source", type=click.Path(),
              help="The .py defining the environment, for .json/.jsonl task rows.")
@click.option("--task-ids", "-t", multiple=True)
@click.option("--address")
@click.option("--rollout-timeout", type=float, default=300.0,
              show_default=True)
@click.option("--out", "workdir", type=click.Path(),
              help="Keep the validation runs' records here (default: a temporary "
                   "directory, removed afterwards).")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def validate_command(source: str, env_source: str | None, task_ids: tuple[str, ...],
                     address: str | None, rollout_timeout: float, workdir: str | None,
                     as_json: bool) -> None:
    """Check each task: nop must score 0.0; a task's solution (if any) 1.0; its
    ``validation`` answers (if any) their rewards."""
    ids = split_task_ids(task_ids)
    report = asyncio.run(validate(source, env_source=env_source, task_ids=ids, address=address,
                                  rollout_timeout=rollout_timeout, workdir=workdir))
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for slug, problems in sorted(report["broken"].items()):
            for p in problems:
                click.echo(f"BROKEN {slug}: {p}")
        ok = report["tasks"] - len(report["broken"])
        notes = []
        if report["without_solution"]:
            notes.append(f"{report['without_solution']} without a solution: oracle skipped")
        if report["validation_entries_checked"]:
            notes.append(f"{report['validation_entries_checked']} validation answers checked")
        if report["validation_entries_skipped"]:
            notes.append(f"{report['validation_entries_skipped']} validation entries without "
                         "an answer skipped")
        extra = f" ({'; '.join(notes)})" if notes else ""
        click.echo(f"{ok}/{report['tasks']} tasks valid{extra}")
    if report["broken"]:
        raise SystemExit(1)
