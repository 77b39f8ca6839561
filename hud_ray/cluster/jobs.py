"""Ray Jobs: send a whole ``hud-ray eval`` to a cluster, with its files shipped.

:func:`prepare_eval_job` turns the eval arguments a user would type locally into an
entrypoint that works on the head node: the tasks file, ``--env`` source and config
files become paths inside the shipped ``working_dir``; ``--out``/``--resume`` are paths
on the cluster (default ``~/hud-ray-runs/<job id>`` on the head).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from hud_ray.engine.shipping import Shipment, plan_shipment
from hud_ray.errors import ConfigError, HudRayError
from hud_ray.rundir import is_uri, join_uri

DEFAULT_DASHBOARD = "http://127.0.0.1:8265"
DEFAULT_RUNS_DIR = "~/hud-ray-runs"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")

# eval options whose value is a local path that must travel with the job
_SHIPPED_PATH_OPTS = {"--env", "--config", "-c"}
# eval options that only make sense on the submitting machine
_DROPPED_OPTS = {"--address", "--working-dir", "--exclude", "--ship", "--no-ship"}


@dataclass(frozen=True)
class EvalJob:
    """An eval ready to submit: entrypoint, runtime_env, and where its rows go."""

    submission_id: str
    entrypoint: str
    runtime_env: dict[str, Any]
    out: str
    shipment: Shipment
    metadata: dict[str, str] = field(default_factory=dict)


def _eval_option_arity() -> dict[str, bool]:
    """Every option string of ``hud-ray eval`` -> whether it takes a value."""
    from hud_ray.cli.eval import eval_command

    arity: dict[str, bool] = {}
    for param in eval_command.params:
        if isinstance(param, click.Option):
            for opt in (*param.opts, *param.secondary_opts):
                arity[opt] = not (param.is_flag or param.count)
    arity["--help"] = arity["-h"] = False
    return arity


def prepare_eval_job(args: list[str], *, working_dir: str | None = None,
                     excludes: list[str] | None = None, python: str = "python",
                     runs_dir: str = DEFAULT_RUNS_DIR, submission_id: str | None = None,
                     env_vars: dict[str, str] | None = None,
                     metadata: dict[str, str] | None = None) -> EvalJob:
    """Rewrite ``eval SOURCE AGENT [options]`` for the cluster and plan what to ship."""
    if not args or args[0] != "eval":
        raise ConfigError("submit runs an eval: hud-ray submit [options] -- eval SOURCE AGENT "
                          "[eval options]")
    arity = _eval_option_arity()
    tokens = list(args[1:])
    # First pass: find the positional source and the path-valued options.
    positional: list[int] = []
    values: dict[str, list[int]] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "--":
            positional.extend(range(i + 1, len(tokens)))
            break
        if tok.startswith("-") and tok != "-":
            name, eq, _ = tok.partition("=")
            if name not in arity:
                raise ConfigError(f"eval: no such option {name}")
            if arity[name] and not eq:
                if i + 1 >= len(tokens):
                    raise ConfigError(f"eval: option {name} needs a value")
                values.setdefault(name, []).append(i + 1)
                i += 2
                continue
            if arity[name]:
                values.setdefault(name, []).append(i)
            i += 1
            continue
        positional.append(i)
        i += 1
    if not positional:
        raise ConfigError("eval: missing SOURCE (a tasks.py, folder, or .jsonl rows)")
    source = tokens[positional[0]]
    env_source = _value(tokens, values.get("--env", [])[-1:])
    if working_dir is None and "--working-dir" in values:
        working_dir = _value(tokens, values["--working-dir"][-1:])
    excludes = [*(excludes or []), *(_value(tokens, [j]) or "" for j in values.get("--exclude",
                                                                              []))]
    if not Path(source).exists():
        raise ConfigError(f"{source}: no such file or directory")
    shipment = plan_shipment(source=source, env_source=env_source, address="job",
                             working_dir=working_dir, excludes=excludes, ship=True)
    assert shipment is not None
    sid = submission_id or f"hudray-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"

    def inside(path: str, what: str) -> str:
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(shipment.root):
            raise ConfigError(f"{what} {path} is outside the shipped folder {shipment.root}; "
                              "move it there or pass --working-dir covering it")
        return resolved.relative_to(shipment.root).as_posix() or "."

    out_tokens: list[str] = []
    out_dir: str | None = None
    drop_next = False
    for j, tok in enumerate(tokens):
        if drop_next:
            drop_next = False
            continue
        name, eq, val = tok.partition("=") if tok.startswith("-") else (tok, "", "")
        if tok.startswith("-") and name in _DROPPED_OPTS:
            drop_next = bool(arity.get(name)) and not eq
            continue
        if j == positional[0]:
            out_tokens.append(inside(tok, "SOURCE"))
            continue
        opt = tokens[j - 1] if j > 0 else ""
        if j in values.get(opt, []) and opt in _SHIPPED_PATH_OPTS:
            out_tokens.append(_ship_value(opt, tok, inside))
            continue
        if tok.startswith("-") and eq and name in _SHIPPED_PATH_OPTS:
            out_tokens.append(f"{name}={_ship_value(name, val, inside)}")
            continue
        if j in values.get(opt, []) and opt in ("--out", "-o", "--resume"):
            out_dir = tok
        elif tok.startswith("-") and eq and name in ("--out", "-o", "--resume"):
            out_dir = val
        out_tokens.append(tok)
    if out_dir is None:
        out_dir = join_uri(runs_dir, sid) if is_uri(runs_dir) else f"{runs_dir.rstrip('/')}/{sid}"
        out_tokens += ["--out", out_dir]
    entry = f"{python} -m hud_ray.cli eval {_join(out_tokens)}"
    runtime_env: dict[str, Any] = dict(shipment.runtime_env or {})
    if env_vars:
        runtime_env["env_vars"] = dict(env_vars)
    meta = {"hud_ray": "eval", "out": out_dir, **(metadata or {})}
    return EvalJob(submission_id=sid, entrypoint=entry, runtime_env=runtime_env, out=out_dir,
                   shipment=shipment, metadata=meta)


def _value(tokens: list[str], idx: list[int]) -> str | None:
    if not idx:
        return None
    tok = tokens[idx[0]]
    return tok.partition("=")[2] if tok.startswith("--") and "=" in tok else tok


def _ship_value(opt: str, value: str, inside: Callable[[str, str], str]) -> str:
    if opt in ("--config", "-c") and not Path(value).is_file():
        return value  # an agent key=value setting, not a file
    return inside(value, opt)


def _join(tokens: list[str]) -> str:
    """Shell-quote, but keep a leading ``~/`` expandable on the head."""
    parts = []
    for tok in tokens:
        if tok.startswith("~/"):
            parts.append("~/" + shlex.quote(tok[2:]))
        else:
            parts.append(shlex.quote(tok))
    return " ".join(parts)


# ---- the Jobs API ------------------------------------------------------------------------
def job_client(address: str | None) -> Any:
    """A JobSubmissionClient for the dashboard at ``address`` (default: the env or local)."""
    from ray.job_submission import JobSubmissionClient

    address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or DEFAULT_DASHBOARD
    if "://" not in address:
        address = f"http://{address}"
    # RAY_ADDRESS=http://... would silently override an explicit address; this one wins.
    os.environ["RAY_API_SERVER_ADDRESS"] = address
    try:
        return JobSubmissionClient(address)
    except Exception as exc:
        raise ConfigError(f"cannot reach the Ray dashboard at {address}: "
                          f"{_one_line(exc)}") from None


def submit(client: Any, job: EvalJob, *, entrypoint_num_cpus: float | None = None,
           retry_s: float = 60.0) -> str:
    """Submit, retrying the head's transient "No available agent" for up to ``retry_s``."""
    deadline = time.monotonic() + retry_s
    kwargs: dict[str, Any] = {}
    if entrypoint_num_cpus is not None:
        kwargs["entrypoint_num_cpus"] = entrypoint_num_cpus
    while True:
        try:
            return str(client.submit_job(entrypoint=job.entrypoint, runtime_env=job.runtime_env,
                                         submission_id=job.submission_id,
                                         metadata=job.metadata, **kwargs))
        except Exception as exc:
            if "No available agent" in str(exc) and time.monotonic() < deadline:
                time.sleep(1.0)
                continue
            raise HudRayError(f"job submission failed: {_one_line(exc)}",
                              code="job_submit_failed") from None


def follow(client: Any, job_id: str, write: Callable[[str], None]) -> str:
    """Stream a job's logs until it ends; return its final status."""

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            write(chunk)

    try:
        asyncio.run(tail())
        return wait(client, job_id)
    except (KeyboardInterrupt, HudRayError):
        raise
    except Exception as exc:  # the dashboard went away, an unknown job id, ...
        raise HudRayError(f"following job {job_id}: {_one_line(exc)}",
                          code="job_api_error") from None


def wait(client: Any, job_id: str, timeout: float | None = None) -> str:
    """Poll until the job ends (or ``timeout``); return its status."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = str(client.get_job_status(job_id).value)
        if status in TERMINAL:
            return status
        if deadline is not None and time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]
