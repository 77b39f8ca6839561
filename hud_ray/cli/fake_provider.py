"""``hud-ray fake-provider``: serve the local model provider for demos and benchmarks."""

from __future__ import annotations

import click


@click.command("fake-provider", context_settings={"ignore_unknown_options": True,
                                                   "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def fake_provider_command(args: tuple[str, ...]) -> None:
    """Serve an OpenAI/Anthropic-compatible fake provider (see --help)."""
    from hud_ray.testing.provider import main

    main(list(args))
