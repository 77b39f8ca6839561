"""``hud-ray serve`` and ``hud-ray task``: drive one task by hand over the control channel."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any
from urllib.parse import urlsplit

import click

from hud_ray.cli import _state
from hud_ray.cli._options import handle_errors
from hud_ray.errors import ConfigError, EnvError, TasksetError
from hud_ray.sandbox import Sandbox
from hud_ray.serve import (
    DEFAULT_IDLE_TTL,
    DEFAULT_MAX_PARKED,
    ControlClient,
    ControlServer,
    is_loopback,
    new_token,
)
from hud_ray.task import Taskset

DEFAULT_ADDRESS = "127.0.0.1:8765"


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
@click.option("--env", "env_name", help="Which environment.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Bind address; anything but loopback needs --insecure.")
@click.option("--port", default=8765, type=int, show_default=True)
@click.option("--insecure", is_flag=True,
              help="Allow a non-loopback bind: the channel (and its token) is plaintext.")
@click.option("--max-parked", default=DEFAULT_MAX_PARKED, type=click.IntRange(min=1),
              show_default=True,
              help="Most tasks started and not yet graded or cancelled.")
@click.option("--idle-ttl", default=DEFAULT_IDLE_TTL, type=click.FloatRange(min=0, min_open=True),
              show_default=True,
              help="Seconds a parked task may sit idle before it is cancelled.")
@handle_errors
def serve_command(source: str, env_name: str | None, host: str, port: int, insecure: bool,
                  max_parked: int, idle_ttl: float) -> None:
    """Serve an environment's control channel so `hud-ray task` can drive it.

    The channel's secret token is written to $HUD_RAY_STATE_DIR/control-PORT.token (0600);
    `hud-ray task` run by the same user reads it from there.
    """
    if not is_loopback(host) and not insecure:
        raise ConfigError(f"refusing to serve on non-loopback address {host!r}: TLS is not "
                          "supported yet; use an ssh tunnel to 127.0.0.1, or pass --insecure")
    _state.private_dir(_state.state_dir())
    sandbox = _pick_env(source, env_name)

    async def main() -> None:
        token = new_token()
        server = ControlServer(sandbox, token=token, max_parked=max_parked, idle_ttl=idle_ttl,
                               on_session_end=_state.remove_keys)
        bound_host, bound_port = await server.start(host, port, insecure=insecure)
        try:
            token_file = _state.save_token(bound_port, token)
            if not is_loopback(host):
                click.echo(f"WARNING: the control channel on {host} is plaintext; anyone who "
                           "can reach it and read the token can start tasks", err=True)
            click.echo(f"serving env {server.env.name!r} on tcp://{bound_host}:{bound_port} "
                       f"(token in {token_file}; Ctrl-C to stop)", err=True)
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            serving = asyncio.create_task(server.serve_forever())
            await stop.wait()
            serving.cancel()
        finally:
            await server.close()
            _state.remove_token(bound_port, token)

    asyncio.run(main())


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if host is None or port is None:
        raise ConfigError(f"bad control address {url!r}; expected HOST:PORT")
    return host, port


class _Channel:
    """One ``hud-ray task`` connection: token lookup, session resume, saved state."""

    def __init__(self, url: str, token: str | None) -> None:
        self.host, self.port = _address(url)
        self.key = f"{self.host}:{self.port}"
        _state.private_dir(_state.state_dir())
        self.token = token or _state.load_token(self.port)
        self.client: ControlClient | None = None
        self.session = ""

    async def open(self, session: str | None) -> None:
        self.client = await ControlClient.connect(self.host, self.port, token=self.token)
        hello = await self.client.call("hello", {"session_id": session} if session else {})
        self.session = _state.check_session_id(hello["session_id"])

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        assert self.client is not None
        return await self.client.call(method, params)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


def _session_for(channel: _Channel, session: str | None) -> str | None:
    if session:
        return _state.check_session_id(session)
    return _state.saved_sessions().get(channel.key)


async def _run(url: str, token: str | None, method: str, params: dict[str, Any] | None = None,
               *, session: str | None = None) -> tuple[Any, str]:
    """Resume ``session`` (or the saved one), call ``method``; forget the session at its end."""
    channel = _Channel(url, token)
    _state.sweep_keys()
    wanted = _session_for(channel, session)
    try:
        if wanted is None:
            await channel.open(None)
        else:
            try:
                await channel.open(wanted)
            except EnvError as exc:
                if exc.code != "control_unknown_session":
                    raise
                _state.forget_session(wanted)
                raise EnvError("no task in progress: the session ended (graded, cancelled, "
                               "expired, or the server restarted)", code="control_no_task",
                               ) from None
        try:
            result = await channel.call(method, params)
        finally:
            _state.forget_session(channel.session)  # graded or cancelled either way
        return result, channel.session
    finally:
        await channel.close()


async def _start(url: str, token: str | None, params: dict[str, Any]) -> tuple[Any, str]:
    """Start a task in the saved session if it is still parked (replacing its task)."""
    channel = _Channel(url, token)
    _state.sweep_keys()
    saved = _state.saved_sessions().get(channel.key)
    try:
        try:
            await channel.open(saved)
        except EnvError as exc:
            if saved is None or exc.code != "control_unknown_session":
                raise
            _state.forget_session(saved)
            await channel.close()
            await channel.open(None)
        _state.remove_keys(channel.session)
        result = await channel.call("tasks.start", params)
        _state.save_session(channel.key, channel.session)
        return result, channel.session
    finally:
        await channel.close()


def ssh_command(binding: dict[str, Any], session: str) -> str:
    """Write the session's key and host key to files; return the ssh command that uses them."""
    params = binding.get("params", {})
    parts = urlsplit(binding["url"])
    host = parts.hostname if parts.port in (None, 22) else f"[{parts.hostname}]:{parts.port}"
    key_file, known = _state.write_key_files(session, binding["name"], params["client_key"],
                                             f"{host} {params['host_pubkey'].strip()}\n")
    port = f" -p {parts.port}" if parts.port else ""
    return (f"ssh -i {key_file} -o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes "
            f"-o IdentitiesOnly=yes{port} {params.get('user', 'agent')}@{parts.hostname}")


@click.group("task")
def task_group() -> None:
    """Drive one task by hand against `hud-ray serve`."""


_url = click.option("--url", default=DEFAULT_ADDRESS,
                    show_default=True, help="Control channel address.")
_token = click.option("--token", default=None,
                      help="Control token (default: read from the state dir of the user "
                           "running `hud-ray serve`).")


@task_group.command("list")
@_url
@_token
@handle_errors
def task_list(url: str, token: str | None) -> None:
    """List the environment's templates."""

    async def run() -> Any:
        channel = _Channel(url, token)
        try:
            await channel.open(None)
            return await channel.call("tasks.list")
        finally:
            await channel.close()

    for t in asyncio.run(run())["tasks"]:
        click.echo(f"{t['id']}\t{t.get('description', '')}")


@task_group.command("start")
@click.argument("template_id")
@click.option("--args", "args_json", default="{}", help="Template args as a JSON object.")
@_url
@_token
@handle_errors
def task_start(template_id: str, args_json: str, url: str, token: str | None) -> None:
    """Start a task: print its prompt and how to reach its capabilities; leave it parked.

    Starting again replaces (cancels) the task this command started last on that server.
    """
    try:
        args = json.loads(args_json)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--args is not JSON: {exc}") from None
    result, session = asyncio.run(_start(url, token, {"id": template_id, "args": args}))
    prompt = result["prompt"]
    click.echo(prompt if isinstance(prompt, str) else json.dumps(prompt, indent=2))
    for binding in result.get("bindings", []):
        if binding["protocol"].startswith("ssh/") and binding.get("params", {}).get("client_key"):
            click.echo(f"\n# {binding['name']}: {ssh_command(binding, session)}")
        else:
            click.echo(f"\n# {binding['name']} ({binding['protocol']}): {binding['url']}")
    click.echo(f"\n# session {session} parked; grade with: hud-ray task grade --answer ...")


@task_group.command("grade")
@click.option("--answer", default=None, help="The answer to grade (omit for none).")
@click.option("--session", default=None, help="Session id (default: the last started).")
@_url
@_token
@handle_errors
def task_grade(answer: str | None, session: str | None, url: str, token: str | None) -> None:
    """Grade the parked task with an answer."""
    result, _ = asyncio.run(_run(url, token, "tasks.grade", {"answer": answer},
                                 session=session))
    click.echo(json.dumps(result, indent=2))


@task_group.command("cancel")
@click.option("--session", default=None, help="Session id (default: the last started).")
@_url
@_token
@handle_errors
def task_cancel(session: str | None, url: str, token: str | None) -> None:
    """Cancel the parked task."""
    asyncio.run(_run(url, token, "tasks.cancel", session=session))
    click.echo("cancelled")
