"""The ``hud-ray`` command line: a thin click layer over the Python API."""

from __future__ import annotations

import logging

import click

from hud_ray import __version__
from hud_ray.cli.eval import eval_command
from hud_ray.cli.export import export_command
from hud_ray.cli.fake_provider import fake_provider_command
from hud_ray.cli.serve import serve_command, task_group
from hud_ray.cli.validate import validate_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hud-ray")
@click.option("--log-level", default="WARNING", envvar="HUD_RAY_LOG_LEVEL",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def main(log_level: str) -> None:
    """Run HUD-style agent environments as graded rollouts on Ray."""
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")


main.add_command(eval_command)
main.add_command(validate_command)
main.add_command(serve_command)
main.add_command(task_group)
main.add_command(fake_provider_command)
main.add_command(export_command)
