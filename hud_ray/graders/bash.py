"""``BashGrader``: score a rollout by a command run inside its own sandbox."""

from __future__ import annotations

from typing import Any

from hud_ray.env import current_session
from hud_ray.errors import GradeError
from hud_ray.graders.base import Grader
from hud_ray.graders.results import SubScore

#: A grading script may write a reward in [0, 1] here (inside the workspace) instead of
#: relying on its exit status.
REWARD_FILE = ".hud_reward"
CAP = 4096


class BashGrader(Grader):
    """Runs ``command`` with bash in the rollout's workspace sandbox (never on the host).

    Exit status 0 scores 1.0, anything else 0.0, unless the command writes a number to
    ``$HUD_REWARD_FILE`` (``.hud_reward`` in the workspace), which then is the score
    (clamped to [0, 1]). A timeout scores 0.0. ``cwd`` may name the host ``root`` given
    to ``env.workspace(root)`` (or a path under it): it maps to the sandbox's workspace.
    Subclasses may override ``compute_score`` as with any :class:`Grader`.
    """

    name = "BashGrader"  # HUD's subscore name

    @classmethod
    async def compute_score(cls, command: str = "", cwd: str | None = None,
                            timeout_seconds: float | None = 600.0, workspace: str | None = None,
                            **_: Any) -> SubScore:
        if timeout_seconds is None:
            timeout_seconds = 600.0
        ws = _workspace(workspace)
        cwd = _map_cwd(cwd, workspace, ws.cwd)
        command = _map_command(command, workspace, ws.cwd)
        reward_path = f"{ws.cwd}/{REWARD_FILE}"
        prefix = f"rm -f {reward_path}; export HUD_REWARD_FILE={reward_path}; "
        if cwd:
            prefix += f"cd {cwd} && "
        result = await ws.exec(prefix + command, timeout=timeout_seconds, max_output=CAP)
        value = 1.0 if result.ok else 0.0
        written = None
        probe = await ws.exec(f"cat {reward_path} 2>/dev/null", timeout=30)
        if probe.exit_code == 0 and probe.stdout.strip():
            try:
                written = float(probe.stdout.split()[0])
            except ValueError:
                written = None
            if written is not None:
                value = min(1.0, max(0.0, written))
        info = {"exit_code": result.exit_code, "timed_out": result.timed_out,
                "stdout": result.stdout[-CAP:], "stderr": result.stderr[-CAP:],
                "command": command, "reward_file": written}
        return SubScore(name=cls.name, value=value, info=info)


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
