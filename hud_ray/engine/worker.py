"""The rollout worker: runs many rollouts concurrently and streams back their rows.

A worker owns one agent (harness) instance and reaches sandboxes through
:class:`SandboxRef` objects. For environments with no per-rollout state the sandbox
lives in the worker's own process (co-located: no extra hop per rollout); for
environments with a workspace each rollout leases a dedicated sandbox actor from a
pool. ``actors/harness.py`` wraps this class as a Ray actor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from hud_ray.agents import create_agent
from hud_ray.engine.plan import RolloutSpec
from hud_ray.errors import (
    ActorLost,
    AgentError,
    CapabilityError,
    EnvError,
    GradeError,
    HudRayError,
    ProviderError,
    RolloutTimeout,
)
from hud_ray.records import RolloutRecord, build_chunks
from hud_ray.sandbox import Sandbox
from hud_ray.task import Task
from hud_ray.tasktable import TaskTable
from hud_ray.types import (
    AgentConfig,
    AgentContext,
    AgentResult,
    AgentSpec,
    Grade,
    Prompt,
    StopReason,
)

log = logging.getLogger(__name__)


class SandboxRef(Protocol):
    """The sandbox contract as the worker sees it (in-process or an actor)."""

    async def start(self, task: Task) -> Prompt: ...
    async def grade(self, session_id: str, answer: str | None) -> Grade: ...
    async def solve(self, session_id: str) -> Any: ...
    async def cancel(self, session_id: str) -> None: ...


Lease = Callable[[Task], Awaitable[tuple[SandboxRef, Callable[[bool], Awaitable[None]]]]]


class RolloutWorker:
    """Runs rollout specs against sandboxes with one agent; yields record rows in batches."""

    def __init__(self, *, run_id: str, tasks: TaskTable | Sequence[Task], agent: AgentSpec,
                 rollout_timeout: float | None = None, lease: Lease | None = None,
                 sandbox: Sandbox | None = None, local_envs: set[str] | None = None,
                 worker_name: str = "",
                 batch_window: float = 0.02, batch_max: int = 256) -> None:
        self.run_id = run_id
        # rows decode by index from the (shared, zero-copy) table; no per-worker copy
        self.tasks = tasks if isinstance(tasks, TaskTable) else TaskTable.build(tasks)
        self.agent_spec = agent
        self.agent = create_agent(agent)
        self.rollout_timeout = rollout_timeout
        self._lease = lease
        self._sandbox = sandbox
        self._local_envs = local_envs if local_envs is not None else (
            set(sandbox.environments) if sandbox is not None else set())
        self.worker_name = worker_name or f"pid-{os.getpid()}"
        self.batch_window = batch_window
        self.batch_max = batch_max

    async def close(self) -> None:
        await self.agent.close()
        if self._sandbox is not None:
            await self._sandbox.close()

    # ---- batch streaming -----------------------------------------------------------------
    async def run_stream(self, specs: Sequence[RolloutSpec]) -> AsyncIterator[list[dict[str, Any]]]:
        """Run ``specs`` concurrently; yield finished rows in batches as they complete."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        tasks = [asyncio.create_task(self._run_into(spec, queue)) for spec in specs]
        remaining = len(tasks)
        try:
            while remaining:
                batch = [await queue.get()]
                deadline = time.monotonic() + self.batch_window
                while len(batch) < self.batch_max and len(batch) < remaining:
                    timeout = deadline - time.monotonic()
                    if timeout <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(queue.get(), timeout))
                    except TimeoutError:
                        break
                remaining -= len(batch)
                yield batch
        finally:
            for t in tasks:
                t.cancel()

    async def _run_into(self, spec: RolloutSpec, queue: asyncio.Queue[dict[str, Any]]) -> None:
        try:
            row = await self.run_one(spec)
        except BaseException as exc:  # cancellation included: the row must not be lost
            row = self._row(spec, time.time(), status="cancelled",
                            error=HudRayError(f"rollout cancelled: {type(exc).__name__}",
                                              code="cancelled", retryable=True))
            queue.put_nowait(row)
            raise
        queue.put_nowait(row)

    # ---- one rollout ---------------------------------------------------------------------
    async def run_one(self, spec: RolloutSpec) -> dict[str, Any]:
        started = time.time()
        state = _RolloutState()
        try:
            if self.rollout_timeout is None:
                return await self._rollout(spec, started, state)
            async with asyncio.timeout(self.rollout_timeout):
                return await self._rollout(spec, started, state)
        except TimeoutError:
            await self._abandon(state)
            state.settle_partial("timeout")
            return self._row(spec, started, status="timeout", state=state,
                             error=RolloutTimeout(f"rollout exceeded {self.rollout_timeout}s",
                                                  code="rollout_timeout"))
        except Exception as exc:
            state.exc = exc
            await self._abandon(state)
            state.settle_partial("error")
            status, error = _classify(exc, state.phase)
            return self._row(spec, started, status=status, state=state, error=error)

    async def _rollout(self, spec: RolloutSpec, started: float,
                       state: _RolloutState) -> dict[str, Any]:
        task = self.tasks[spec.task_index]
        t0 = time.perf_counter()
        sandbox, release = await self._acquire(task)
        state.release = release
        state.sandbox = sandbox
        state.phase = "start"
        prompt = await sandbox.start(task)
        state.session = prompt.session_id
        state.prompt = prompt.text
        t1 = time.perf_counter()
        state.timing["start_s"] = t1 - t0
        state.phase = "agent"
        config = self.agent_spec.config.merged(task.agent_config)
        state.ctx = ctx = AgentContext(prompt=prompt, config=config, task_slug=task.slug,
                                       solve=lambda: sandbox.solve(prompt.session_id))
        result, timed_out = await self._run_agent(ctx)
        state.result = result
        t2 = time.perf_counter()
        state.timing["agent_s"] = t2 - t1
        if timed_out and not config.grade_on_timeout:
            # The agent's own budget ran out: keep its transcript, but do not grade a
            # cut-off attempt (its reward would pass a time-out off as the model's score)
            # unless the task says its grade still stands (Harbor tasks do).
            await self._abandon(state)
            return self._row(spec, started, status="timeout", state=state,
                             error=RolloutTimeout(f"agent phase exceeded timeout_seconds="
                                                  f"{ctx.config.timeout_seconds}",
                                                  code="agent_timeout"))
        if result.error is not None:
            await self._abandon(state)
            return self._row(spec, started, status="agent_error", state=state,
                             error=result.error)
        state.phase = "grade"
        grade = await sandbox.grade(prompt.session_id, result.answer)
        state.session = None
        state.timing["grade_s"] = time.perf_counter() - t2
        await self._release(state, healthy=True)
        return self._row(spec, started, status="ok", state=state, grade=grade)

    async def _run_agent(self, ctx: AgentContext) -> tuple[AgentResult, bool]:
        """Run the agent; returns its result and whether its phase budget ran out."""
        limit = ctx.config.timeout_seconds
        if limit is None:
            return await self.agent.run(ctx), False
        task = asyncio.ensure_future(self.agent.run(ctx))
        try:
            done, _ = await asyncio.wait({task}, timeout=limit)
        except asyncio.CancelledError:
            task.cancel()  # asyncio.wait leaves it running otherwise
            raise
        if task in done:
            return task.result(), False
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise  # we are being cancelled too
        except Exception:  # the agent raised while stopping; its transcript still counts
            log.debug("agent raised while cancelled at its timeout", exc_info=True)
        result = ctx.partial or AgentResult(answer=None, model=self.agent.model)
        result.stop_reason = "timeout"
        return result, True

    async def _acquire(self, task: Task) -> tuple[SandboxRef, Callable[[bool], Awaitable[None]]]:
        if self._sandbox is not None and task.env in self._local_envs:
            return self._sandbox, _noop_release
        if self._lease is None:
            raise EnvError("worker has no sandbox and no pool", code="no_sandbox",
                           retryable=True)
        return await self._lease(task)

    async def _abandon(self, state: _RolloutState) -> None:
        sandbox, session = state.sandbox, state.session
        state.session = None
        healthy = True
        if sandbox is not None and session is not None:
            try:
                await asyncio.shield(sandbox.cancel(session))
            except (Exception, asyncio.CancelledError):
                healthy = False
        await self._release(state, healthy=healthy and not isinstance(state.exc, ActorLost))

    async def _release(self, state: _RolloutState, *, healthy: bool) -> None:
        release, state.release = state.release, None
        if release is not None:
            try:
                await asyncio.shield(release(healthy))
            except (Exception, asyncio.CancelledError):
                log.debug("sandbox release failed", exc_info=True)

    # ---- rows ------------------------------------------------------------------------------
    def _row(self, spec: RolloutSpec, started: float, *, status: str,
             state: _RolloutState | None = None, grade: Grade | None = None,
             error: HudRayError | None = None) -> dict[str, Any]:
        task = self.tasks[spec.task_index]
        state = state or _RolloutState()
        timing = state.timing
        result = state.result
        ended = time.time()
        usage = result.usage if result is not None else {}
        config = state.ctx.config if state.ctx is not None else \
            self.agent_spec.config.merged(task.agent_config)
        chunks = _chunks(result) if result is not None else None
        has_logprobs = any(c["logprobs"] is not None for c in chunks or ())
        record = RolloutRecord(
            run_id=self.run_id, trace_id=spec.trace_id, rollout_key=spec.key, slug=spec.slug,
            env=task.env, template_id=task.id, args=self.tasks.args_json(spec.task_index),
            group_id=spec.group_id, sample_index=spec.sample_index, attempt=spec.attempt,
            final=True, agent=self.agent_spec.name,
            model=(result.model if result is not None and result.model else self.agent_spec.model),
            prompt=state.prompt,
            answer=result.answer if result is not None else None,
            reward=grade.reward if grade is not None else None,
            reward_valid=grade is not None and status == "ok",
            subscores=grade.subscores if grade is not None and grade.subscores else None,
            grade_info=json.dumps(grade.info) if grade is not None and grade.info else None,
            status=status,  # type: ignore[arg-type]
            error_type=error.code if error is not None else None,
            error_message=str(error)[:2000] if error is not None else None,
            retryable=bool(error is not None and error.retryable),
            stop_reason=result.stop_reason if result is not None else None,
            started_at=datetime.fromtimestamp(started, UTC),
            ended_at=datetime.fromtimestamp(ended, UTC),
            duration_s=ended - started,
            start_s=timing.get("start_s"), agent_s=timing.get("agent_s"),
            grade_s=timing.get("grade_s"),
            num_steps=result.num_steps if result is not None else 0,
            steps=json.dumps(result.steps, default=str) if result is not None and result.steps
            else None,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            model_calls=usage.get("calls"),
            call_latencies=result.call_latencies or None if result is not None else None,
            prompt_token_ids=result.prompt_token_ids if result is not None else None,
            completion_token_ids=result.completion_token_ids if result is not None else None,
            completion_logprobs=result.completion_logprobs if result is not None else None,
            worker=self.worker_name,
            first_token_latencies=result.first_token_latencies or None
            if result is not None else None,
            reasoning_tokens=usage.get("reasoning_tokens"),
            cached_tokens=usage.get("cached_tokens"),
            columns=json.dumps(task.columns, default=str) if task.columns else None,
            sampling=_sampling(config) if getattr(self.agent, "needs_model", False) else None,
            # the declared mode (raw | processed) is stamped by the driver, which knows it
            logprobs_mode=None if has_logprobs else "none",
            chunks=chunks,
        )
        return record.to_row()


async def _noop_release(healthy: bool) -> None:
    return None


@dataclass(slots=True)
class _RolloutState:
    """What one rollout has acquired and produced so far (for cleanup and its row)."""

    phase: str = "start"
    sandbox: SandboxRef | None = None
    release: Callable[[bool], Awaitable[None]] | None = None
    session: str | None = None
    prompt: str | None = None
    ctx: AgentContext | None = None
    result: AgentResult | None = None
    exc: BaseException | None = None
    timing: dict[str, float] = field(default_factory=dict)

    def settle_partial(self, stop_reason: StopReason) -> None:
        """After the agent phase was cut short: record what the harness gathered so far."""
        if self.result is None and self.ctx is not None and self.ctx.partial is not None:
            self.result = self.ctx.partial
            self.result.stop_reason = stop_reason


def _sampling(config: AgentConfig) -> dict[str, Any]:
    """The sampling parameters a rollout's model calls were made with."""
    extra = config.model_extra or {}

    def num(key: str, kind: type) -> Any:
        value = getattr(config, key, None) if key in AgentConfig.model_fields else extra.get(key)
        try:
            return kind(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    return {"temperature": num("temperature", float), "top_p": num("top_p", float),
            "top_k": num("top_k", int), "max_tokens": num("max_tokens", int),
            "seed": num("seed", int)}


def _chunks(result: AgentResult) -> list[dict[str, Any]] | None:
    """The rollout's token chunks from the engine's own per-call ids and logprobs."""
    if not result.completion_token_ids:
        return None
    calls = [s for s in result.steps if s.get("role") == "assistant"]
    finishes: list[str | None] | None = None
    if len(calls) == len(result.completion_token_ids):
        finishes = ["tool_calls" if s.get("tool_calls") else "stop" for s in calls]
        if result.stop_reason == "length" and finishes:
            finishes[-1] = "length"
    return build_chunks(result.prompt_token_ids, result.completion_token_ids,
                        result.completion_logprobs, finishes)


def _classify(exc: BaseException, phase: str) -> tuple[str, HudRayError]:
    """Map an exception from a rollout phase to (status, typed error)."""
    if isinstance(exc, GradeError):
        return "grader_error", exc
    if isinstance(exc, AgentError):
        return "agent_error", exc
    if isinstance(exc, ProviderError | CapabilityError | ActorLost | EnvError):
        return "infra_error", exc
    if isinstance(exc, HudRayError):
        return "infra_error", exc
    detail = f"{type(exc).__name__}: {exc}"
    if phase == "agent":
        return "agent_error", AgentError(f"agent crashed: {detail}", code="agent_crashed")
    if phase == "grade":
        return "grader_error", GradeError(f"grading failed: {detail}", code="grade_raised")
    return "infra_error", HudRayError(f"sandbox failed: {detail}", code="unexpected_error",
                                      retryable=True)
