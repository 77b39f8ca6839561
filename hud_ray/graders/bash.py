"""``BashGrader``: score a rollout by a command run inside its own sandbox."""

from __future__ import annotations

import math
import os
import shlex
from typing import Any

from hud_ray.capabilities.isolation import clean_env
from hud_ray.env import current_session
from hud_ray.errors import GradeError
from hud_ray.graders.base import Grader
from hud_ray.graders.results import SubScore

CAP = 4096


class BashGrader(Grader):
    """Runs ``command`` with bash in the rollout's workspace sandbox (never on the host).

    Exit status 0 scores 1.0, anything else 0.0, unless the command writes a number to
    ``$HUD_REWARD_FILE``, which then is the score (clamped to [0, 1]). A timeout scores
    0.0. ``cwd`` may name the host ``root`` given to ``env.workspace(root)`` (or a path
    under it): it maps to the sandbox's workspace, as do ``root`` paths in the command.
    Subclasses may override ``compute_score`` as with any :class:`Grader`.

    Grading ends the agent's turn first: its ssh connections are closed and refused, and
    every process it left running in the sandbox is killed, so nothing of the agent's
    runs while the grader does. A task whose check needs a service the agent started
    (a server, a daemon) passes ``keep_processes=True``; its processes then run on
    during that grade. The reward channel is never a file the agent could write: it is
    a pipe the grader's command inherits (``$HUD_REWARD_FILE`` names it, ``/dev/fd/N``)
    and that the host reads when the command ends.
    """

    name = "BashGrader"  # HUD's subscore name

    @classmethod
    async def compute_score(cls, command: str = "", cwd: str | None = None,
                            timeout_seconds: float | None = 600.0, workspace: str | None = None,
                            keep_processes: bool = False, **_: Any) -> SubScore:
        if timeout_seconds is None:
            timeout_seconds = 600.0
        ws = _workspace(workspace)
        cwd = _map_cwd(cwd, workspace, ws.cwd)
        command = _map_command(command, workspace, ws.cwd)
        await ws.stop_agent(kill=not keep_processes)
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        owner = getattr(ws.jail, "grader_uid", None)
        if owner is not None:  # reopened through /dev/fd, the pipe checks its owner
            os.fchown(write_fd, owner, owner)
        try:
            env = clean_env(ws.cwd)
            env["HUD_REWARD_FILE"] = ws.jail.fd_path(0, write_fd)
            script = f"cd {shlex.quote(cwd)} && {command}" if cwd else command
            try:
                result = await ws.exec(script, timeout=timeout_seconds, max_output=CAP,
                                       env=env, pass_fds=(write_fd,), as_grader=True)
            finally:
                os.close(write_fd)
            reported = _read_available(read_fd)
        finally:
            os.close(read_fd)
        value = 1.0 if result.ok else 0.0
        written = None
        if reported.strip():
            try:
                written = float(reported.split()[0])
            except ValueError:
                written = None
            if written is not None and math.isfinite(written):
                value = min(1.0, max(0.0, written))
            else:
                written = None
        info = {"exit_code": result.exit_code, "timed_out": result.timed_out,
                "stdout": result.stdout[-CAP:], "stderr": result.stderr[-CAP:],
                "command": command, "reward_file": written, "limit": result.limit}
        return SubScore(name=cls.name, value=value, info=info)


def _read_available(fd: int) -> str:
    """What the grader wrote to its reward pipe (never waits for late writers)."""
    chunks: list[bytes] = []
    total = 0
    while total < CAP:
        try:
            data = os.read(fd, CAP)
        except BlockingIOError:
            break
        if not data:
            break
        chunks.append(data)
        total += len(data)
    return b"".join(chunks).decode(errors="replace")


def _workspace(name: str | None) -> Any:
    from hud_ray.capabilities.ssh import WorkspaceSession

    session = current_session()
    if session is None:
        raise GradeError("BashGrader runs inside a rollout's workspace; there is no rollout "
                         "here (call it from a template's grade step)", code="no_workspace")
    spaces = {k: v for k, v in session.resources.items() if isinstance(v, WorkspaceSession)}
    if name is not None:
        if name not in spaces:
            raise GradeError(f"no workspace named {name!r} in this session", code="no_workspace")
        return spaces[name]
    if len(spaces) != 1:
        raise GradeError(f"BashGrader needs exactly one workspace in the session (found "
                         f"{len(spaces)}); pass workspace=NAME", code="no_workspace")
    return next(iter(spaces.values()))


def _roots(workspace: str | None) -> list[str]:
    """The host ``root`` paths (as written and resolved) of the session's workspaces."""
    import os

    env = getattr(current_session(), "env", None)
    out: list[str] = []
    for name, res in (env.resources.items() if env is not None else []):
        root = getattr(res, "root", None)
        if root is not None and (workspace is None or name == workspace):
            out += [p for p in dict.fromkeys((os.path.abspath(str(root)),
                                              os.path.realpath(str(root)))) if len(p) > 1]
    return out


def _map_cwd(cwd: str | None, workspace: str | None, inside: str) -> str | None:
    """A host path under the workspace's declared ``root`` becomes the sandbox path."""
    import os

    if cwd is None:
        return None
    path = os.path.abspath(cwd)
    for root in _roots(workspace):
        if path == root or path.startswith(root + os.sep):
            return inside + path[len(root):]
    return cwd


def _map_command(command: str, workspace: str | None, inside: str) -> str:
    """Host ``root`` paths written into the command point at the sandbox's workspace."""
    for root in sorted(_roots(workspace), key=len, reverse=True):
        command = command.replace(root, inside)
    return command
