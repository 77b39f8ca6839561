"""``hud-ray sweep SWEEP.yaml``: agents x tasksets x group sizes x seeds, resumable."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from hud_ray.cli._options import handle_errors
from hud_ray.errors import ConfigError
from hud_ray.rundir import RunDir
from hud_ray.sweep import SweepConfig, cell_state, cells, run_sweep, table


@click.command("sweep")
@click.argument("sweep_file", type=click.Path())
@click.option("--out", "-o", type=click.Path(),
              help="Sweep directory, a path or URI (default: the file's `out`, else "
                   "runs/sweep-<name>).")
@click.option("--address",
              help="Ray cluster address for every cell (default: the file's eval.address, "
                   "else Ray in-process).")
@click.option("--dry-run", is_flag=True, help="List the cells and their state; run nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the combined summary as JSON.")
@handle_errors
def sweep_command(sweep_file: str, out: str | None, address: str | None, dry_run: bool,
                  as_json: bool) -> None:
    """Run every cell of SWEEP_FILE, one run directory each; run it again to continue."""
    config = SweepConfig.load(sweep_file)
    root = RunDir.resolve(out or config.out or f"runs/sweep-{Path(sweep_file).stem}")
    if root.is_file_here():
        raise ConfigError(f"{root}: not a directory")
    if dry_run:
        for cell in cells(config):
            click.echo(f"{cell_state(root.child(cell.id)):<8} {cell.id}")
        return

    def report(cell, state: str) -> None:  # type: ignore[no-untyped-def]
        verb = {"done": "done, skipped", "partial": "resuming", "new": "running",
                "finished": "finished"}[state]
        click.echo(f"[sweep] {cell.id}: {verb}", err=True)

    rows = asyncio.run(run_sweep(config, root, on_cell=report, address=address))
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
    else:
        click.echo(table(rows))
        click.echo(f"\nsweep directory: {root} (_summary.json, summary.csv, reward.svg)")
