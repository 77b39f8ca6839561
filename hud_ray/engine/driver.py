"""The driver: plan rollouts, keep at most ``max_concurrent`` in flight on harness
actors, retry infrastructure failures, and stream every attempt to the sink.

Rollouts travel to harness actors in batches (one actor call per batch) and come
back as streamed batches of rows, so a rollout costs a fraction of an actor round
trip. Every spec that leaves the driver comes back as a row: a finished rollout, or
a typed failure if its actor died, wedged, or the run was cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from hud_ray.engine._placement import spawn_harness
from hud_ray.engine.config import EvalConfig
from hud_ray.engine.plan import RolloutSpec, count_plan, iter_plan
from hud_ray.engine.resume import resume_config
from hud_ray.engine.shipping import Shipment, job_shipment, plan_shipment, upload_errors
from hud_ray.engine.summary import summarize
from hud_ray.errors import (
    ConfigError,
    HudRayError,
    PlacementError,
    RecordError,
    RunInterrupted,
    TasksetError,
)
from hud_ray.placement import describe
from hud_ray.records import RolloutRecord
from hud_ray.rundir import RunDir
from hud_ray.sink import MANIFEST, SUMMARY, ArrowSink, ResumeState, read_manifest, read_rollouts
from hud_ray.task import Taskset
from hud_ray.tasktable import SharedTaskTable, TaskTable, trim
from hud_ray.types import Status

log = logging.getLogger(__name__)

#: Extra seconds a worker gets past the rollout timeout before it counts as wedged.
WEDGE_GRACE_S = 30.0


@dataclass
class Progress:
    """Live counters the CLI renders."""

    total: int
    done: int = 0
    failed: int = 0
    retried: int = 0
    in_flight: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 else None


@dataclass
class EvalResult:
    """What a run returns: where its rows are, and its summary."""

    run_id: str
    out_dir: Path | str  # a Path for a local run, else the URI it was given as
    summary: dict[str, Any]

    @property
    def all_failed(self) -> bool:
        """True when the run has rollouts and not one of them finished ``ok``."""
        return bool(self.summary.get("all_failed"))

    def table(self) -> Any:
        return read_rollouts(self.out_dir)


def load_taskset(config: EvalConfig) -> Taskset:
    taskset = Taskset.from_file(config.source, env_source=config.env_source)
    if config.task_ids:
        taskset = taskset.select(config.task_ids)
    if len(taskset) == 0:
        raise TasksetError(f"{config.source}: no tasks found (define module-level Task rows, "
                           "a list of them, or a Taskset)")
    missing = sorted({t.env for t in taskset} - set(taskset.sources))
    if missing:
        raise TasksetError(f"no environment source for env(s) {', '.join(missing)}; pass "
                           "--env FILE (the .py that defines them)")
    return taskset


def _ensure_ray(address: str | None, shipment: Shipment | None = None) -> bool:
    """Connect to Ray (or start it in-process); returns whether we started it."""
    import ray

    if ray.is_initialized():
        return False
    if address is None:
        # Token auth left on by an earlier cluster breaks a fresh embedded instance.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with upload_errors(shipment):
        ray.init(address=address, include_dashboard=False, log_to_driver=True,
                 configure_logging=False,
                 runtime_env=shipment.runtime_env if shipment else None)
    return True


class Driver:
    """Runs one :class:`EvalConfig` to completion on Ray.

    ``wedge_grace_s``: how long a harness stream may stay silent past the rollout
    timeout before its actor counts as wedged (killed, its rollouts become rows).
    """

    def __init__(self, config: EvalConfig, *,
                 on_progress: Callable[[Progress], None] | None = None,
                 wedge_grace_s: float = WEDGE_GRACE_S) -> None:
        self.config = config
        self.on_progress = on_progress
        self.wedge_grace_s = wedge_grace_s
        self._actors: list[Any] = []
        self._load: dict[int, int] = {}
        # slot -> [ready() of its replacement harness, placement deadline] until it runs
        self._placing: dict[int, list[Any]] = {}
        self._stopping = False
        self._terminated = False
        self._fatal: BaseException | None = None
        self._shipment: Shipment | None = None
        self._actor_env: dict[str, Any] | None = None
        self._table: SharedTaskTable | None = None

    # ---- setup --------------------------------------------------------------------------
    def _prepare_dir(self, taskset: Taskset) -> tuple[str, RunDir, ResumeState | None]:
        cfg = self.config
        if cfg.resume:
            out = RunDir.resolve(cfg.resume)
            if cfg.out and not out.same_as(cfg.out):
                raise ConfigError(f"--out {cfg.out} differs from --resume {out} (a resumed run "
                                  "writes to its own directory)")
            manifest = read_manifest(out)
            old = manifest.get("config", {})
            if manifest.get("config_digest") != cfg.digest():
                diffs = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in cfg.resume_view().items()
                         if old.get(k) != v]
                raise RecordError(f"{out}: run config differs from the one being resumed "
                                  f"({'; '.join(diffs) or 'digest mismatch'})")
            if manifest.get("taskset_digest") != taskset.digest():
                raise RecordError(f"{out}: the taskset changed since this run started "
                                  "(resume needs the same tasks)")
            return manifest["run_id"], out, ResumeState.scan(out)
        run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        out = RunDir.resolve(cfg.out or str(Path("runs") / run_id))
        if out.is_file_here():
            raise RecordError(f"{out}: exists and is not a directory (pick another --out)")
        if out.names():
            raise RecordError(f"{out}: directory is not empty (use --resume {out} to continue "
                              "that run, or pick another --out)")
        return run_id, out, None

    def _manifest(self, run_id: str, taskset: Taskset, resume: ResumeState | None
                  ) -> dict[str, Any]:
        cfg = self.config
        stored = cfg.model_dump(mode="json")
        # Absolute paths, so `--resume DIR` alone works from another directory.
        for key in ("source", "env_source"):
            if stored.get(key) and Path(stored[key]).exists():
                stored[key] = str(Path(stored[key]).resolve())
        stored["resume"] = stored["out"] = None
        return {"run_id": run_id, "config": stored, "config_digest": cfg.digest(),
                "taskset": taskset.name, "taskset_digest": taskset.digest(),
                "tasks": len(taskset), "created_at": datetime.now(UTC).isoformat(),
                "resumed_from_rows": resume.rows if resume else 0,
                "group_policy": cfg.group_policy.model_dump(mode="json")}

    def _spawn(self, run_id: str, taskset: Taskset, index: int) -> Any:
        cfg = self.config
        sandbox_options = {"request": dict(cfg.sandbox_resources),
                           "placement_timeout": cfg.placement_timeout}
        shared = self._shared_table(taskset)
        return spawn_harness(
            resources=cfg.harness_resources, runtime_env=self._actor_env,
            run_id=run_id, sources=self._actor_sources(taskset),
            task_table=shared, table=shared.ref,  # top level: Ray resolves it (zero-copy)
            agent=cfg.agent_spec().model_dump(mode="json"),
            rollout_timeout=cfg.rollout_timeout, colocate=cfg.colocate,
            sandbox_options=sandbox_options, name=f"harness-{index}",
            sessions_per_sandbox=cfg.sessions_per_sandbox)

    def _shared_table(self, taskset: Taskset) -> SharedTaskTable:
        """The run's task table in the object store: put once, the same ref for every
        harness actor (replacements included)."""
        import ray

        if self._table is None:
            table = taskset.table
            ref = ray.put(table.arrow)
            self._table = SharedTaskTable(ref=ref, rows=len(table), nbytes=table.nbytes)
            # From here on the driver reads the store's copy too, so the table is
            # held once on this node instead of once in the driver's heap and once
            # in the store.
            taskset.table = TaskTable(ray.get(ref), envs=table.envs)
            del table
            trim()
        return self._table

    def _actor_sources(self, taskset: Taskset) -> dict[str, str]:
        if self._shipment is None:
            return taskset.sources
        return self._shipment.actor_sources(taskset.sources)

    # ---- run ---------------------------------------------------------------------------
    async def run(self) -> EvalResult:
        cfg = self.config
        taskset = load_taskset(cfg)
        from hud_ray.agents.settings import validate_agent

        # unknown agent, bad setting, missing key -> one-line ConfigError before Ray starts
        validate_agent(cfg.agent, cfg.agent_config, model=cfg.model, base_url=cfg.base_url,
                       gateway=cfg.gateway)
        run_id, out, resume = self._prepare_dir(taskset)
        self._shipment = plan_shipment(
            source=cfg.source, env_source=cfg.env_source, address=cfg.address,
            working_dir=cfg.working_dir, excludes=cfg.excludes, ship=cfg.ship,
            out_dir=out.local_path if out.local else None)
        created_dir = not out.is_dir()
        sink = ArrowSink(out)
        try:
            sink.open(self._manifest(run_id, taskset, resume))
            return await self._run(run_id, out, taskset, resume, sink)
        except BaseException as exc:
            if resume is None and sink.rows_written == 0:
                _remove_failed_start(out, created_dir)
            if self._terminated and isinstance(exc, asyncio.CancelledError):
                # SIGTERM landed while the run was already winding down
                raise RunInterrupted(f"run terminated by SIGTERM; rows written so far are "
                                     f"in {out}") from None
            raise

    async def _run(self, run_id: str, out: RunDir, taskset: Taskset,
                   resume: ResumeState | None, sink: ArrowSink) -> EvalResult:
        import ray

        cfg = self.config
        done = resume.done if resume else frozenset()
        total = count_plan(taskset, cfg.group_size, done)
        specs = iter_plan(taskset, cfg.group_size, run_id, done=done,
                          attempts=resume.attempts if resume else None)
        started = time.monotonic()
        try:
            started_ray = _ensure_ray(cfg.address, self._shipment)
        except HudRayError:
            raise
        except Exception as exc:  # ray.init raises plain ConnectionError/RuntimeError/...
            raise ConfigError(f"cannot start or reach Ray: {_root_cause(exc)}") from None
        if not started_ray and self._shipment:
            self._actor_env = self._shipment.uploaded_env()  # Ray was up: ship per actor
        self._shipment = self._shipment or job_shipment()
        n_workers = cfg.workers or max(1, min(4, os.cpu_count() or 1))
        progress = Progress(total=total)
        ready_at = started
        sink_error: RecordError | None = None
        with self._sigterm_cancels():
            try:
                if total:
                    self._actors = [self._spawn(run_id, taskset, i) for i in range(n_workers)]
                    try:
                        await asyncio.wait_for(
                            asyncio.gather(*(a.ready.remote() for a in self._actors)),
                            cfg.placement_timeout)
                    except ray.exceptions.RayActorError as exc:
                        raise ConfigError(f"harness actors failed to start: "
                                          f"{_root_cause(exc)}") from None
                    except TimeoutError:
                        raise PlacementError(
                            f"harness actors not placed within {cfg.placement_timeout:g} s: "
                            f"{describe(cfg.harness_resources)}") from None
                    ready_at = time.monotonic()
                    await self._schedule(run_id, taskset, specs, sink, progress)
            except asyncio.CancelledError:
                if not self._terminated:
                    raise
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
            except RecordError as exc:
                if exc.code != "sink_write_failed":
                    raise
                sink_error = exc
            finally:
                try:
                    self._final_flush(sink, out, sink_error, resumable=resume is not None)
                finally:
                    await self._shutdown()
        if self._terminated:
            raise RunInterrupted(f"run terminated by SIGTERM: {sink.rows_written} rows written "
                                 f"to {out}; unfinished rollouts rerun with --resume {out}")
        elapsed = time.monotonic() - started
        summary = summarize(read_rollouts(out), group_size=cfg.group_size,
                            pass_threshold=cfg.pass_threshold, elapsed_s=elapsed,
                            run_id=run_id, new_rows=progress.done)
        summary["setup_s"] = round(ready_at - started, 3)
        summary["rollout_phase_s"] = round(time.monotonic() - ready_at, 3)
        summary["out_dir"] = str(out)
        sink.close(summary)
        return EvalResult(run_id=run_id, out_dir=out.public, summary=summary)

    @contextlib.contextmanager
    def _sigterm_cancels(self) -> Iterator[None]:
        """While running, SIGTERM stops the run like Ctrl-C: cancelled rows are written."""
        task = asyncio.current_task()
        if threading.current_thread() is not threading.main_thread() or task is None:
            yield
            return
        loop = asyncio.get_running_loop()
        previous = signal.getsignal(signal.SIGTERM)

        def on_term() -> None:
            if not self._terminated:
                log.warning("SIGTERM: stopping the run; finished rows are kept")
                self._terminated = True
                task.cancel()

        loop.add_signal_handler(signal.SIGTERM, on_term)
        try:
            yield
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)

    def _final_flush(self, sink: ArrowSink, out: RunDir, cause: RecordError | None, *,
                     resumable: bool) -> None:
        """Write what is still buffered; after a failed write, stop the run loudly."""
        try:
            sink.flush()
        except RecordError as exc:
            cause = cause or exc
        if cause is None:
            return
        lost = sink.pending
        detail = (f"{lost} finished rows could not be written" if lost else
                  "every finished row was written after all")
        after = (f"unfinished rollouts rerun with --resume {out}"
                 if resumable or sink.rows_written else "nothing to resume: start it again")
        raise RecordError(f"{out}: writing rows failed, run stopped ({cause}); this run wrote "
                          f"{sink.rows_written} rows, {detail}; {after}",
                          code="sink_write_failed") from cause

    async def _schedule(self, run_id: str, taskset: Taskset, specs: Iterator[RolloutSpec],
                        sink: ArrowSink, progress: Progress) -> None:
        import ray

        cfg = self.config
        pending: deque[RolloutSpec] = deque()  # retries first, then fresh specs
        fresh = progress.total

        def take_one() -> RolloutSpec:
            nonlocal fresh
            if pending:
                return pending.popleft()
            fresh -= 1
            return next(specs)
        wake = asyncio.Event()
        streams: set[asyncio.Task[None]] = set()
        n = len(self._actors)
        chunk = max(1, min(cfg.batch_size, cfg.max_concurrent // max(1, 2 * n) or 1))
        low_water = max(1, chunk // 4)
        self._load = dict.fromkeys(range(n), 0)

        stamp = {"group_size": cfg.group_size, "policy_version": cfg.policy_version,
                 "tokenizer": cfg.tokenizer, "renderer": cfg.renderer}

        def handle(rows: list[dict[str, Any]]) -> None:
            for row in rows:
                row.update(stamp)
                if row.get("logprobs_mode") is None:
                    row["logprobs_mode"] = cfg.logprobs_mode if row.get("chunks") else "none"
                retry = (row["status"] in ("infra_error", "cancelled") and row["retryable"]
                         and row["attempt"] < cfg.max_retries and not self._stopping)
                row["final"] = not retry and row["status"] != "cancelled"
                if retry:
                    spec = inflight_specs.pop(row["trace_id"], None)
                    if spec is not None:
                        pending.appendleft(spec.retry())
                    progress.retried += 1
                else:
                    inflight_specs.pop(row["trace_id"], None)
                    progress.done += 1
                    if row["status"] != "ok":
                        progress.failed += 1
                progress.in_flight -= 1
            sink.add(rows)  # no I/O here: the scheduler writes parts off the event loop
            wake.set()

        inflight_specs: dict[str, RolloutSpec] = {}
        self._stopping = False
        loop = asyncio.get_running_loop()
        silence = (cfg.rollout_timeout + self.wedge_grace_s) if cfg.rollout_timeout else None

        async def stream(slot: int, batch: list[RolloutSpec]) -> None:
            actor = self._actors[slot]
            outstanding = {s.trace_id: s for s in batch}
            try:
                if slot in self._placing:
                    actor = await self._await_placed(slot, run_id, taskset)
                # A silence timer: every batch of rows from the actor restarts it.
                async with asyncio.timeout(silence) as timer:
                    async for ref in actor.run_stream.remote(batch):
                        rows = await ref
                        for r in rows:
                            outstanding.pop(r["trace_id"], None)
                        handle(rows)
                        if silence is not None:
                            timer.reschedule(loop.time() + silence)
            except TimeoutError:
                self._replace(slot, run_id, taskset)
                handle(self._failure_rows(run_id, taskset, outstanding.values(), "timeout",
                                          "worker_unresponsive", False,
                                          f"harness sent nothing for {silence}s; "
                                          "a task blocked its event loop?"))
            except PlacementError as exc:
                handle(self._failure_rows(run_id, taskset, outstanding.values(),
                                          "infra_error", exc.code, False, str(exc)))
            except asyncio.CancelledError:
                handle(self._failure_rows(run_id, taskset, outstanding.values(), "cancelled",
                                          "cancelled", True, "run cancelled"))
                raise
            except ray.exceptions.RayError as exc:  # actor death, object loss, system errors
                self._replace(slot, run_id, taskset)
                handle(self._failure_rows(run_id, taskset, outstanding.values(),
                                          "infra_error", "actor_lost", True,
                                          f"harness actor lost: {_root_cause(exc)}"))
            except Exception as exc:  # a driver bug: stop loudly, never blame the actor
                self._fatal = exc
                wake.set()
            finally:
                self._load[slot] -= len(batch)

        flush: asyncio.Task[None] | None = None

        def check_flush() -> None:
            nonlocal flush
            if flush is not None and flush.done():
                done, flush = flush, None
                exc = done.exception()
                if exc is not None:
                    raise exc
            if flush is None and sink.due():
                flush = asyncio.create_task(sink.flush_async())
                flush.add_done_callback(lambda _: wake.set())

        last_report = 0.0
        try:
            while pending or fresh or streams:
                if self._fatal is not None:
                    raise self._fatal
                free = cfg.max_concurrent - progress.in_flight
                while (waiting := len(pending) + fresh) and free > 0 and (
                        free >= min(low_water, waiting) or progress.in_flight == 0):
                    take = min(chunk, free, waiting)
                    batch = [take_one() for _ in range(take)]
                    # busy slots before one whose replacement harness is not running yet
                    slot = min(self._load, key=lambda k: (k in self._placing, self._load[k]))
                    self._load[slot] += take
                    for s in batch:
                        inflight_specs[s.trace_id] = s
                    progress.in_flight += take
                    free -= take
                    t = asyncio.create_task(stream(slot, batch))
                    streams.add(t)
                    t.add_done_callback(streams.discard)
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), timeout=0.25)
                except TimeoutError:
                    pass
                check_flush()
                now = time.monotonic()
                if self.on_progress and now - last_report >= 0.2:
                    last_report = now
                    self.on_progress(progress)
            if flush is not None:
                await asyncio.wait({flush})
                check_flush()
        except BaseException:
            self._stopping = True
            for t in list(streams):
                t.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
            if flush is not None:
                await asyncio.wait({flush})  # never cut a part write short
            raise
        if self.on_progress:
            self.on_progress(progress)

    def _failure_rows(self, run_id: str, taskset: Taskset, specs: Any, status: Status, code: str,
                      retryable: bool, message: str) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        table = taskset.table
        rows = []
        for spec in specs:
            i = spec.task_index  # read from the table's columns, no row decoded
            rows.append(RolloutRecord(
                run_id=run_id, trace_id=spec.trace_id, rollout_key=spec.key, slug=spec.slug,
                env=table.value("env", i), template_id=table.value("id", i),
                args=table.args_json(i),
                group_id=spec.group_id, sample_index=spec.sample_index, attempt=spec.attempt,
                final=True, agent=self.config.agent, model=self.config.model,
                status=status, error_type=code, error_message=message, retryable=retryable,
                started_at=now, ended_at=now, worker="driver").to_row())
        return rows

    def _replace(self, slot: int, run_id: str, taskset: Taskset) -> None:
        import ray

        old = self._actors[slot]
        try:
            ray.kill(old, no_restart=True)
        except ray.exceptions.RayError:
            pass  # already gone
        log.warning("replacing harness actor %d", slot)
        self._actors[slot] = self._spawn(run_id, taskset, slot)
        self._track_placement(slot)

    async def _await_placed(self, slot: int, run_id: str, taskset: Taskset) -> Any:
        """The slot's replacement harness once it runs. One that died before running
        (Ray placed it on a node that was dying) is replaced again without charging the
        batch a retry; one no node takes within ``placement_timeout`` of the replacement
        (its node type is gone) fails the batch as ``placement_timeout`` rows, and every
        later batch at once until it runs, instead of hanging."""
        import ray

        last = ""
        while (entry := self._placing.get(slot)) is not None:
            ready, deadline = entry
            try:
                await asyncio.wait_for(asyncio.shield(ready),
                                       max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise PlacementError(
                    f"replacement harness actor not running within "
                    f"{self.config.placement_timeout:g} s: "
                    f"{describe(self.config.harness_resources)}{last}") from None
            except ray.exceptions.RayActorError as exc:
                last = f" (last start failed: {_root_cause(exc)})"
                await asyncio.sleep(1.0)
                if self._placing.get(slot) is entry:  # nobody replaced it meanwhile
                    self._replace(slot, run_id, taskset)
                    self._placing[slot][1] = deadline  # the first replacement's deadline
                continue
            if self._placing.get(slot) is entry:
                del self._placing[slot]
        return self._actors[slot]

    def _track_placement(self, slot: int) -> None:
        """Note the slot's new harness as placing until its ``ready()`` returns."""
        ready = asyncio.ensure_future(self._actors[slot].ready.remote())
        entry: list[Any] = [ready, time.monotonic() + self.config.placement_timeout]
        self._placing[slot] = entry

        def placed(done: asyncio.Future[Any]) -> None:
            if self._placing.get(slot) is entry and not done.cancelled() \
                    and done.exception() is None:
                del self._placing[slot]

        ready.add_done_callback(placed)

    async def _shutdown(self) -> None:
        import ray

        actors, self._actors = self._actors, []
        if not actors:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*(a.close.remote() for a in actors),
                                                  return_exceptions=True), 15)
        except TimeoutError:
            log.warning("harness actors did not close within 15 s; killing them")
        for a in actors:
            try:
                ray.kill(a, no_restart=True)
            except ray.exceptions.RayError:
                pass  # already gone


def _remove_failed_start(out: RunDir, created_dir: bool) -> None:
    """Undo what a run that wrote no rows created, so the same ``--out`` works next time."""
    for name in (MANIFEST, SUMMARY):
        try:
            out.delete(name)
        except (OSError, RecordError, pa.ArrowException):
            return  # not ours to clean (replaced, unwritable, unreachable): leave it
    if created_dir:
        out.remove_if_empty()


def _root_cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    last = [line for line in text if line.strip()][-1:] or [type(exc).__name__]
    return last[0][:300]


async def run_eval_async(source: str | None = None, agent: str | None = None, *,
                         config: EvalConfig | None = None, resume: str | None = None,
                         on_progress: Callable[[Progress], None] | None = None,
                         **options: Any) -> EvalResult:
    """Run an eval and return where its rows are plus the summary.

    ``resume=DIR`` continues the run in ``DIR`` with the config stored in its manifest;
    options given again must match it (run-shaping ones) or override it (placement).
    """
    if config is None:
        if resume is not None:
            given = {k: v for k, v in (("source", source), ("agent", agent)) if v is not None}
            config = resume_config(resume, **given, **options)
        else:
            if source is None:
                raise ConfigError("run_eval needs a source (a tasks.py, folder, or .jsonl)")
            config = EvalConfig(source=str(source), agent=agent or "oracle", **options)
    elif resume is not None or source is not None or options:
        raise ConfigError("pass either config= or source/agent/options, not both")
    return await Driver(config, on_progress=on_progress).run()


def run_eval(source: str | None = None, agent: str | None = None,
             **options: Any) -> EvalResult:
    """Synchronous :func:`run_eval_async`."""
    return asyncio.run(run_eval_async(source, agent, **options))
