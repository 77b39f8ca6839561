"""``hud-ray eval SOURCE AGENT``: run an agent over a taskset on Ray."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from hud_ray.cli._options import config_option, handle_errors
from hud_ray.cli._render import ProgressLine, render_summary
from hud_ray.engine import EvalConfig, run_eval_async
from hud_ray.errors import ConfigError


def _split_ids(values: tuple[str, ...]) -> list[str] | None:
    ids = [v.strip() for value in values for v in value.split(",") if v.strip()]
    return ids or None


@click.command("eval")
@click.argument("source", type=click.Path())
@click.argument("agent", required=False)
@config_option
@click.option("--model", "-m", envvar="HUD_RAY_MODEL", help="Model id for model harnesses.")
@click.option("--base-url", envvar="HUD_RAY_BASE_URL",
              help="OpenAI-compatible (or provider) endpoint the harness calls.")
@click.option("--gateway/--no-gateway", default=False, envvar="HUD_RAY_GATEWAY",
              help="Force model calls through the gateway.")
@click.option("--group-size", "-g", type=click.IntRange(min=1), default=1,
              envvar="HUD_RAY_GROUP_SIZE", show_default=True,
              help="Rollouts per task (a GRPO group).")
@click.option("--max-concurrent", type=click.IntRange(min=1), default=64,
              envvar="HUD_RAY_MAX_CONCURRENT", show_default=True,
              help="Rollouts in flight at once.")
@click.option("--task-ids", "-t", multiple=True, envvar="HUD_RAY_TASK_IDS",
              help="Only these task slugs or template ids (comma-separated, repeatable).")
@click.option("--env", "env_source", type=click.Path(), envvar="HUD_RAY_ENV",
              help="The .py defining the environment, for .json/.jsonl task rows.")
@click.option("--out", "-o", type=click.Path(), envvar="HUD_RAY_OUT",
              help="Run directory for Arrow rows (default runs/<run_id>).")
@click.option("--resume", type=click.Path(), envvar="HUD_RAY_RESUME",
              help="Continue the run in this directory, skipping finished rollouts.")
@click.option("--address", envvar="HUD_RAY_ADDRESS",
              help="Ray cluster address (default: start Ray in-process).")
@click.option("--working-dir", type=click.Path(file_okay=False), envvar="HUD_RAY_WORKING_DIR",
              help="Folder shipped to the cluster with --address (default: the tasks "
                   "file's folder).")
@click.option("--exclude", "excludes", multiple=True, envvar="HUD_RAY_EXCLUDE",
              help="Leave matching paths out of the shipped folder (gitignore syntax; "
                   "repeatable).")
@click.option("--ship/--no-ship", default=None, envvar="HUD_RAY_SHIP",
              help="Upload the folder to the cluster (default: on with --address).")
@click.option("--max-retries", type=click.IntRange(min=0), default=2,
              envvar="HUD_RAY_MAX_RETRIES", show_default=True,
              help="Retries of a rollout after an infrastructure failure.")
@click.option("--rollout-timeout", type=click.FloatRange(min=0, min_open=True),
              envvar="HUD_RAY_ROLLOUT_TIMEOUT", help="Seconds per rollout, start to grade.")
@click.option("--workers", type=click.IntRange(min=1), envvar="HUD_RAY_WORKERS",
              help="Harness actors (default: min(4, CPUs)).")
@click.option("--json", "as_json", is_flag=True, envvar="HUD_RAY_JSON",
              help="Print the summary as JSON on stdout; no progress bar.")
@handle_errors
def eval_command(source: str, agent: str | None, config_values: dict[str, Any],
                 model: str | None, base_url: str | None, gateway: bool, group_size: int,
                 max_concurrent: int, task_ids: tuple[str, ...], env_source: str | None,
                 out: str | None, resume: str | None, address: str | None,
                 working_dir: str | None, excludes: tuple[str, ...], ship: bool | None,
                 max_retries: int,
                 rollout_timeout: float | None, workers: int | None, as_json: bool) -> None:
    """Run AGENT over the tasks in SOURCE (a tasks.py, a folder, or .json/.jsonl rows)."""
    ctx = click.get_current_context()
    defaults = ctx.default_map or {}
    agent = agent or defaults.get("agent")
    if not agent:
        raise ConfigError("missing AGENT (e.g. oracle, nop, claude, openai, openai_compatible)")
    extra = {k: v for k, v in defaults.items() if k in _EXTRA_KEYS}
    unknown = sorted(set(defaults) - set(_OPTION_KEYS) - _EXTRA_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) in config file: {', '.join(unknown)}")
    if isinstance(task_ids, str):
        task_ids = (task_ids,)
    try:
        config = EvalConfig(
            source=source, agent=agent, model=model, base_url=base_url, gateway=gateway,
            agent_config=config_values, group_size=group_size, max_concurrent=max_concurrent,
            task_ids=_split_ids(tuple(task_ids)), env_source=env_source, out=out,
            resume=resume, address=address, max_retries=max_retries,
            working_dir=working_dir, excludes=list(excludes), ship=ship,
            rollout_timeout=rollout_timeout, workers=workers, **extra)
    except ValueError as exc:
        raise ConfigError(str(exc).splitlines()[0] + ": " + str(exc).splitlines()[-1]) from None
    progress = None if as_json else ProgressLine()
    result = asyncio.run(run_eval_async(config=config, on_progress=progress))
    if as_json:
        click.echo(json.dumps(result.summary, indent=2, default=str))
    else:
        click.echo(render_summary(result.summary))


_OPTION_KEYS = ("agent", "model", "base_url", "gateway", "group_size", "max_concurrent",
                "task_ids", "env_source", "out", "resume", "address", "max_retries",
                "working_dir", "excludes", "ship",
                "rollout_timeout", "workers", "as_json")
_EXTRA_KEYS = {"colocate", "batch_size", "sessions_per_sandbox", "sandbox_resources",
               "harness_resources", "pass_threshold"}
