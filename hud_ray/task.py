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

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from hud_ray.errors import TasksetError

if TYPE_CHECKING:
    from hud_ray.env import Environment


def canonical_args_json(args: dict[str, Any] | None) -> str:
    """Task args as canonical JSON text (sorted keys): what slugs hash and rows store."""
    return json.dumps(args or {}, sort_keys=True, default=str)


def split_task_ids(values: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    """Task ids from options given as ``a,b`` and/or repeated (blanks dropped), or None."""
    if isinstance(values, str):
        values = (values,)
    ids = [v.strip() for value in values or () for v in value.split(",") if v.strip()]
    return ids or None


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
    #: HUD's agent-less verifier row: run after the task's own grade (in the same
    #: session, fed that grade's frame); its grade is the grade of record.
    verifier: Task | None = None

    _env: Environment | None = PrivateAttr(default=None)

    @field_validator("verifier")
    @classmethod
    def _flat_verifier(cls, verifier: Task | None) -> Task | None:
        if verifier is not None and verifier.verifier is not None:
            raise ValueError("nested verifier tasks are not supported")
        return verifier

    @property
    def environment(self) -> Environment | None:
        """The in-process environment that minted this row, when there is one."""
        if self._env is None:
            from hud_ray.env import registered_environment

            return registered_environment(self.env)
        return self._env


class Taskset:
    """An ordered, slug-unique collection of task rows.

    ``sources`` maps an environment name to the Python file that defines it, which is
    what a sandbox imports to run that environment's templates.
    """

    def __init__(self, name: str | None = "taskset", tasks: Iterable[Task] = (),
                 *, sources: dict[str, str] | None = None,
                 taskset_id: str | None = None) -> None:
        self.name = name or "taskset"
        self.taskset_id = taskset_id
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

    def items(self) -> Iterator[tuple[str, Task]]:
        """``(slug, task)`` pairs in order, as HUD's ``Taskset.items``."""
        return iter([(t.slug, t) for t in self.tasks])

    def environment_names(self) -> set[str]:
        """The env names the rows (and their verifier rows) reference."""
        return {t.env for t in self.tasks} | {t.verifier.env for t in self.tasks
                                              if t.verifier is not None}

    def _derive(self, tasks: Iterable[Task]) -> Taskset:
        return Taskset(self.name, tasks, sources=self.sources, taskset_id=self.taskset_id)

    def filter(self, slugs: Iterable[str]) -> Taskset:
        """Keep the tasks whose slug (or template id) is listed; unknown names match nothing.

        As HUD's; :meth:`select` is the strict form that rejects unknown names.
        """
        keep = set(slugs)
        return self._derive(t for t in self.tasks if t.slug in keep or t.id in keep)

    def select(self, slugs: Iterable[str]) -> Taskset:
        """Like :meth:`filter`, but an unknown slug or template id is an error."""
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
    def from_module(cls, source: str | Path) -> Taskset:
        """Load the rows a ``.py`` file (or every ``.py`` in a folder) defines, as HUD's."""
        path = Path(source)
        if not path.exists():
            raise TasksetError(f"{path}: no such file or directory")
        return _load_dir(path, rows=False) if path.is_dir() else _load_py(path)

    @classmethod
    def from_file(cls, path: str | Path, *, env_source: str | Path | None = None) -> Taskset:
        """Load from a ``.py`` file or folder, or ``.json``/``.jsonl`` rows."""
        path = Path(path)
        if not path.exists():
            raise TasksetError(f"{path}: no such file or directory")
        from hud_ray.integrations import harbor

        if harbor.is_harbor_path(path):  # a Harbor task folder, or a folder of them
            return harbor.load(path)
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
    """Import a user's Python file as a fresh module, with one-line errors.

    As when Python runs a script, the file's folder goes (and stays) first on
    ``sys.path``, so a tasks file can ``from env import ...`` a sibling module; a
    sibling module name already imported from another folder is imported afresh.
    ``from hud import ...`` resolves to hud-ray's shim when the real ``hud`` package
    is absent (see :mod:`hud_ray.compat`).
    """
    from hud_ray.compat import install_hud_shim

    path = path.resolve()
    if path.name == "task.toml":  # a Harbor task folder's environment
        from hud_ray.integrations.harbor import module_for

        return module_for(path)
    install_hud_shim()
    name = f"hud_ray_user_{path.stem}_{next(_module_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TasksetError(f"{path}: cannot import")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    parent = str(path.parent)
    if parent in sys.path:
        sys.path.remove(parent)
    sys.path.insert(0, parent)
    _forget_foreign_siblings(path.parent)
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
    return module


def _forget_foreign_siblings(folder: Path) -> None:
    """Drop cached user modules that a ``.py`` in ``folder`` should now provide."""
    system = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    for file in folder.glob("*.py"):
        mod = sys.modules.get(file.stem)
        origin = getattr(mod, "__file__", None)
        if mod is None or origin is None or Path(origin).resolve() == file.resolve():
            continue
        where = Path(origin).resolve()
        if any(where.is_relative_to(p) for p in system):
            continue  # never evict the standard library or installed packages
        del sys.modules[file.stem]


def _user_frame(exc: BaseException, path: Path) -> str:
    for fs in reversed(traceback.extract_tb(exc.__traceback__)):
        if Path(fs.filename).resolve() == path:
            return f":{fs.lineno}"
    return ""


def _collect(module: Any) -> list[Task]:
    from hud_ray.env import Environment

    found: list[Task] = []
    seen: set[int] = set()
    for key, value in vars(module).items():
        if key.startswith("_") or isinstance(value, Environment):
            continue
        if isinstance(value, Task):
            items: list[Any] = [value]
        elif isinstance(value, Taskset):
            items = list(value.tasks)
        elif isinstance(value, list | tuple):
            items = [v for v in value if isinstance(v, Task)]
        else:
            continue
        for task in items:
            if id(task) not in seen:  # the same row bound to two names is one row
                seen.add(id(task))
                found.append(task)
    return found


def _envs_in(module: Any) -> list[Environment]:
    from hud_ray.env import Environment

    return [v for v in vars(module).values() if isinstance(v, Environment)]


def _load_py(path: Path) -> Taskset:
    module = import_source(path)
    tasks = _collect(module)
    if not tasks and not _envs_in(module) and _uses_real_hud(module):
        raise TasksetError(f"{path}: its tasks are the installed `hud` SDK's objects, which "
                           "hud-ray cannot run; uninstall `hud` from hud-ray's environment "
                           "(hud-ray then serves `from hud import ...` itself)")
    sources = {env.name: str(path.resolve()) for env in _envs_in(module)}
    for task in tasks:
        for row in (task, task.verifier):
            if row is not None and row._env is not None:
                sources.setdefault(row.env, str(path.resolve()))
    return Taskset(path.stem, tasks, sources=sources)


def _uses_real_hud(module: Any) -> bool:
    for value in vars(module).values():
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            origin = getattr(type(item), "__module__", "") or ""
            if origin == "hud" or origin.startswith("hud."):
                return True
    return False


def _load_dir(path: Path, *, rows: bool = True) -> Taskset:
    files = sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
    rows_files = sorted(path.glob("*.json*")) if rows else []
    return _load_files(path, files, rows_files)


def _load_files(path: Path, files: list[Path], rows: list[Path]) -> Taskset:
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
