"""The ``hud-ray`` command line: a thin click layer over the Python API."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from hud_ray import __version__
from hud_ray.cli._options import fail, one_line
from hud_ray.cli._render import echo_err
from hud_ray.cli.build import build_command
from hud_ray.cli.eval import eval_command
from hud_ray.cli.export import export_command
from hud_ray.cli.fake_provider import fake_provider_command
from hud_ray.cli.jobs import jobs_group
from hud_ray.cli.serve import serve_command, task_group
from hud_ray.cli.submit import submit_command
from hud_ray.cli.sweep import sweep_command
from hud_ray.cli.validate import validate_command
from hud_ray.errors import HudRayError
from hud_ray.settings import Settings


class HudRayGroup(click.Group):
    """A group whose usage errors and library errors are one line on stderr."""

    def main(self, args: Any = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.Abort:
            echo_err("aborted")
            sys.exit(130)
        except click.ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `hud-ray`: show the help
                exc.show()
                sys.exit(exc.exit_code)
            hint = " (see --help)" if isinstance(exc, click.UsageError) else ""
            echo_err(one_line(exc.format_message()) + hint)
            sys.exit(exc.exit_code)
        except HudRayError as exc:
            fail(exc)
        except OSError as exc:  # a path the user named: unreadable, unwritable, missing
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            echo_err(one_line(str(exc)))
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _log_level_default() -> str:
    return str(Settings.from_env().get("HUD_RAY_LOG_LEVEL") or "WARNING")


@click.group(cls=HudRayGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hud-ray")
@click.option("--log-level", default=_log_level_default, show_default="WARNING",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Env: HUD_RAY_LOG_LEVEL.")
@click.pass_context
def main(ctx: click.Context, log_level: str) -> None:
    """Run HUD-style agent environments as graded rollouts on Ray.

    Options read HUD_RAY_* environment variables (e.g. HUD_RAY_GROUP_SIZE); precedence:
    command line, environment, --config FILE, built-in default.
    """
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    if settings.unknown:
        logging.getLogger("hud_ray").warning("unknown hud-ray variable(s) ignored: %s",
                                             ", ".join(settings.unknown))
    ctx.default_map = {**settings.default_map(), **(ctx.default_map or {})}


main.add_command(eval_command)
main.add_command(validate_command)
main.add_command(serve_command)
main.add_command(task_group)
main.add_command(fake_provider_command)
main.add_command(submit_command)
main.add_command(jobs_group)
main.add_command(sweep_command)
main.add_command(build_command)
main.add_command(export_command)
