"""``hud-ray submit [options] -- eval ...``: the whole eval as a Ray Job."""

from __future__ import annotations

import sys

import click

from hud_ray.cli._options import handle_errors
from hud_ray.cluster import jobs
from hud_ray.errors import ConfigError, HudRayError


def _pairs(values: tuple[str, ...], what: str, *, from_env: bool = False) -> dict[str, str]:
    import os

    out: dict[str, str] = {}
    for value in values:
        key, eq, val = value.partition("=")
        if not key:
            raise ConfigError(f"{what}: expected KEY=VALUE, got {value!r}")
        if not eq:
            if not from_env or key not in os.environ:
                raise ConfigError(f"{what} {key}: give KEY=VALUE (or set {key} locally)")
            val = os.environ[key]
        out[key] = val
    return out


@click.command("submit", context_settings={"ignore_unknown_options": True})
@click.option("--address",
              help="The cluster's dashboard, http://HEAD:8265 (default: "
                   "$RAY_API_SERVER_ADDRESS or http://127.0.0.1:8265).")
@click.option("--follow", "-f", is_flag=True, help="Stream the job's logs until it ends.")
@click.option("--submission-id", help="Job id (default: hudray-<time>-<random>).")
@click.option("--working-dir", type=click.Path(file_okay=False),
              help="Folder shipped with the job (default: the tasks file's folder).")
@click.option("--exclude", "excludes", multiple=True,
              help="Leave matching paths out of the shipped folder (gitignore syntax).")
@click.option("--runs-dir", default=jobs.DEFAULT_RUNS_DIR,
              show_default=True,
              help="Where the run directory goes on the cluster when eval has no --out "
                   "(a path on the head node or a shared filesystem).")
@click.option("--python", "python", default="python", show_default=True,
              help="Interpreter on the head node that has hud-ray installed.")
@click.option("--env-var", "env_vars", multiple=True,
              help="KEY=VALUE (or KEY, taken from here) set for the job; repeatable.")
@click.option("--metadata", multiple=True, help="KEY=VALUE job metadata; repeatable.")
@click.option("--entrypoint-num-cpus", type=float, help="CPUs reserved for the job's driver.")
@click.argument("eval_args", nargs=-1, type=click.UNPROCESSED)
@handle_errors
def submit_command(address: str | None, follow: bool, submission_id: str | None,
                   working_dir: str | None, excludes: tuple[str, ...], runs_dir: str,
                   python: str, env_vars: tuple[str, ...], metadata: tuple[str, ...],
                   entrypoint_num_cpus: float | None, eval_args: tuple[str, ...]) -> None:
    """Send `eval SOURCE AGENT [eval options]` (after --) to a cluster as a Ray Job.

    The tasks file's folder travels with the job; the run directory is on the cluster.
    """
    job = jobs.prepare_eval_job(
        list(eval_args), working_dir=working_dir, excludes=list(excludes), python=python,
        runs_dir=runs_dir, submission_id=submission_id,
        env_vars=_pairs(env_vars, "--env-var", from_env=True),
        metadata=_pairs(metadata, "--metadata"))
    client = jobs.job_client(address)
    job_id = jobs.submit(client, job, entrypoint_num_cpus=entrypoint_num_cpus)
    click.echo(f"job: {job_id}")
    click.echo(f"run directory (on the cluster): {job.out}")
    if not follow:
        click.echo(f"follow with: hud-ray jobs logs --follow {job_id}")
        return
    try:
        status = jobs.follow(client, job_id, lambda s: click.echo(s, nl=False))
    except KeyboardInterrupt:
        click.echo(f"\nstopped following; the job keeps running (hud-ray jobs stop {job_id})",
                   err=True)
        sys.exit(130)
    _finish(client, job_id, status)


def _finish(client, job_id: str, status: str) -> None:  # type: ignore[no-untyped-def]
    click.echo(f"job {job_id}: {status}")
    if status != "SUCCEEDED":
        info = client.get_job_info(job_id)
        reason = (info.message or "").strip().splitlines()
        raise HudRayError(f"job {job_id} {status.lower()}"
                          + (f": {reason[0][:300]}" if reason else ""), code="job_failed")
