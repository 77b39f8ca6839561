"""``hud-ray build ENV_DIR``: a Dockerfile for an environment, built when a builder exists."""

from __future__ import annotations

import shlex

import click

from hud_ray.cli._options import handle_errors
from hud_ray.cluster.build import DEFAULT_BASE, plan_build, run_build


@click.command("build")
@click.argument("env_dir", type=click.Path())
@click.option("--tag", "-t", help="Image name (default hud-ray-env-<folder>:latest).")
@click.option("--base", default=DEFAULT_BASE, show_default=True,
              help="The hud-ray node image (built from Dockerfile.hud).")
@click.option("--builder", type=click.Choice(["docker", "podman", "buildah"]),
              help="Image builder (default: the first one installed).")
@click.option("--output", type=click.Path(dir_okay=False),
              help="Where to write the Dockerfile (default ENV_DIR/Dockerfile.hud-env).")
@click.option("--no-build", is_flag=True, help="Only write the Dockerfile.")
@handle_errors
def build_command(env_dir: str, tag: str | None, base: str, builder: str | None,
                  output: str | None, no_build: bool) -> None:
    """Package the environment in ENV_DIR as an image on the hud-ray node image."""
    plan = plan_build(env_dir, tag=tag, base=base, builder=builder, output=output)
    click.echo(f"wrote {plan.dockerfile}")
    if no_build or plan.builder is None:
        hint = shlex.join(plan.command) if plan.command else \
            f"docker build -f {plan.dockerfile} -t {plan.tag} {plan.env_dir}"
        click.echo(f"build with: {hint}")
        return
    run_build(plan)
    click.echo(f"built {plan.tag}")
