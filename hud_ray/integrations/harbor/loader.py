"""Harbor task folders -> hud-ray environments and task rows.

Each task folder becomes one :class:`~hud_ray.Environment` (``harbor:<folder>``) with
an ssh workspace shaped like the task's container, and one template (id = the folder
name) that prompts with ``instruction.md`` and grades with Harbor's verifier. A row's
source is the folder's ``task.toml``: a sandbox anywhere rebuilds the environment from
it (``hud_ray.task.import_source`` dispatches ``.toml`` here).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shlex
import shutil
import tempfile
import types
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hud_ray.env import Environment, current_session
from hud_ray.errors import EnvError, TasksetError
from hud_ray.integrations.harbor.config import TaskConfig, read_task_toml, resolve_env
from hud_ray.integrations.harbor.dockerfile import DockerPlan, materialise, plan_dockerfile
from hud_ray.integrations.harbor.verifier import run_verifier, tar_directory
from hud_ray.task import Task, Taskset

log = logging.getLogger(__name__)

ENV_PREFIX = "harbor:"
#: Directories every Harbor container has, besides the workdir and the Dockerfile's.
HARBOR_DIRS = ("/logs", "/tests", "/solution")
NO_LIMIT = 7 * 24 * 3600.0


@dataclass
class HarborTask:
    """One task folder, read and checked (nothing built yet)."""

    path: Path
    name: str
    config: TaskConfig | None = None
    instruction: str = ""
    plan: DockerPlan = field(default_factory=DockerPlan)
    workdir: str = "/"
    findings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + self.name

    def row(self) -> Task:
        """The task row (``agent_config.timeout_seconds`` from ``[agent] timeout_sec``)."""
        timeout = self.config.agent.timeout_sec if self.config else None
        return Task(env=self.env_name, id=self.name,
                    agent_config={"timeout_seconds": timeout, "grade_on_timeout": True}
                    if timeout else None,
                    columns={"harbor_findings": self.findings,
                             "harbor_problems": self.problems} if self.findings or
                    self.problems else None)


def strip_canary(text: str) -> str:
    """Drop leading canary lines (an HTML comment or ``#`` line naming a canary)."""
    lines = text.splitlines(keepends=True)
    i, seen = 0, False
    while i < len(lines) and (not lines[i].strip() or _is_canary(lines[i])):
        seen = seen or _is_canary(lines[i])
        i += 1
    return "".join(lines[i:]) if seen else text


def _is_canary(line: str) -> bool:
    s = line.strip()
    return "canary" in s.lower() and (s.startswith("<!--") or s.startswith("#"))


def read_task(path: Path) -> HarborTask:
    """Read one task folder; what is wrong with it lands in ``problems``, not an exception."""
    path = path.resolve()
    task = HarborTask(path=path, name=path.name)
    try:
        task.config = read_task_toml(path / "task.toml")
    except (TasksetError, OSError) as exc:
        task.problems.append(str(exc))
        return task
    cfg = task.config
    if cfg.unknown_keys:
        log.info("%s: ignoring unknown task.toml keys: %s", path, ", ".join(cfg.unknown_keys))
    instruction = path / "instruction.md"
    if instruction.is_file():
        task.instruction = strip_canary(instruction.read_text())
    else:
        task.problems.append("no instruction.md")
    if not (path / "tests" / "test.sh").is_file():
        task.problems.append("no tests/test.sh")
    env_dir = path / "environment"
    if (env_dir / "Dockerfile").is_file():
        try:
            task.plan = plan_dockerfile(env_dir)
        except (OSError, ValueError) as exc:
            task.problems.append(f"environment/Dockerfile: {exc}")
    elif any((env_dir / n).exists() for n in ("docker-compose.yaml", "docker-compose.yml")):
        task.problems.append("docker-compose environments are not supported")
    elif cfg.environment.docker_image:
        task.findings.append(f"prebuilt image {cfg.environment.docker_image} not available: "
                             "the host's system directories are used")
    task.findings += task.plan.findings
    task.problems += task.plan.problems
    if task.plan.base_images:
        task.findings.append(f"FROM {task.plan.base_images[-1]} not pulled: the host's "
                             "system directories stand in for the base image")
    task.workdir = cfg.environment.workdir or task.plan.workdir
    env = cfg.environment
    if env.network == "allowlist":
        task.findings.append("network allowlist cannot be enforced here: network is off")
    if cfg.verifier.user is not None:
        task.findings.append(f"[verifier] user {cfg.verifier.user!r}: tests run as the "
                             "workspace's grader identity")
    if cfg.agent.user is not None:
        task.findings.append(f"[agent] user {cfg.agent.user!r}: the agent runs as the "
                             "sandbox user")
    return task


def is_harbor_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a task folder (``task.toml``) or a folder of them."""
    p = Path(path)
    if p.is_file():
        return p.name == "task.toml"
    return p.is_dir() and ((p / "task.toml").is_file() or any(
        (c / "task.toml").is_file() for c in p.iterdir() if c.is_dir()))


def task_dirs(path: Path) -> list[Path]:
    if path.is_file() and path.name == "task.toml":
        return [path.parent]
    if (path / "task.toml").is_file():
        return [path]
    return sorted(c for c in path.iterdir()
                  if c.is_dir() and not c.name.startswith(".") and (c / "task.toml").is_file())


def load(path: str | os.PathLike[str]) -> Taskset:
    """A :class:`~hud_ray.Taskset` from one Harbor task folder or a folder of them.

    A task that cannot be prepared stays in the set: its rollouts end as
    ``infra_error`` rows that say why (and the reason is logged now).
    """
    root = Path(path)
    if not root.exists():
        raise TasksetError(f"{root}: no such file or directory")
    dirs = task_dirs(root)
    if not dirs:
        raise TasksetError(f"{root}: no Harbor task folders (task.toml) here")
    rows, sources = [], {}
    for folder in dirs:
        task = read_task(folder)
        for problem in task.problems:
            log.warning("harbor task %s cannot be prepared: %s", task.name, problem)
        rows.append(task.row())
        sources[task.env_name] = str(task.path / "task.toml")
    name = root.parent.name if root.name == "task.toml" else root.resolve().name
    return Taskset(name, rows, sources=sources)


def module_for(task_toml: Path) -> types.ModuleType:
    """A module holding the task folder's ``env`` and ``tasks`` (what a sandbox imports)."""
    task = read_task(task_toml.parent)
    module = types.ModuleType(f"hud_ray_harbor_{re.sub(r'\W', '_', task.name)}")
    module.env = build_environment(task)  # type: ignore[attr-defined]
    module.tasks = [task.row()]  # type: ignore[attr-defined]
    module.__file__ = str(task_toml)
    return module


def build_environment(task: HarborTask) -> Environment:
    """The environment of one Harbor task: workspace, template, reference solution."""
    env = Environment(name=task.env_name)
    cfg = task.config
    problems = list(task.problems)
    container_env: dict[str, str] = dict(task.plan.env)
    verifier_env: dict[str, str] = {}
    solution_env: dict[str, str] = {}
    if cfg is not None:
        try:
            container_env.update(resolve_env(cfg.environment.env, origin="[environment] env"))
            verifier_env = resolve_env(cfg.verifier.env, origin="[verifier] env")
            solution_env = resolve_env(cfg.solution.env, origin="[solution] env")
        except TasksetError as exc:
            problems.append(str(exc))
    container_env.setdefault("HOME", "/workspace")
    stage = Path(tempfile.gettempdir()) / f"hud-ray-harbor-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    roots = sorted({*task.plan.roots, *HARBOR_DIRS, *_root_of(task.workdir)})
    usable = not problems
    if usable:
        env.workspace(name="shell", mounts={r: stage / r.lstrip("/") for r in roots},
                      workdir=task.workdir, env=container_env,
                      network=cfg is not None and cfg.environment.network == "public")

    @env.initialize
    async def _stage() -> None:
        await asyncio.to_thread(_build_stage, task, stage, roots)

    @env.shutdown
    async def _unstage() -> None:
        await asyncio.to_thread(shutil.rmtree, stage, True)

    @env.template(id=task.name, description=(cfg.task.description if cfg and cfg.task
                                              else "") or f"Harbor task {task.name}")
    async def harbor_task():  # type: ignore[no-untyped-def]
        if problems:
            raise EnvError(f"Harbor task {task.name} cannot be prepared: "
                           f"{'; '.join(problems)}"[:1000], code="harbor_task_unprepared",
                           retryable=False)
        assert cfg is not None
        ws = _workspace()
        await _healthcheck(ws, cfg, container_env, task.workdir)
        yield task.instruction
        grade = await run_verifier(
            ws, task.path / "tests", timeout=cfg.verifier.timeout_sec,
            env={**container_env, "TEST_DIR": "/tests", **verifier_env}, workdir=task.workdir)
        if task.findings:
            grade["info"]["harbor_findings"] = task.findings
        yield grade

    if usable and (task.path / "solution" / "solve.sh").is_file():
        timeout = (cfg.agent.timeout_sec if cfg else None) or NO_LIMIT

        async def solve(*, ctx: Any) -> None:
            shell = await ctx.connect("shell")
            upload = await shell.run("find /solution -mindepth 1 -delete && tar -x -C /solution",
                                     stdin=tar_directory(task.path / "solution"), timeout=120)
            if upload.exit_code != 0:
                raise EnvError(f"could not upload solution/: {upload.stderr.strip()[:300]}",
                               code="harbor_solution_upload")
            env_text = "".join(f"export {k}={shlex.quote(v)}; "
                               for k, v in solution_env.items() if k.isidentifier())
            await shell.run(f"{env_text}bash /solution/solve.sh > /logs/agent/oracle.txt 2>&1",
                            timeout=timeout)

        harbor_task.solution(solve)
    return env


def _root_of(path: str) -> list[str]:
    parts = Path(path).parts
    return ["/" + parts[1]] if len(parts) > 1 and parts[1] != "workspace" else []


def _build_stage(task: HarborTask, stage: Path, roots: list[str]) -> None:
    stage.mkdir(parents=True, exist_ok=True)
    stage.chmod(0o700)
    materialise(task.plan, stage)
    for root in roots:
        (stage / root.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for sub in ("logs/agent", "logs/verifier", task.workdir.lstrip("/")):
        if sub:
            (stage / sub).mkdir(parents=True, exist_ok=True)


def _workspace() -> Any:
    session = current_session()
    if session is None:
        raise EnvError("Harbor tasks run inside a rollout session", code="no_workspace")
    return session.resource("shell")


async def _healthcheck(ws: Any, cfg: TaskConfig, env: dict[str, str], workdir: str) -> None:
    """``[environment.healthcheck]``: the agent starts once a try passes; ``retries``
    consecutive failures fail the rollout (an infrastructure error, retried)."""
    check = cfg.environment.healthcheck
    if check is None:
        return
    from hud_ray.integrations.harbor.verifier import exports

    command = f"cd {shlex.quote(workdir)} && {exports(env)}{check.command}"
    last = ""
    for attempt in range(max(1, check.retries)):
        result = await ws.exec(command, timeout=check.timeout_sec, max_output=2000)
        if result.ok:
            return
        last = (result.stderr or result.stdout).strip()[-300:]
        if attempt + 1 < check.retries:
            await asyncio.sleep(check.interval_sec)
    raise EnvError(f"healthcheck failed after {check.retries} tries: {last}",
                   code="harbor_healthcheck", retryable=True)
