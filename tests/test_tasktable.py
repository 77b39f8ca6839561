"""The task table: exact round trips, tasksets backed by it, and one shared copy per run
in Ray's object store (every harness actor, replacements included, reads the same ref)."""

from __future__ import annotations

import hashlib
import json
import pickle
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from hud_ray import Task, Taskset, read_rollouts
from hud_ray.engine import EvalConfig
from hud_ray.engine.driver import Driver
from hud_ray.engine.plan import count_plan, iter_plan
from hud_ray.errors import TasksetError
from hud_ray.records import rollout_key
from hud_ray.tasktable import TaskTable

ODD = [
    Task(env="e", id="plain"),
    Task(env="e", id="plain", args={"x": 1}),
    Task(env="ënv-☃", id="ünï", args={"wörd": "straw🍓berry", "z": None, "a": [1, 2.5, "x"]}),
    Task(env="e", id="nested", args={"deep": {"b": [{"c": {"d": [None, True, -0.5]}}],
                                              "a": {}}, "empty": [], "big": 2**62},
         slug="my custom slug/with spaces"),
    Task(env="e", id="full", args={"k": "v"}, columns={"split": "train", "n": 3},
         validation=[{"answer": "4", "reward": 1.0}], agent_config={"max_steps": 3},
         verifier=Task(env="v", id="check", args={"t": "ü"}, columns={"c": 1})),
    Task(env="e", id="extra", args={"q": "a\nb\t\"c\""}, category="math", tags=["x", "y"]),
    Task(env="e", id="zeros", args={"s": "", "n": 0, "f": 0.0}, columns={}, validation=[],
         agent_config={}),
]


def old_digest(tasks) -> str:
    """Taskset.digest as it was computed over a list of Task objects."""
    h = hashlib.sha256()
    for task in tasks:
        h.update(json.dumps(task.model_dump(mode="json"), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def test_round_trip_is_exact_for_odd_rows():
    table = TaskTable.build(ODD)
    assert len(table) == len(ODD)
    for i, task in enumerate(ODD):
        back = table[i]
        assert back == task
        assert back.model_dump() == task.model_dump()
        assert back.model_extra == task.model_extra
        assert table.args_json(i) == json.dumps(task.args, sort_keys=True)
    assert [t.slug for t in table] == [t.slug for t in ODD]
    assert list(table.slugs()) == [t.slug for t in ODD]
    assert table[-1] == ODD[-1] and table[1:3] == ODD[1:3]
    with pytest.raises(IndexError):
        table[len(ODD)]
    again = pickle.loads(pickle.dumps(table))  # what crosses to actors
    assert list(again) == ODD
    assert table.digest() == old_digest(ODD)  # resume of runs started before the table


def test_unused_optional_columns_cost_nothing():
    table = TaskTable.build(Task(env="e", id="t", args={"i": i}) for i in range(100))
    assert table.arrow.column_names == ["slug", "env", "id", "args"]
    assert table.value("verifier", 3) is None and table[3].verifier is None
    assert TaskTable.build([]).arrow.num_rows == 0


def test_decoded_rows_keep_their_environment(fixtures):
    ts = Taskset.from_file(fixtures / "quickstart.py")
    env = next(iter(ts.environments.values()))
    assert all(t.environment is env for t in ts)


def test_taskset_dedupes_and_rejects_conflicting_slugs():
    a = Task(env="e", id="t", args={"i": 1})
    ts = Taskset("x", [a, Task(env="e", id="u"), a.model_copy()])
    assert [t.id for t in ts] == ["t", "u"]
    with pytest.raises(TasksetError, match="duplicate slug 'same'"):
        Taskset("x", [Task(env="e", id="t", slug="same"), Task(env="e", id="u", slug="same")])
    with pytest.raises(TasksetError, match="expected Task rows, got dict"):
        Taskset("x", [a, {"env": "e"}])


def test_selection_digest_and_lookup_on_the_table():
    ts = Taskset("x", ODD)
    assert ts.digest() == old_digest(ODD)
    assert ts["my custom slug/with spaces"] == ODD[3]
    with pytest.raises(KeyError):
        ts["nope"]
    picked = ts.select(["full", "plain"])
    assert [t.id for t in picked] == ["plain", "plain", "full"]
    assert picked.digest() == old_digest([ODD[0], ODD[1], ODD[4]])
    assert [t.id for t in ts.filter(["extra", "nope"])] == ["extra"]
    assert [t.id for t in ts.exclude(["plain"])] == [t.id for t in ODD[2:]]
    with pytest.raises(TasksetError, match=r"unknown task id.*: nope"):
        ts.select(["plain", "nope"])
    assert ts.environment_names() == {"e", "ënv-☃", "v"}


def test_plan_reads_slugs_from_the_table():
    ts = Taskset("x", ODD)
    done = {rollout_key(ODD[2].slug, 1), rollout_key(ODD[4].slug, 0)}
    specs = list(iter_plan(ts, 2, "run", done=done, attempts={rollout_key(ODD[0].slug, 0): 1}))
    assert count_plan(ts, 2, done) == len(specs) == 2 * len(ODD) - 2
    assert specs[0].attempt == 2 and specs[1].attempt == 0
    assert all(ts.tasks[s.task_index].slug == s.slug for s in specs)


def test_generator_rows_and_streamed_jsonl(tmp_path):
    src = tmp_path / "gen.py"
    src.write_text(textwrap.dedent("""
        from hud_ray import Environment
        env = Environment(name="gen")

        @env.template()
        async def echo(i: int = 0):
            answer = yield f"Say {i}"
            yield 1.0 if answer == str(i) else 0.0

        tasks = (echo(i=i) for i in range(500))
    """))
    ts = Taskset.from_file(src)
    assert len(ts) == 500 and ts.sources == {"gen": str(src.resolve())}
    rows = tmp_path / "rows.jsonl"
    ts.to_file(rows)
    again = Taskset.from_file(rows)
    assert again.digest() == ts.digest()
    assert [t.model_dump() for t in again] == [t.model_dump() for t in ts]
    bad = tmp_path / "bad_gen.py"
    bad.write_text(src.read_text().replace("range(500))", "range(500) if 1 / (250 - i))"))
    with pytest.raises(TasksetError, match=r"bad_gen.py:\d+: ZeroDivisionError"):
        Taskset.from_file(bad)
    rows.write_text(rows.read_text() + "\n{broken\n")
    with pytest.raises(TasksetError, match=r"rows.jsonl:502: invalid JSON"):
        Taskset.from_file(rows)


# ---- the shared table on real Ray ------------------------------------------------------------

TASKS = '''
import asyncio
import os

from hud_ray import Environment

env = Environment(name="tt")


@env.template()
async def die(marker: str = ""):
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)  # a real harness actor death
    answer = yield "Say ok"
    yield 1.0 if answer == "ok" else 0.0


@die.solution
async def _(marker: str = ""):
    return "ok"


@env.template()
async def nap(i: int = 0, seconds: float = 0.0):
    await asyncio.sleep(seconds)
    answer = yield f"Say {i}"
    yield 1.0 if answer == str(i) else 0.0


@nap.solution
async def _(i: int = 0, seconds: float = 0.0):
    return str(i)


N = int(os.environ.get("TT_ROWS", "40"))
MARKER = os.environ.get("TT_MARKER", "")
SECONDS = float(os.environ.get("TT_SECONDS", "0"))
tasks = ([die(marker=MARKER)] if MARKER else []) + [nap(i=i, seconds=SECONDS) for i in range(N)]
'''


def _source(tmp_path: Path, monkeypatch, rows: int, *, marker: str = "",
            seconds: float = 0.0) -> Path:
    src = tmp_path / "tasks.py"
    src.write_text(TASKS)
    # the driver reads these; harness actors import the file too (in this process's env)
    monkeypatch.setenv("TT_ROWS", str(rows))
    monkeypatch.setenv("TT_MARKER", marker)
    monkeypatch.setenv("TT_SECONDS", str(seconds))
    return src


class Enough(Exception):
    """Raised from the progress callback to end a run early."""


class Watch:
    """Asks every harness actor the driver holds which task table it was handed; with
    ``stop_after``, ends the run once that many actors answered."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.driver: Driver | None = None
        self.stats: dict[str, dict] = {}
        self.stop_after = stop_after
        self.current: list[str] = []  # the driver's actors at the latest callback

    def __call__(self, progress) -> None:
        import ray

        self.current = [a._actor_id.hex() for a in self.driver._actors]
        for actor in list(self.driver._actors):
            key = actor._actor_id.hex()
            if key in self.stats:
                continue
            try:
                stats = ray.get(actor.stats.remote(), timeout=30)
                stats["pid"] = ray.get(actor.ready.remote(), timeout=30)["pid"]
            except ray.exceptions.RayError:
                continue  # died and not yet replaced
            self.stats[key] = stats
        if self.stop_after is not None and len(self.stats) >= self.stop_after:
            raise Enough


async def _run(config: EvalConfig, stop_after: int | None = None
               ) -> tuple[Driver, Watch, list[dict]]:
    watch = Watch(stop_after)
    driver = Driver(config, on_progress=watch)
    watch.driver = driver
    try:
        result = await driver.run()
    except Enough:
        return driver, watch, []
    return driver, watch, read_rollouts(result.out_dir).to_pylist()


@pytest.mark.ray
async def test_every_harness_actor_reads_the_one_shared_table(ray_session, tmp_path,
                                                             monkeypatch):
    src = _source(tmp_path, monkeypatch, 60, seconds=0.05)
    driver, watch, rows = await _run(EvalConfig(source=str(src), agent="oracle", workers=3,
                                                max_concurrent=6, out=str(tmp_path / "run")))
    assert len(rows) == 60 and all(r["status"] == "ok" and r["reward"] == 1.0 for r in rows)
    assert len(watch.stats) == 3
    refs = {s["task_table"]["ref"] for s in watch.stats.values()}
    assert refs == {driver._table.ref.hex()}  # one object, not a copy per actor
    assert all(s["task_table"]["rows"] == 60 for s in watch.stats.values())
    assert {r["args"] for r in rows} == {json.dumps({"i": i, "seconds": 0.05}, sort_keys=True)
                                         for i in range(60)}


@pytest.mark.ray
async def test_a_replaced_harness_actor_reads_the_same_table(ray_session, tmp_path,
                                                            monkeypatch, caplog):
    marker = tmp_path / "died"
    src = _source(tmp_path, monkeypatch, 30, marker=str(marker), seconds=0.2)
    driver, watch, rows = await _run(EvalConfig(source=str(src), agent="oracle", workers=1,
                                                max_concurrent=3, max_retries=2,
                                                out=str(tmp_path / "run")))
    assert marker.exists()
    lost = [r for r in rows if not r["final"]]
    assert lost and all(r["error_type"] == "actor_lost" for r in lost)
    final = Counter(r["rollout_key"] for r in rows if r["final"])
    assert len(final) == 31 and set(final.values()) == {1}
    assert all(r["status"] == "ok" for r in rows if r["final"])
    assert "replacing harness actor 0" in caplog.text
    (replacement,) = watch.current  # the actor that finished the run
    assert replacement in watch.stats
    assert {s["task_table"]["ref"] for s in watch.stats.values()} == {driver._table.ref.hex()}


def _private_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon")


@pytest.mark.ray
async def test_harness_actor_memory_does_not_grow_with_the_table(ray_session, tmp_path,
                                                                monkeypatch):
    # rows from a .jsonl, the environment from --env: the actors import no rows
    # themselves, so whatever they hold of the table came from the run
    env = _source(tmp_path, monkeypatch, 0)
    private = {}
    for rows in (100, 40_000):
        src = tmp_path / f"rows{rows}.jsonl"
        src.write_text("".join(json.dumps({"env": "tt", "id": "nap", "args": {"i": i}}) + "\n"
                               for i in range(rows)))
        driver, watch, _ = await _run(EvalConfig(source=str(src), env_source=str(env),
                                                 agent="oracle", workers=1,
                                                 out=str(tmp_path / f"run{rows}")),
                                      stop_after=1)
        (stats,) = watch.stats.values()
        private[rows] = _private_mib(stats["pid"])
    # before the shared table, each actor held its own 40k Task objects (+60 MiB here)
    assert private[40_000] - private[100] < 20, private
