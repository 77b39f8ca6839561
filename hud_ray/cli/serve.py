"""``hud-ray serve`` and ``hud-ray task``: drive one task by hand over the control channel."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from hud_ray.cli._options import handle_errors
from hud_ray.errors import ConfigError, TasksetError
from hud_ray.sandbox import Sandbox
from hud_ray.serve import ControlClient, ControlServer
from hud_ray.task import Taskset

DEFAULT_ADDRESS = "127.0.0.1:8765"
STATE_DIR = Path(os.environ.get("HUD_RAY_STATE_DIR", Path.home() / ".hud-ray"))


def _pick_env(source: str, name: str | None) -> Sandbox:
    taskset = Taskset.from_file(source)
    if not taskset.sources:
        raise TasksetError(f"{source}: defines no Environment")
    from hud_ray.sandbox import load_environments

    envs = load_environments(taskset.sources)
    if name is None and len(envs) > 1:
        raise ConfigError(f"{source} defines several environments ({', '.join(envs)}); "
                          "pass --env NAME")
    if name is not None and name not in envs:
        raise ConfigError(f"no environment {name!r} in {source} (has: {', '.join(envs)})")
    chosen = name or next(iter(envs))
    return Sandbox({chosen: envs[chosen]})


@click.command("serve")
@click.argument("source", type=click.Path())
@click.option("--env", "env_name", envvar="HUD_RAY_SERVE_ENV", help="Which environment.")
@click.option("--host", default="127.0.0.1", envvar="HUD_RAY_SERVE_HOST", show_default=True)
@click.option("--port", default=8765, type=int, envvar="HUD_RAY_SERVE_PORT", show_default=True)
@handle_errors
def serve_command(source: str, env_name: str | None, host: str, port: int) -> None:
    """Serve an environment's control channel so `hud-ray task` can drive it."""
    sandbox = _pick_env(source, env_name)

    async def main() -> None:
        server = ControlServer(sandbox)
        bound_host, bound_port = await server.start(host, port)
        click.echo(f"serving env {server.env.name!r} on tcp://{bound_host}:{bound_port} "
                   "(Ctrl-C to stop)", err=True)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        serving = asyncio.create_task(server.serve_forever())
        await stop.wait()
        serving.cancel()
        await server.close()

    asyncio.run(main())


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    if parts.hostname is None or parts.port is None:
        raise ConfigError(f"bad control address {url!r}; expected HOST:PORT")
    return parts.hostname, parts.port


def _state_file() -> Path:
    return STATE_DIR / "task-session.json"


async def _call(url: str, method: str, params: dict[str, Any] | None = None, *,
                session: str | None = None) -> tuple[Any, str]:
    client = await ControlClient.connect(*_address(url))
    try:
        hello = await client.call("hello", {"session_id": session} if session else {})
        result = await client.call(method, params)
        return result, hello["session_id"]
    finally:
        await client.close()


def ssh_command(binding: dict[str, Any], session: str) -> str:
    """Write the session's key and host key to files; return the ssh command that uses them."""
    params = binding.get("params", {})
    parts = urlsplit(binding["url"])
    keys = STATE_DIR / "keys"
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_file = keys / f"{session}-{binding['name']}"
    key_file.write_text(params["client_key"].rstrip("\n") + "\n")
    key_file.chmod(0o600)
    known = keys / f"{session}-{binding['name']}.known_hosts"
    host = parts.hostname if parts.port in (None, 22) else f"[{parts.hostname}]:{parts.port}"
    known.write_text(f"{host} {params['host_pubkey'].strip()}\n")
    port = f" -p {parts.port}" if parts.port else ""
    return (f"ssh -i {key_file} -o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes "
            f"-o IdentitiesOnly=yes{port} {params.get('user', 'agent')}@{parts.hostname}")


@click.group("task")
def task_group() -> None:
    """Drive one task by hand against `hud-ray serve`."""


_url = click.option("--url", default=DEFAULT_ADDRESS, envvar="HUD_RAY_CONTROL_URL",
                    show_default=True, help="Control channel address.")


@task_group.command("list")
@_url
@handle_errors
def task_list(url: str) -> None:
    """List the environment's templates."""
    result, _ = asyncio.run(_call(url, "tasks.list"))
    for t in result["tasks"]:
        click.echo(f"{t['id']}\t{t.get('description', '')}")


@task_group.command("start")
@click.argument("template_id")
@click.option("--args", "args_json", default="{}", help="Template args as a JSON object.")
@_url
@handle_errors
def task_start(template_id: str, args_json: str, url: str) -> None:
    """Start a task: print its prompt and how to reach its capabilities; leave it parked."""
    try:
        args = json.loads(args_json)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--args is not JSON: {exc}") from None
    result, session = asyncio.run(_call(url, "tasks.start", {"id": template_id, "args": args}))
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    _state_file().write_text(json.dumps({"url": url, "session_id": session}))
    prompt = result["prompt"]
    click.echo(prompt if isinstance(prompt, str) else json.dumps(prompt, indent=2))
    for binding in result.get("bindings", []):
        if binding["protocol"].startswith("ssh/") and binding.get("params", {}).get("client_key"):
            click.echo(f"\n# {binding['name']}: {ssh_command(binding, session)}")
        else:
            click.echo(f"\n# {binding['name']} ({binding['protocol']}): {binding['url']}")
    click.echo(f"\n# session {session} parked; grade with: hud-ray task grade --answer ...")


def _saved_session(url: str, session: str | None) -> str | None:
    if session:
        return session
    try:
        state = json.loads(_state_file().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state.get("session_id") if state.get("url") == url else None


@task_group.command("grade")
@click.option("--answer", default=None, help="The answer to grade (omit for none).")
@click.option("--session", default=None, help="Session id (default: the last started).")
@_url
@handle_errors
def task_grade(answer: str | None, session: str | None, url: str) -> None:
    """Grade the parked task with an answer."""
    result, _ = asyncio.run(_call(url, "tasks.grade", {"answer": answer},
                                  session=_saved_session(url, session)))
    _state_file().unlink(missing_ok=True)
    click.echo(json.dumps(result, indent=2))


@task_group.command("cancel")
@click.option("--session", default=None)
@_url
@handle_errors
def task_cancel(session: str | None, url: str) -> None:
    """Cancel the parked task."""
    asyncio.run(_call(url, "tasks.cancel", session=_saved_session(url, session)))
    _state_file().unlink(missing_ok=True)
    click.echo("cancelled")
