"""The task table: a taskset's rows as one columnar Arrow table.

A run builds it once in the driver (streaming, so the rows never sit there as
``Task`` objects), puts it in Ray's object store once, and every harness actor reads
the same copy zero-copy, decoding a :class:`~hud_ray.task.Task` by index when a
rollout needs it (a small cache keeps a group's repeats from decoding again).

Columns: ``slug``, ``env`` and ``id`` (dictionary-encoded), ``args`` (canonical JSON),
and, only when some row sets them, ``columns``, ``validation``, ``agent_config``,
``verifier`` and ``extra`` (JSON text of the remaining fields, in JSON mode).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

import pyarrow as pa
import pyarrow.compute as pc

from hud_ray import task as _task  # a cycle: hud_ray.task builds TaskTables

if TYPE_CHECKING:
    from hud_ray.env import Environment
    from hud_ray.task import Task

CORE = ("slug", "env", "id", "args")
OPTIONAL = ("columns", "validation", "agent_config", "verifier", "extra")
_FIELDS = frozenset(CORE) | frozenset(OPTIONAL[:-1])
_BATCH_ROWS = 8_192
_WINDOW = 8_192
#: Task tables allocate from the C allocator, not Arrow's default (mimalloc) pool: the
#: build's short-lived buffers are then returned to the OS (see :func:`trim`) instead
#: of lingering in the driver (measured: ~1/3 less driver memory at 1M rows).
POOL = pa.system_memory_pool()


def encode(task: Task) -> tuple[str, str, str, str, list[str | None]]:
    """One task as column values: core strings, then the optional JSON texts."""
    dump = task.model_dump(mode="json")
    extra = {k: v for k, v in dump.items() if k not in _FIELDS}
    optional = [None if dump[name] is None else json.dumps(dump[name])
                for name in OPTIONAL[:-1]]
    optional.append(json.dumps(extra) if extra else None)
    return (dump["slug"], dump["env"], dump["id"], _task.canonical_args_json(dump["args"]),
            optional)


class TaskTable(Sequence["Task"]):
    """Immutable task rows in Arrow columns; ``table[i]`` decodes one :class:`Task`.

    ``envs`` (driver only) maps env names to the in-process environments that minted
    the rows, so decoded rows point at them as the originals did.
    """

    def __init__(self, table: pa.Table, *, envs: dict[str, Environment] | None = None,
                 cache_size: int = 1024) -> None:
        missing = [c for c in CORE if c not in table.column_names]
        if missing:
            raise ValueError(f"task table lacks column(s) {', '.join(missing)}")
        self.arrow = table
        self.envs: dict[str, Environment] = dict(envs or {})
        self._cache: OrderedDict[int, Task] = OrderedDict()
        self._cache_size = cache_size

    # ---- building -------------------------------------------------------------------------
    @classmethod
    def build(cls, tasks: Iterable[Task], *, batch_rows: int = _BATCH_ROWS) -> TaskTable:
        """Encode rows in batches; only one batch is ever held as Python values."""
        batches: list[pa.Table] = []
        envs: dict[str, Environment] = {}
        cols: dict[str, list[Any]] = {c: [] for c in (*CORE, *OPTIONAL)}

        def flush() -> None:
            if cols["slug"]:
                batches.append(pa.table({c: _column(c, v) for c, v in cols.items()}))
                for values in cols.values():
                    values.clear()

        for task in tasks:
            slug, env, tid, args, optional = encode(task)
            for row in (task, task.verifier):
                if row is not None and row._env is not None:
                    envs.setdefault(row.env, row._env)
            cols["slug"].append(slug)
            cols["env"].append(env)
            cols["id"].append(tid)
            cols["args"].append(args)
            for name, value in zip(OPTIONAL, optional, strict=True):
                cols[name].append(value)
            if len(cols["slug"]) >= batch_rows:
                flush()
        flush()
        return cls(_finish(batches), envs=envs)

    @classmethod
    def concat(cls, tables: Sequence[TaskTable]) -> TaskTable:
        """The rows of ``tables`` one after another (the first table's env wins)."""
        envs: dict[str, Environment] = {}
        for t in tables:
            for name, env in t.envs.items():
                envs.setdefault(name, env)
        if not tables:
            return cls(_finish([]))
        return cls(pa.concat_tables([t.arrow for t in tables], promote_options="default",
                                    memory_pool=POOL), envs=envs)

    # ---- sequence protocol ----------------------------------------------------------------
    def __len__(self) -> int:
        return self.arrow.num_rows

    @overload
    def __getitem__(self, index: int) -> Task: ...
    @overload
    def __getitem__(self, index: slice) -> list[Task]: ...

    def __getitem__(self, index: int | slice) -> Task | list[Task]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"task index {index} out of range ({n} rows)")
        task = self._cache.get(index)
        if task is not None:
            self._cache.move_to_end(index)
            return task
        task = self._decode(self.arrow.slice(index, 1).to_pylist()[0])
        self._cache[index] = task
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return task

    def __iter__(self) -> Iterator[Task]:
        for row in self.rows():
            yield self._decode(row)

    def __reduce__(self) -> tuple[Any, ...]:
        return (TaskTable, (self.arrow,))

    def __repr__(self) -> str:
        return f"<TaskTable rows={len(self)} bytes={self.nbytes}>"

    # ---- columns --------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes of the Arrow buffers (what the object store holds)."""
        return int(self.arrow.nbytes)

    def value(self, column: str, index: int) -> Any:
        """One cell (``None`` for an optional column no row sets)."""
        if column not in self.arrow.column_names:
            return None
        return self.arrow.column(column)[index].as_py()

    def args_json(self, index: int) -> str:
        """The row's args as canonical JSON (what rollout rows store)."""
        return str(self.value("args", index))

    def column_values(self, column: str) -> Iterator[Any]:
        """A column's values in order, a window at a time (never all as Python objects)."""
        if column not in self.arrow.column_names:
            yield from (None for _ in range(len(self)))
            return
        col = self.arrow.column(column)
        for start in range(0, len(col), _WINDOW):
            yield from col.slice(start, _WINDOW).to_pylist()

    def slugs(self) -> Iterator[str]:
        return self.column_values("slug")

    def rows(self) -> Iterator[dict[str, Any]]:
        """Raw rows (column name -> cell), a window at a time."""
        for batch in self.arrow.to_batches(max_chunksize=_WINDOW):
            yield from batch.to_pylist()

    def index_of(self, slug: str) -> int:
        """Row index of ``slug``, or -1."""
        return int(pc.index(self.arrow.column("slug"), pa.scalar(slug, pa.string())).as_py())

    def mask(self, names: Iterable[str]) -> pa.ChunkedArray:
        """True for rows whose slug or template id is in ``names``."""
        values = pa.array(list(dict.fromkeys(names)), pa.string())
        return pc.or_(pc.is_in(self.arrow.column("slug"), value_set=values),
                      pc.is_in(self.arrow.column("id"), value_set=values))

    def take(self, mask: pa.ChunkedArray | pa.Array) -> TaskTable:
        kept = pc.filter(self.arrow, mask, memory_pool=POOL)
        return TaskTable(kept.combine_chunks(memory_pool=POOL), envs=self.envs,
                         cache_size=self._cache_size)

    def unknown(self, names: Iterable[str]) -> list[str]:
        """Those of ``names`` that are neither a slug nor a template id here."""
        wanted = pa.array(list(dict.fromkeys(names)), pa.string())
        known = pc.or_(pc.is_in(wanted, value_set=self.arrow.column("slug").combine_chunks()),
                       pc.is_in(wanted, value_set=_plain(self.arrow.column("id"))))
        return [w for w, k in zip(wanted.to_pylist(), known.to_pylist(), strict=True) if not k]

    def digest(self) -> str:
        """sha256 over each row's full JSON-mode dump with sorted keys (as Taskset.digest
        always hashed), first 16 hex."""
        h = hashlib.sha256()
        for row in self.rows():
            h.update(json.dumps(_dump(row), sort_keys=True, default=str).encode())
        return h.hexdigest()[:16]

    # ---- decoding -------------------------------------------------------------------------
    def _decode(self, row: dict[str, Any]) -> Task:
        from hud_ray.task import Task

        task = Task.model_validate(_dump(row))
        if self.envs:
            for r in (task, task.verifier):
                if r is not None:
                    r._env = self.envs.get(r.env)
        return task


def _dump(row: dict[str, Any]) -> dict[str, Any]:
    """A table row back as the Task's JSON-mode dump."""
    out: dict[str, Any] = {"env": row["env"], "id": row["id"], "slug": row["slug"],
                           "args": json.loads(row["args"])}
    for name in OPTIONAL[:-1]:
        text = row.get(name)
        out[name] = None if text is None else json.loads(text)
    extra = row.get("extra")
    if extra is not None:
        out.update(json.loads(extra))
    return out


def _column(name: str, values: list[Any]) -> pa.Array:
    array = pa.array(values, pa.string(), memory_pool=POOL)
    return pc.dictionary_encode(array, memory_pool=POOL) if name in ("env", "id") else array


def trim() -> None:
    """Hand freed heap memory back to the OS (glibc; a no-op elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _plain(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return col.dictionary_decode() if pa.types.is_dictionary(col.type) else col


def _finish(batches: list[pa.Table]) -> pa.Table:
    """One table from the encoded batches (kept as chunks: no copy), optional columns
    that no row sets dropped."""
    if not batches:
        return pa.table({c: _column(c, []) for c in CORE})
    table = pa.concat_tables(batches, memory_pool=POOL)
    batches.clear()
    for name in OPTIONAL:
        if table.column(name).null_count == table.num_rows:
            table = table.drop_columns([name])
    trim()
    return table


@dataclass(frozen=True, slots=True)
class SharedTaskTable:
    """A task table in Ray's object store: what each harness actor is handed.

    The ref travels nested in this object, so Ray passes the reference itself (every
    actor gets the same one) and the actor reads the table with ``ray.get``.
    """

    ref: Any
    rows: int
    nbytes: int


def process_memory() -> dict[str, int]:
    """This process's memory from ``/proc/self/status`` in KiB: ``VmRSS``, ``VmHWM``
    (peak RSS), ``RssAnon`` (private), ``RssShmem`` (shared, e.g. the object store)."""
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                    out[key] = int(rest.split()[0])
    except OSError:
        pass
    return out
