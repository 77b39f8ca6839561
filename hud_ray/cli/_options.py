"""Shared click plumbing: ``--config`` (YAML defaults or agent key=value), errors."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from hud_ray.cli._render import echo_err
from hud_ray.errors import ConfigError, HudRayError, RecordError, TasksetError
from hud_ray.settings import Settings

_BOOLS = {"true": True, "false": False}


def parse_value(text: str) -> Any:
    """A ``key=value`` value: a JSON scalar, list or object (``3``, ``0.5``, ``true``,
    ``null``, ``["a"]``; ``True``/``FALSE`` too), else the text as a string."""
    if text.strip().lower() in _BOOLS:
        return _BOOLS[text.strip().lower()]
    try:
        return json.loads(text)
    except ValueError:
        return text


def load_config_values(ctx: click.Context, values: tuple[str, ...],
                       command: str = "eval") -> dict[str, Any]:
    """Split ``--config`` values into YAML files (option defaults) and key=value pairs
    (agent settings); return the agent settings. ``ctx.default_map`` becomes the file's
    defaults overlaid by ``HUD_RAY_*`` variables, so the precedence is command line,
    environment, config file, built-in default."""
    settings = Settings.from_env()
    if not values:
        values = tuple(settings.get("HUD_RAY_CONFIG") or ())
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
            if not key.strip():
                raise click.BadParameter(f"{value!r}: empty key", param_hint="--config")
            agent_config[key.strip()] = parse_value(raw)
        else:
            raise click.BadParameter(f"{value!r} is neither a YAML file nor key=value",
                                     param_hint="--config")
    ctx.default_map = {**(ctx.default_map or {}), **defaults,
                       **settings.defaults_for(command)}
    return agent_config


def config_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> Any:
        return load_config_values(ctx, value)

    return click.option("--config", "-c", "config_values", multiple=True, is_eager=True,
                        callback=callback,
                        help="A YAML file of option defaults (e.g. configs/local.yaml), or an "
                             "agent setting key=value (value parsed as JSON: 3, 0.5, true; "
                             "else a string). Repeatable. Env: HUD_RAY_CONFIG.")(fn)


#: Exit status by error class (the first match in the exception's MRO wins).
EXIT_CODES: dict[type[BaseException], int] = {
    ConfigError: 2,
    TasksetError: 2,
    RecordError: 3,
    HudRayError: 1,
}


def exit_code(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1


def one_line(message: str) -> str:
    """The first non-empty line of ``message`` (errors are one line on stderr)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


def fail(exc: BaseException) -> NoReturn:
    echo_err(one_line(str(exc)) if str(exc) else type(exc).__name__)
    sys.exit(exit_code(exc))


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Library errors become one clear line and a non-zero exit, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HudRayError as exc:
            fail(exc)
        except KeyboardInterrupt:
            echo_err("interrupted; rows written so far are kept (resume with --resume DIR)")
            sys.exit(130)

    return wrapper
