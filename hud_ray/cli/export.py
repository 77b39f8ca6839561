"""``hud-ray export RUN --format ...``: a run as training files (see hud_ray.data.export)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hud_ray.cli._options import handle_errors
from hud_ray.data.export import FORMATS, export
from hud_ray.rundir import is_uri


def _existing(ctx: click.Context, param: click.Parameter, runs: tuple[str, ...]
              ) -> tuple[str, ...]:
    """Local RUNS must exist (as click.Path(exists=True) checks); URIs are read later."""
    for run in runs:
        if not is_uri(run) and not Path(run).exists():
            raise click.BadParameter(f"Path {run!r} does not exist.", ctx, param)
    return runs


@click.command("export")
@click.argument("runs", nargs=-1, required=True, callback=_existing)
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True,
              help="parquet/jsonl/hf: rows of complete groups with advantages; tinker: "
                   "datums (JSON lines); slime: a --load-debug-rollout-data file; sft: "
                   "best-of-group chat rows. Env: HUD_RAY_EXPORT_FORMAT.")
@click.option("--out", "-o", required=True, type=click.Path(),
              help="Output file (hf: a directory; slime: may contain {rollout_id}). "
                   "Env: HUD_RAY_EXPORT_OUT.")
@click.option("--group-policy",
              help="Override the run's group policy: drop_group, keep_partial:N, pad_masked. "
                   "Env: HUD_RAY_GROUP_POLICY.")
@click.option("--all-rows", is_flag=True, help="Table formats: every row, not groups.")
@click.option("--loss-fn", default="importance_sampling", show_default=True,
              type=click.Choice(["importance_sampling", "ppo", "cispo", "cross_entropy"]),
              help="Tinker: which loss the datums are for.")
@click.option("--rollout-id", default=0, show_default=True, help="slime: the rollout id.")
@handle_errors
def export_command(runs: tuple[str, ...], fmt: str, out: str, group_policy: str | None,
                   all_rows: bool, loss_fn: str, rollout_id: int) -> None:
    """Export RUNS (run directories or sweep folders, paths or URIs) as training data."""
    info = export(list(runs), out, fmt=fmt, policy=group_policy,  # type: ignore[arg-type]
                  all_rows=all_rows, loss_fn=loss_fn, rollout_id=rollout_id)
    click.echo(json.dumps(info))
