"""``hud-ray jobs list|status|logs|stop``: the Ray Jobs a cluster runs."""

from __future__ import annotations

import json

import click

from hud_ray.cli._options import handle_errors
from hud_ray.cluster import jobs
from hud_ray.errors import ConfigError, HudRayError

_address = click.option("--address",
                        help="The cluster's dashboard, http://HEAD:8265.")


@click.group("jobs")
def jobs_group() -> None:
    """Inspect and stop Ray Jobs (started with `hud-ray submit`)."""


def _call(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return fn(*args)
    except HudRayError:
        raise
    except Exception as exc:
        message = jobs._one_line(exc)
        if "does not exist" in message:  # the dashboard's 404 for an unknown job id
            raise ConfigError(message, code="no_such_job") from None
        raise HudRayError(message, code="job_api_error") from None


@jobs_group.command("list")
@_address
@click.option("--all", "show_all", is_flag=True, help="Also jobs not started by hud-ray.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def list_command(address: str | None, show_all: bool, as_json: bool) -> None:
    """Jobs on the cluster, newest first."""
    client = jobs.job_client(address)
    infos = sorted(_call(client.list_jobs), key=lambda j: j.start_time or 0, reverse=True)
    rows = [{"job": j.submission_id or j.job_id, "status": str(j.status.value),
             "out": (j.metadata or {}).get("out", ""), "entrypoint": j.entrypoint}
            for j in infos if show_all or (j.metadata or {}).get("hud_ray")]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['job']:<36} {r['status']:<10} {r['out']}")


@jobs_group.command("status")
@_address
@click.argument("job_id")
@handle_errors
def status_command(address: str | None, job_id: str) -> None:
    """One job's status and run directory."""
    client = jobs.job_client(address)
    info = _call(client.get_job_info, job_id)
    click.echo(f"{job_id}: {info.status.value}  out={(info.metadata or {}).get('out', '?')}")
    if info.message:
        click.echo(info.message.strip().splitlines()[0])


@jobs_group.command("logs")
@_address
@click.option("--follow", "-f", is_flag=True, help="Stream until the job ends.")
@click.argument("job_id")
@handle_errors
def logs_command(address: str | None, follow: bool, job_id: str) -> None:
    """A job's logs."""
    client = jobs.job_client(address)
    if follow:
        status = jobs.follow(client, job_id, lambda s: click.echo(s, nl=False))
        click.echo(f"job {job_id}: {status}")
    else:
        click.echo(_call(client.get_job_logs, job_id), nl=False)


@jobs_group.command("stop")
@_address
@click.argument("job_id")
@handle_errors
def stop_command(address: str | None, job_id: str) -> None:
    """Stop a job (rows written so far stay; resume with eval --resume)."""
    client = jobs.job_client(address)
    _call(client.stop_job, job_id)
    status = jobs.wait(client, job_id, timeout=60)
    click.echo(f"job {job_id}: {status}")
