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
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from hud_ray import tasktable
from hud_ray.errors import TasksetError
from hud_ray.tasktable import TaskTable

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
    """An ordered, slug-unique collection of task rows, held as one :class:`TaskTable`.

    Rows are encoded as they arrive (``tasks`` may be a generator), so a large taskset
    costs its compact table, not a ``Task`` object per row; iterating or indexing
    decodes rows on demand.

    ``sources`` maps an environment name to the Python file that defines it, which is
    what a sandbox imports to run that environment's templates.
    """

    def __init__(self, name: str | None = "taskset", tasks: Iterable[Task] = (),
                 *, sources: dict[str, str] | None = None,
                 taskset_id: str | None = None, table: TaskTable | None = None) -> None:
        self.name = name or "taskset"
        self.taskset_id = taskset_id
        self.sources: dict[str, str] = dict(sources or {})
        if table is None:
            table = _dedupe(self.name, TaskTable.build(_checked(self.name, tasks)))
        self.table = table
        self._digest: str | None = None

    @property
    def tasks(self) -> TaskTable:
        """The rows, as a read-only sequence that decodes a :class:`Task` per index."""
        return self.table

    # ---- collection protocol -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.table)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.table)

    def __getitem__(self, slug: str) -> Task:
        index = self.table.index_of(slug)
        if index < 0:
            raise KeyError(slug)
        return self.table[index]

    def __repr__(self) -> str:
        return f"<Taskset {self.name!r} tasks={len(self)}>"

    def items(self) -> Iterator[tuple[str, Task]]:
        """``(slug, task)`` pairs in order, as HUD's ``Taskset.items``."""
        return ((t.slug, t) for t in self.table)

    def environment_names(self) -> set[str]:
        """The env names the rows (and their verifier rows) reference."""
        names = set(self._env_column())
        for text in self.table.column_values("verifier"):
            if text is not None:
                names.add(json.loads(text)["env"])
        return names

    def _env_column(self) -> list[str]:
        """Distinct env names of the rows, in order of first use."""
        col = self.table.arrow.column("env")
        return pc.unique(col.cast(pa.string()) if len(col) else col).to_pylist()

    def _derive(self, keep: Any) -> Taskset:
        return Taskset(self.name, sources=self.sources, taskset_id=self.taskset_id,
                       table=self.table.take(keep))

    def filter(self, slugs: Iterable[str]) -> Taskset:
        """Keep the tasks whose slug (or template id) is listed; unknown names match nothing.

        As HUD's; :meth:`select` is the strict form that rejects unknown names.
        """
        return self._derive(self.table.mask(slugs))

    def select(self, slugs: Iterable[str]) -> Taskset:
        """Like :meth:`filter`, but an unknown slug or template id is an error."""
        wanted = list(dict.fromkeys(slugs))
        unknown = self.table.unknown(wanted)
        if unknown:
            first = pc.sort_indices(self.table.arrow.column("slug"))[:5]
            sample = ", ".join(self.table.arrow.column("slug").take(first).to_pylist())
            raise TasksetError(f"unknown task id(s): {', '.join(unknown)} "
                               f"(known slugs include: {sample})")
        return self._derive(self.table.mask(wanted))

    def exclude(self, slugs: Iterable[str]) -> Taskset:
        return self._derive(pc.invert(self.table.mask(slugs)))

    def digest(self) -> str:
        """A stable hash over the rows (what resume compares)."""
        if self._digest is None:
            self._digest = self.table.digest()
        return self._digest

    @property
    def environments(self) -> dict[str, Environment]:
        from hud_ray.env import registered_environment

        envs: dict[str, Environment] = {}
        for name in self._env_column():
            env = self.table.envs.get(name) or registered_environment(name)
            if env is not None:
                envs[name] = env
        return envs

    # ---- files -----------------------------------------------------------------------
    def to_file(self, path: str | Path) -> None:
        """Write rows as ``.json`` (a list) or ``.jsonl`` (one row per line)."""
        path = Path(path)
        if path.suffix not in (".json", ".jsonl"):
            raise TasksetError(f"{path}: write .json or .jsonl")
        rows = (t.model_dump(mode="json", exclude_none=True) for t in self.table)
        with path.open("w") as f:
            if path.suffix == ".jsonl":
                for r in rows:
                    f.write(json.dumps(r) + "\n")
            else:
                f.write(json.dumps(list(rows), indent=2) + "\n")

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
    """Rows of a ``.json`` list or a ``.jsonl`` file (read a line at a time)."""
    return Taskset(path.stem, _validated(path, _raw_rows(path)))


def _raw_rows(path: Path) -> Iterator[dict[str, Any]]:
    if path.suffix != ".jsonl":
        try:
            rows = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise TasksetError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        if isinstance(rows, dict):
            rows = rows.get("tasks", [rows])
        yield from rows
        return
    with path.open() as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise TasksetError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from None


def _validated(path: Path, rows: Iterable[Any]) -> Iterator[Task]:
    for i, row in enumerate(rows):
        try:
            yield Task.model_validate(row)
        except Exception as exc:  # pydantic.ValidationError
            first = str(exc).splitlines()
            raise TasksetError(f"{path}: row {i}: {' '.join(first[:3])}") from None


def _checked(name: str, tasks: Iterable[Any]) -> Iterator[Task]:
    for task in tasks:
        if not isinstance(task, Task):
            raise TasksetError(f"taskset {name!r}: expected Task rows, got "
                               f"{type(task).__name__}")
        yield task


def _dedupe(name: str, table: TaskTable) -> TaskTable:
    """Drop repeats of an identical row (e.g. one listed via two names); a slug that
    names two different rows is an error."""
    slugs = table.arrow.column("slug")
    distinct = pc.count_distinct(slugs, memory_pool=tasktable.POOL).as_py()
    tasktable.trim()
    if distinct == len(table):
        return table
    counts = pc.value_counts(slugs)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
    drop = set()
    for slug in repeated.to_pylist():
        where = pc.indices_nonzero(pc.equal(slugs, slug)).to_pylist()
        first = table.arrow.slice(where[0], 1).to_pylist()[0]
        for i in where[1:]:
            if table.arrow.slice(i, 1).to_pylist()[0] != first:
                raise TasksetError(f"taskset {name!r}: duplicate slug {slug!r}")
            drop.add(i)
    keep = pa.array([i not in drop for i in range(len(table))])
    return table.take(keep)


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


def _collect(module: Any) -> Iterator[Task]:
    """The module's Task rows: single rows, lists/tuples of them, Tasksets, and
    generators (consumed here, a row at a time, so a huge taskset never sits in
    memory as Task objects)."""
    from hud_ray.env import Environment

    for key, value in list(vars(module).items()):
        if key.startswith("_") or isinstance(value, Environment):
            continue
        if isinstance(value, Task):
            yield value
        elif isinstance(value, Taskset):
            yield from value.tasks
        elif isinstance(value, list | tuple | types.GeneratorType):
            yield from (v for v in value if isinstance(v, Task))


def _envs_in(module: Any) -> list[Environment]:
    from hud_ray.env import Environment

    return [v for v in vars(module).values() if isinstance(v, Environment)]


def _load_py(path: Path) -> Taskset:
    module = import_source(path)
    try:
        taskset = Taskset(path.stem, _collect(module))
    except TasksetError:
        raise
    except Exception as exc:  # a generator of rows that fails part way
        frame = _user_frame(exc, path.resolve())
        raise TasksetError(f"{path}{frame}: {type(exc).__name__}: {exc}") from None
    if not len(taskset) and not _envs_in(module) and _uses_real_hud(module):
        raise TasksetError(f"{path}: its tasks are the installed `hud` SDK's objects, which "
                           "hud-ray cannot run; uninstall `hud` from hud-ray's environment "
                           "(hud-ray then serves `from hud import ...` itself)")
    where = str(path.resolve())
    taskset.sources = {env.name: where for env in _envs_in(module)}
    for name in taskset.table.envs:  # rows minted by an environment this file imports
        taskset.sources.setdefault(name, where)
    return taskset


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
    parts = [_load_py(file) for file in files] + [_load_rows(file) for file in rows]
    sources: dict[str, str] = {}
    for part in parts:
        sources.update(part.sources)
    table = TaskTable.concat([part.table for part in parts])
    return Taskset(path.name, sources=sources, table=_dedupe(path.name, table))
