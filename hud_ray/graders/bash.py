"""``BashGrader``: score a rollout by a command run inside its own sandbox."""

from __future__ import annotations

import math
import os
import shlex
from typing import Any, ClassVar

from hud_ray.capabilities.isolation import clean_env
from hud_ray.env import current_session
from hud_ray.errors import GradeError
from hud_ray.graders.results import SubScore

CAP = 4096


class BashGrader:
    """Runs ``command`` with bash in the rollout's workspace sandbox (never on the host).

    Exit status 0 scores 1.0, anything else 0.0, unless the command writes a number to
    ``$HUD_REWARD_FILE``, which then is the score (clamped to [0, 1]). A timeout scores
    0.0.

    Grading ends the agent's turn first: its ssh connections are closed and refused, and
    every process it left running in the sandbox is killed, so nothing of the agent's
    runs while the grader does. A task whose check needs a service the agent started
    (a server, a daemon) passes ``keep_processes=True``; its processes then run on
    during that grade. The reward channel is never a file the agent could write: it is
    a pipe the grader's command inherits (``$HUD_REWARD_FILE`` names it, ``/dev/fd/N``)
    and that the host reads when the command ends.
    """

    name: ClassVar[str] = "bash"

    @classmethod
    async def grade(cls, weight: float = 1.0, command: str = "", cwd: str | None = None,
                    timeout_seconds: float = 600.0, name: str | None = None,
                    workspace: str | None = None, keep_processes: bool = False,
                    **_: Any) -> SubScore:
        ws = _workspace(workspace)
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
        return SubScore(name=name or cls.name, value=value, weight=weight, info=info)


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
