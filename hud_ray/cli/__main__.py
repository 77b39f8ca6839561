"""``python -m hud_ray.cli``: the ``hud-ray`` command (used as a Ray Job entrypoint)."""

from hud_ray.cli import main

main(prog_name="hud-ray")
