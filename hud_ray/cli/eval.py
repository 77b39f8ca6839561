"""``hud-ray eval SOURCE AGENT``: run an agent over a taskset on Ray."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from pydantic import ValidationError

from hud_ray.cli._options import config_option, handle_errors, one_line
from hud_ray.cli._render import ProgressLine, echo_err, render_summary
from hud_ray.engine import EvalConfig, run_eval_async
from hud_ray.errors import ConfigError, RecordError
from hud_ray.placement import check_request
from hud_ray.rundir import RunDir, is_uri, redact
from hud_ray.task import split_task_ids


def validation_message(exc: ValidationError) -> str:
    """One line for a pydantic error: ``field: message`` of the first problem."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or exc.title
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    msg = str(err["msg"]).removeprefix("Value error, ")
    got = "" if err["type"] == "value_error" else f" (got {err.get('input')!r})"
    return f"{loc}: {msg}{got}{more}"


def check_out_dir(path: str) -> None:
    """Fail early, in one line, if ``path`` cannot become a run directory (tried for real:
    create it and a probe file, then remove what was created). A URI gets a probe object
    written and deleted, which also checks the endpoint and the credentials."""
    if is_uri(path):
        run = RunDir.resolve(path)
        run.probe()  # first: a failed write says why (a HEAD request's error has no body)
        if run.is_file_here():
            raise RecordError(f"--out {run}: exists and is not a directory")
        return
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise RecordError(f"--out {path}: exists and is not a directory")
    created = []
    probe = target
    while not probe.exists():
        created.append(probe)
        probe = probe.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as exc:
        raise RecordError(f"--out {path}: not writable ({exc.strerror or exc})") from None
    finally:
        for d in created:
            with contextlib.suppress(OSError):
                d.rmdir()


def check_address(address: str | None) -> None:
    """``--address auto`` needs a running cluster: ask Ray's own lookup now, so the user
    gets one line instead of a trace from deep inside ``ray.init``."""
    if address != "auto":
        return
    from ray._private.services import get_ray_address_from_environment

    try:
        get_ray_address_from_environment("auto", None)
    except ConnectionError:
        raise ConfigError("--address auto: no running Ray cluster found (start one with "
                          "`ray start --head`, set RAY_ADDRESS, or omit --address to run "
                          "Ray in-process)") from None


@click.command("eval")
@click.argument("source", type=click.Path(), required=False)
@click.argument("agent", required=False)
@config_option
@click.option("--model", "-m", help="Model id for model harnesses. Env: HUD_RAY_MODEL.")
@click.option("--base-url", help="OpenAI-compatible (or provider) endpoint the harness calls. "
                                 "Env: HUD_RAY_BASE_URL.")
@click.option("--gateway/--no-gateway", default=False,
              help="Force model calls through the gateway. Env: HUD_RAY_GATEWAY.")
@click.option("--group-size", "-g", type=click.IntRange(min=1), default=1, show_default=True,
              help="Rollouts per task (a GRPO group). Env: HUD_RAY_GROUP_SIZE.")
@click.option("--max-concurrent", type=click.IntRange(min=1), default=64, show_default=True,
              help="Rollouts in flight at once. Env: HUD_RAY_MAX_CONCURRENT.")
@click.option("--task-ids", "-t", multiple=True,
              help="Only these task slugs or template ids (comma-separated, repeatable). "
                   "Env: HUD_RAY_TASK_IDS.")
@click.option("--env", "env_source", type=click.Path(),
              help="The .py defining the environment, for .json/.jsonl task rows. "
                   "Env: HUD_RAY_ENV.")
@click.option("--out", "-o", type=click.Path(),
              help="Run directory for Arrow rows (default runs/<run_id>): a path or a URI "
                   "(file://, s3://, gs://, ...). Env: HUD_RAY_OUT.")
@click.option("--resume", type=click.Path(),
              help="Continue the run in this directory (path or URI), skipping finished "
                   "rollouts. "
                   "Env: HUD_RAY_RESUME.")
@click.option("--address",
              help="Ray cluster address, or auto (default: start Ray in-process). "
                   "Env: HUD_RAY_ADDRESS.")
@click.option("--working-dir", type=click.Path(file_okay=False),
              help="Folder shipped to the cluster with --address (default: the tasks file's "
                   "folder). Env: HUD_RAY_WORKING_DIR.")
@click.option("--exclude", "excludes", multiple=True,
              help="Leave matching paths out of the shipped folder (gitignore syntax; "
                   "repeatable). Env: HUD_RAY_EXCLUDE.")
@click.option("--ship/--no-ship", default=None,
              help="Upload the folder to the cluster (default: on with --address). "
                   "Env: HUD_RAY_SHIP.")
@click.option("--policy-version", type=int,
              help="Policy version stamped on every row (for staleness filters). "
                   "Env: HUD_RAY_POLICY_VERSION.")
@click.option("--group-policy",
              help="How groups with invalid members become advantages: drop_group (default), "
                   "keep_partial:N, pad_masked. Env: HUD_RAY_GROUP_POLICY.")
@click.option("--max-retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Retries of a rollout after an infrastructure failure. "
                   "Env: HUD_RAY_MAX_RETRIES.")
@click.option("--rollout-timeout", type=click.FloatRange(min=0, min_open=True),
              help="Seconds per rollout, start to grade. Env: HUD_RAY_ROLLOUT_TIMEOUT.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Harness actors (default: min(4, CPUs)). Env: HUD_RAY_WORKERS.")
@click.option("--sandbox-resources", "sandbox_items", multiple=True, metavar="NAME=AMOUNT",
              help="Ray resources every sandbox actor requests, over the environment's "
                   "placement= key by key (CPU=0.5, memory=BYTES, sandbox=1; 0 drops a key; "
                   "repeatable or comma-separated). Env: HUD_RAY_SANDBOX_RESOURCES.")
@click.option("--harness-resources", "harness_items", multiple=True, metavar="NAME=AMOUNT",
              help="Ray resources every harness actor requests (same form). "
                   "Env: HUD_RAY_HARNESS_RESOURCES.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as JSON on stdout; no progress bar. Env: HUD_RAY_JSON.")
@handle_errors
def eval_command(source: str | None, agent: str | None, config_values: dict[str, Any],
                 model: str | None, base_url: str | None, gateway: bool, group_size: int,
                 max_concurrent: int, task_ids: tuple[str, ...], env_source: str | None,
                 out: str | None, resume: str | None, address: str | None,
                 working_dir: str | None, excludes: tuple[str, ...], ship: bool | None,
                 policy_version: int | None, group_policy: str | None,
                 max_retries: int,
                 rollout_timeout: float | None, workers: int | None,
                 sandbox_items: tuple[str, ...], harness_items: tuple[str, ...],
                 as_json: bool) -> None:
    """Run AGENT over the tasks in SOURCE (a tasks.py, a folder, or .json/.jsonl rows).

    ``--resume DIR`` alone continues that run with its stored settings."""
    ctx = click.get_current_context()
    defaults = ctx.default_map or {}
    agent = agent or defaults.get("agent")
    progress = None if as_json else ProgressLine()
    if resume:
        check_address(address)
        result = asyncio.run(run_eval_async(resume=resume, on_progress=progress,
                                            **_given(ctx, source, agent)))
        _finish(result, as_json)
        return
    if not source:
        raise ConfigError("missing SOURCE (a tasks.py, a folder, or .json/.jsonl rows)")
    if not agent:
        raise ConfigError("missing AGENT (e.g. oracle, nop, claude, openai, openai_compatible)")
    extra: dict[str, Any] = {k: v for k, v in defaults.items() if k in _EXTRA_KEYS}
    if group_policy:
        extra["group_policy"] = group_policy
    for name, items in (("sandbox_resources", sandbox_items),
                        ("harness_resources", harness_items)):
        if items:  # the option wins over the config file's key
            extra[name] = parse_resources(items, option=f"--{name.replace('_', '-')}")
    unknown = sorted(set(defaults) - set(_OPTION_KEYS) - _EXTRA_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) in config file: {', '.join(unknown)}")
    try:
        config = EvalConfig(
            source=source, agent=agent, model=model, base_url=base_url, gateway=gateway,
            agent_config=config_values, group_size=group_size, max_concurrent=max_concurrent,
            task_ids=split_task_ids(task_ids), env_source=env_source, out=out,
            resume=resume, address=address, max_retries=max_retries,
            working_dir=working_dir, excludes=list(excludes), ship=ship,
            policy_version=policy_version,
            rollout_timeout=rollout_timeout, workers=workers, **extra)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc)) from None
    if out and not resume:
        check_out_dir(out)
    check_address(address)
    try:
        result = asyncio.run(run_eval_async(config=config, on_progress=progress))
    except ConnectionError as exc:  # ray.init could not reach --address
        if address is None:
            raise
        raise ConfigError(f"--address {address}: {one_line(str(exc))}") from None
    _finish(result, as_json)


def parse_resources(items: tuple[str, ...] | list[str], *, option: str) -> dict[str, float]:
    """``("sandbox=1", "CPU=0.5,memory=1073741824")`` -> a checked resource request."""
    request: dict[str, float] = {}
    for item in items:
        for part in re.split(r"[,\s]+", str(item)):
            if not part:
                continue
            name, sep, amount = part.partition("=")
            if not sep or not name.strip():
                raise ConfigError(f"{option} {part.strip()!r}: expected NAME=AMOUNT "
                                  "(e.g. sandbox=1, CPU=0.5)")
            try:
                request[name.strip()] = float(amount)
            except ValueError:
                raise ConfigError(f"{option} {part.strip()!r}: {amount.strip()!r} is not a "
                                  "number (memory is in bytes)") from None
    return check_request(request, what=option)


def _finish(result: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.summary, indent=2, default=str))
    else:
        click.echo(render_summary(result.summary))
    if result.all_failed:
        echo_err(f"every rollout failed (rows in {redact(str(result.out_dir))})")
        sys.exit(1)


def _given(ctx: click.Context, source: str | None, agent: str | None) -> dict[str, Any]:
    """The options the user actually gave (not built-in defaults), as run_eval keywords."""
    given: dict[str, Any] = {"source": source, "agent": agent}
    for name, value in ctx.params.items():
        if name in ("source", "agent", "as_json", "resume"):
            continue
        if ctx.get_parameter_source(name) in (None, ParameterSource.DEFAULT):
            continue
        if name == "config_values":
            given["agent_config"] = value
        elif name == "task_ids":
            given["task_ids"] = split_task_ids(value)
        elif name in _RESOURCE_ITEMS:
            continue  # below: they override the config file's keys
        else:
            given[name] = value
    given.update({k: v for k, v in (ctx.default_map or {}).items() if k in _EXTRA_KEYS})
    for dest, name in _RESOURCE_ITEMS.items():
        if ctx.params.get(dest):
            given[name] = parse_resources(ctx.params[dest],
                                          option=f"--{name.replace('_', '-')}")
    return {k: v for k, v in given.items() if v is not None}


_OPTION_KEYS = ("agent", "model", "base_url", "gateway", "group_size", "max_concurrent",
                "task_ids", "env_source", "out", "resume", "address", "max_retries",
                "working_dir", "excludes", "ship", "policy_version", "group_policy",
                "rollout_timeout", "workers", "sandbox_items", "harness_items", "as_json",
                "config_values")
_RESOURCE_ITEMS = {"sandbox_items": "sandbox_resources", "harness_items": "harness_resources"}
#: config-file keys with no option of their own (the resource requests have one too)
_EXTRA_KEYS = {"colocate", "batch_size", "sessions_per_sandbox", "sandbox_resources",
               "harness_resources", "placement_timeout", "pass_threshold"}
