"""``hud-ray fake-provider``: serve the local model provider for demos and benchmarks."""

from __future__ import annotations

import click

from hud_ray.cli._options import handle_errors
from hud_ray.errors import ConfigError

POLICIES = ("letters", "echo", "tools")


@click.command("fake-provider")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Env: HUD_RAY_FAKE_PROVIDER_HOST.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port (0 picks a free one). Env: HUD_RAY_FAKE_PROVIDER_PORT.")
@click.option("--policy", type=click.Choice(POLICIES), default="letters", show_default=True,
              help="letters: count letters in the prompt; echo: repeat the last message; "
                   "tools: call the first offered tool for --turns - 1 turns, then answer. "
                   "Env: HUD_RAY_FAKE_PROVIDER_POLICY.")
@click.option("--latency", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds added to every reply. Env: HUD_RAY_FAKE_PROVIDER_LATENCY.")
@click.option("--turns", type=click.IntRange(min=1), default=3, show_default=True,
              help="Model turns for --policy tools. Env: HUD_RAY_FAKE_PROVIDER_TURNS.")
@click.option("--token-ids/--no-token-ids", default=False,
              help="Return vLLM-style token ids. Env: HUD_RAY_FAKE_PROVIDER_TOKEN_IDS.")
@click.option("--api-key", default=None,
              help="Require this key. Env: HUD_RAY_FAKE_PROVIDER_API_KEY.")
@click.option("--lenient", is_flag=True, default=False,
              help="Accept requests the real APIs would reject. "
                   "Env: HUD_RAY_FAKE_PROVIDER_LENIENT.")
@handle_errors
def fake_provider_command(host: str, port: int, policy: str, latency: float, turns: int,
                          token_ids: bool, api_key: str | None, lenient: bool) -> None:
    """Serve an OpenAI/Anthropic-compatible fake model provider until interrupted.

    Prints `listening on http://HOST:PORT` on stdout once bound.
    """
    from hud_ray.testing.provider import main

    argv = ["--host", host, "--port", str(port), "--policy", policy,
            "--latency", str(latency), "--turns", str(turns)]
    if token_ids:
        argv.append("--token-ids")
    if api_key:
        argv += ["--api-key", api_key]
    if lenient:
        argv.append("--lenient")
    try:
        main(argv)
    except OSError as exc:
        raise ConfigError(f"fake-provider: cannot listen on {host}:{port}: "
                          f"{exc.strerror or exc}") from None
