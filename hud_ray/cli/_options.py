"""Shared click plumbing: ``--config`` (YAML defaults or agent key=value), errors."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

from hud_ray.cli._render import echo_err
from hud_ray.errors import HudRayError

_NUMERIC = (int, float)


def parse_value(text: str) -> Any:
    """``key=value`` values: YAML scalars (numbers, booleans, null), else the string."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, _NUMERIC | bool | list | dict) or value is None else text


def load_config_values(ctx: click.Context, values: tuple[str, ...]) -> dict[str, Any]:
    """Split ``--config`` values into YAML files (defaults for options) and key=value pairs
    (agent config). Returns the agent-config pairs; YAML defaults go to ``ctx.default_map``."""
    agent_config: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for value in values:
        path = Path(value)
        if path.suffix in (".yaml", ".yml") or (path.is_file() and "=" not in value):
            if not path.is_file():
                raise click.BadParameter(f"{value}: no such config file", param_hint="--config")
            try:
                data = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise click.BadParameter(f"{value}: invalid YAML: {exc}".splitlines()[0],
                                         param_hint="--config") from None
            if not isinstance(data, dict):
                raise click.BadParameter(f"{value}: expected a mapping of option: value",
                                         param_hint="--config")
            for key, val in data.items():
                key = str(key).replace("-", "_")
                if key == "agent_config" and isinstance(val, dict):
                    agent_config.update(val)
                else:
                    defaults[key] = val
        elif "=" in value:
            key, _, raw = value.partition("=")
            agent_config[key.strip()] = parse_value(raw)
        else:
            raise click.BadParameter(f"{value!r} is neither a YAML file nor key=value",
                                     param_hint="--config")
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return agent_config


def config_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> Any:
        return load_config_values(ctx, value)

    return click.option("--config", "-c", "config_values", multiple=True, is_eager=True,
                        callback=callback, envvar="HUD_RAY_CONFIG",
                        help="A YAML file of option defaults (e.g. configs/local.yaml), or an "
                             "agent setting key=value. Repeatable.")(fn)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Library errors become one clear line and a non-zero exit, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HudRayError as exc:
            echo_err(str(exc))
            sys.exit(2)
        except KeyboardInterrupt:
            echo_err("interrupted; rows written so far are kept (resume with --resume DIR)")
            sys.exit(130)

    return wrapper
