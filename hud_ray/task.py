"""Task rows and tasksets: load, filter, write.

A :class:`Task` is a plain pydantic row; its default slug is HUD's: ``id`` with no
args, else ``id-`` plus the first 8 hex of sha1 over the sorted-JSON args, so rows
exported by HUD load with the same slugs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import sys
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from hud_ray.errors import TasksetError

if TYPE_CHECKING:
    from hud_ray.env import Environment


def canonical_args_json(args: dict[str, Any] | None) -> str:
    """Task args as canonical JSON text (sorted keys): what slugs hash and rows store."""
    return json.dumps(args or {}, sort_keys=True, default=str)


def default_slug(task_id: str, args: dict[str, Any] | None) -> str:
    if not args:
        return task_id
    digest = hashlib.sha1(canonical_args_json(args).encode())
    return f"{task_id}-{digest.hexdigest()[:8]}"


class Task(BaseModel):
    """One concrete task: an environment name, a template id and bound args."""

    model_config = ConfigDict(validate_assignment=True, extra="allow")

    env: str = Field(min_length=1)
    id: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    slug: str = Field(default_factory=lambda data: default_slug(data.get("id", ""),
                                                                data.get("args")),
                      min_length=1)
    columns: dict[str, Any] | None = None
    validation: list[dict[str, Any]] | None = None
    agent_config: dict[str, Any] | None = None

    _env: Environment | None = PrivateAttr(default=None)

    @property
    def environment(self) -> Environment | None:
        """The in-process environment that minted this row, when there is one."""
        return self._env


class Taskset:
    """An ordered, slug-unique collection of task rows.

    ``sources`` maps an environment name to the Python file that defines it, which is
    what a sandbox imports to run that environment's templates.
    """

    def __init__(self, name: str = "taskset", tasks: Iterable[Task] = (),
                 *, sources: dict[str, str] | None = None) -> None:
        self.name = name
        self.tasks: list[Task] = []
        self.sources: dict[str, str] = dict(sources or {})
        seen: dict[str, Task] = {}
        for task in tasks:
            if not isinstance(task, Task):
                raise TasksetError(f"taskset {name!r}: expected Task rows, got "
                                   f"{type(task).__name__}")
            if task.slug in seen:
                if seen[task.slug].model_dump() == task.model_dump():
                    continue  # the same row listed twice (e.g. via two names) is one task
                raise TasksetError(f"taskset {name!r}: duplicate slug {task.slug!r}")
            seen[task.slug] = task
            self.tasks.append(task)

    # ---- collection protocol -------------------------------------------------------
    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __getitem__(self, slug: str) -> Task:
        for task in self.tasks:
            if task.slug == slug:
                return task
        raise KeyError(slug)

    def __repr__(self) -> str:
        return f"<Taskset {self.name!r} tasks={len(self)}>"

    def _derive(self, tasks: Iterable[Task]) -> Taskset:
        return Taskset(self.name, tasks, sources=self.sources)

    def filter(self, slugs: Iterable[str]) -> Taskset:
        """Keep the tasks whose slug (or template id) is listed; unknown names are an error."""
        wanted = list(dict.fromkeys(slugs))
        known = {t.slug for t in self.tasks} | {t.id for t in self.tasks}
        unknown = [s for s in wanted if s not in known]
        if unknown:
            sample = ", ".join(sorted(t.slug for t in self.tasks)[:5])
            raise TasksetError(f"unknown task id(s): {', '.join(unknown)} "
                               f"(known slugs include: {sample})")
        keep = set(wanted)
        return self._derive(t for t in self.tasks if t.slug in keep or t.id in keep)

    def exclude(self, slugs: Iterable[str]) -> Taskset:
        drop = set(slugs)
        return self._derive(t for t in self.tasks if t.slug not in drop and t.id not in drop)

    def digest(self) -> str:
        """A stable hash over the rows (what resume compares)."""
        h = hashlib.sha256()
        for task in self.tasks:
            h.update(json.dumps(task.model_dump(mode="json"), sort_keys=True,
                                default=str).encode())
        return h.hexdigest()[:16]

    @property
    def environments(self) -> dict[str, Environment]:
        envs: dict[str, Environment] = {}
        for task in self.tasks:
            if task.environment is not None:
                envs.setdefault(task.env, task.environment)
        return envs

    # ---- files -----------------------------------------------------------------------
    def to_file(self, path: str | Path) -> None:
        """Write rows as ``.json`` (a list) or ``.jsonl`` (one row per line)."""
        path = Path(path)
        rows = [t.model_dump(mode="json", exclude_none=True) for t in self.tasks]
        if path.suffix == ".jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        elif path.suffix == ".json":
            path.write_text(json.dumps(rows, indent=2) + "\n")
        else:
            raise TasksetError(f"{path}: write .json or .jsonl")

    @classmethod
    def from_file(cls, path: str | Path, *, env_source: str | Path | None = None) -> Taskset:
        """Load from a ``.py`` file or folder, or ``.json``/``.jsonl`` rows."""
        path = Path(path)
        if not path.exists():
            raise TasksetError(f"{path}: no such file or directory")
        if path.is_dir():
            return _load_dir(path)
        if path.suffix == ".py":
            return _load_py(path)
        if path.suffix in (".json", ".jsonl"):
            ts = _load_rows(path)
            if env_source is not None:
                src = _load_py(Path(env_source)) if Path(env_source).is_file() else \
                    _load_dir(Path(env_source))
                ts.sources.update(src.sources)
            return ts
        raise TasksetError(f"{path}: expected a .py, .json or .jsonl file, or a folder")


def _load_rows(path: Path) -> Taskset:
    text = path.read_text()
    try:
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = json.loads(text)
            if isinstance(rows, dict):
                rows = rows.get("tasks", [rows])
    except json.JSONDecodeError as exc:
        raise TasksetError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    tasks = []
    for i, row in enumerate(rows):
        try:
            tasks.append(Task.model_validate(row))
        except Exception as exc:  # pydantic.ValidationError
            first = str(exc).splitlines()
            raise TasksetError(f"{path}: row {i}: {' '.join(first[:3])}") from None
    return Taskset(path.stem, tasks)


_module_counter = itertools.count()


def import_source(path: Path) -> Any:
    """Import a user's Python file as a fresh module, with one-line errors."""
    path = path.resolve()
    name = f"hud_ray_user_{path.stem}_{next(_module_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TasksetError(f"{path}: cannot import")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    parent = str(path.parent)
    added = parent not in sys.path
    if added:
        sys.path.insert(0, parent)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise TasksetError(f"{exc.filename or path}:{exc.lineno}: syntax error: {exc.msg}") \
            from None
    except Exception as exc:
        sys.modules.pop(name, None)
        frame = _user_frame(exc, path)
        raise TasksetError(f"{path}{frame}: {type(exc).__name__}: {exc}") from None
    finally:
        if added:
            sys.path.remove(parent)
    return module


def _user_frame(exc: BaseException, path: Path) -> str:
    for fs in reversed(traceback.extract_tb(exc.__traceback__)):
        if Path(fs.filename).resolve() == path:
            return f":{fs.lineno}"
    return ""


def _collect(module: Any) -> list[Task]:
    from hud_ray.env import Environment

    found: list[Task] = []
    for key, value in vars(module).items():
        if key.startswith("__"):
            continue
        if isinstance(value, Task):
            found.append(value)
        elif isinstance(value, Taskset):
            found.extend(value.tasks)
        elif isinstance(value, list | tuple) and value and all(isinstance(v, Task) for v in value):
            found.extend(value)
        elif isinstance(value, Environment):
            pass
    return found


def _envs_in(module: Any) -> list[Environment]:
    from hud_ray.env import Environment

    return [v for v in vars(module).values() if isinstance(v, Environment)]


def _load_py(path: Path) -> Taskset:
    module = import_source(path)
    tasks = _collect(module)
    sources = {env.name: str(path.resolve()) for env in _envs_in(module)}
    for task in tasks:
        if task.environment is not None:
            sources.setdefault(task.env, str(path.resolve()))
    return Taskset(path.stem, tasks, sources=sources)


def _load_dir(path: Path) -> Taskset:
    files = sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
    rows = sorted(path.glob("*.json*"))
    if not files and not rows:
        raise TasksetError(f"{path}: no .py, .json or .jsonl files in this folder")
    tasks: list[Task] = []
    sources: dict[str, str] = {}
    for file in files:
        ts = _load_py(file)
        tasks.extend(ts.tasks)
        sources.update(ts.sources)
    for file in rows:
        tasks.extend(_load_rows(file).tasks)
    return Taskset(path.name, tasks, sources=sources)
