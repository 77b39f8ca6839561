"""The sandbox: hosts environments and drives their templates, one session per rollout.

``start(task)`` runs a template to its first yield and returns the prompt;
``grade(session_id, answer)`` sends the answer in and normalises the second yield;
``solve(session_id)`` runs the template's reference solution (for the oracle);
``cancel(session_id)`` abandons a session. Ray placement lives in ``actors/sandbox.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import math
import os
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hud_ray.capabilities.base import Capability
from hud_ray.capabilities.rootview import RootViews
from hud_ray.env import Environment, Session, Template, _current_session
from hud_ray.errors import (
    AgentFault,
    CapabilityError,
    EnvError,
    GradeError,
    HudRayError,
    TemplateError,
)
from hud_ray.task import Task, import_source
from hud_ray.types import Grade, Prompt, jsonable

log = logging.getLogger(__name__)


@dataclass
class _Live:
    session: Session
    template: Template
    gen: AsyncGenerator[Any, Any]
    task: Task
    prompt: Prompt | None = None
    opened: list[str] = field(default_factory=list)
    turn: asyncio.Lock | None = None  # held for the session's life: one at a time


class SolutionContext:
    """What a reference solution may use: the session's capabilities and clients."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._clients: list[Any] = []

    @property
    def capabilities(self) -> list[Capability]:
        return self.session.capabilities

    async def connect(self, name: str | None = None) -> Any:
        """Dial a capability by name (the first one when ``name`` is omitted)."""
        from hud_ray.capabilities.registry import connect

        caps = [c for c in self.capabilities if name is None or c.name == name]
        if not caps:
            raise CapabilityError(f"no capability {name!r} in this session")
        client = await connect(caps[0])
        self._clients.append(client)
        return client

    async def aclose(self) -> None:
        for client in reversed(self._clients):  # LIFO: MCP transports nest task groups
            try:
                await client.close()
            except Exception:
                log.debug("closing solution client failed", exc_info=True)


def load_environments(sources: dict[str, str]) -> dict[str, Environment]:
    """Import each source file once and find the environments it names.

    An environment counts when the file defines it, or when any module the file
    imports constructed it (``from env import count`` in a tasks file).
    """
    from hud_ray.env import registered_environment

    envs: dict[str, Environment] = {}
    for path in dict.fromkeys(sources.values()):
        module = import_source(Path(path))
        for value in vars(module).values():
            if isinstance(value, Environment):
                envs.setdefault(value.name, value)
            elif isinstance(value, Template):
                envs.setdefault(value.env.name, value.env)
    for name in set(sources) - set(envs):
        if (env := registered_environment(name)) is not None:
            envs[name] = env
    missing = sorted(set(sources) - set(envs))
    if missing:
        files = sorted(set(sources.values()))
        raise EnvError(f"no Environment named {', '.join(missing)} in {files} or the "
                       "modules they import", code="env_not_found")
    return envs


class Sandbox:
    """Hosts one or more environments and runs their template sessions."""

    def __init__(self, environments: dict[str, Environment]) -> None:
        self.environments = environments
        self._sessions: dict[str, _Live] = {}
        self._ids = itertools.count()
        self._prefix = f"{os.getpid():x}"
        self._started = False
        self._start_lock = asyncio.Lock()
        self._views = RootViews()  # template code sees its session's copy at a workspace root
        self._turns: dict[str, asyncio.Lock] = {}  # env name -> its one-at-a-time turn

    @classmethod
    def from_sources(cls, sources: dict[str, str]) -> Sandbox:
        return cls(load_environments(sources))

    async def setup(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            for env in self.environments.values():
                await env.start()
            self._started = True

    async def close(self) -> None:
        for sid in list(self._sessions):
            await self.cancel(sid)
        if self._started:
            for env in self.environments.values():
                try:
                    await env.stop()
                except Exception:
                    log.warning("env %s shutdown hook failed", env.name, exc_info=True)
            self._started = False

    def manifest(self) -> dict[str, Any]:
        return {"environments": [e.manifest() for e in self.environments.values()],
                "sessions": len(self._sessions)}

    @property
    def active_sessions(self) -> int:
        return len(self._sessions)

    # ---- sessions --------------------------------------------------------------------
    async def start(self, task: Task) -> Prompt:
        """Open a session for ``task`` and run its template to the prompt."""
        if not self._started:
            await self.setup()
        env = self.environments.get(task.env)
        if env is None:
            raise EnvError(f"sandbox does not host env {task.env!r}", code="env_not_found",
                           retryable=False)
        template = env.templates.get(task.id)
        if template is None:
            raise TemplateError(f"env {task.env!r} has no template {task.id!r}",
                                code="unknown_template")
        bound = template.bind_all(template.coerce_args(task.args))
        sid = f"{self._prefix}-{next(self._ids)}"
        session = Session(id=sid, task=task, capabilities=list(env.capabilities), env=env)
        turn = self._turns.setdefault(env.name, asyncio.Lock()) \
            if env.one_session_at_a_time else None
        if turn is not None:
            await turn.acquire()
        live = _Live(session=session, template=template, gen=None, task=task,  # type: ignore[arg-type]
                     turn=turn)
        self._sessions[sid] = live
        try:
            async with self._views.guard(env.resources):
                first = await self._open_and_prompt(live, env, bound)
            prompt = self._normalise_prompt(sid, first, session, template)
            live.prompt = prompt
            return prompt
        except BaseException:
            await self._discard(sid)
            raise

    async def _open_and_prompt(self, live: _Live, env: Environment,
                               bound: inspect.BoundArguments) -> Any:
        """Open the session's resources and run its template to the first yield."""
        sid, session, template, task = live.session.id, live.session, live.template, live.task
        for name, res in env.resources.items():
            try:
                caps = await res.open(sid)
            except HudRayError:
                raise
            except Exception as exc:
                raise CapabilityError(f"resource {name!r} failed to open: "
                                      f"{type(exc).__name__}: {exc}") from exc
            live.opened.append(name)
            session.capabilities.extend(caps)
            session.resources[name] = res.session_context(sid)
        token = _current_session.set(session)
        try:
            live.gen = template.func(*bound.args, **bound.kwargs)
            try:
                with self._views.show(env.resources, sid):
                    first = await live.gen.__anext__()
            except StopAsyncIteration:
                raise TemplateError(f"template {task.id!r} finished without yielding a "
                                    "prompt", code="no_prompt") from None
            except HudRayError:
                raise
            except Exception as exc:
                raise EnvError(f"template {task.id!r} raised at start: "
                               f"{type(exc).__name__}: {exc}", code="template_start_error",
                               retryable=False) from exc
        finally:
            _current_session.reset(token)
        return first

    async def grade(self, session_id: str, answer: str | None) -> Grade:
        """Send the answer into the template and normalise its grade; ends the session.

        As in HUD: a template that returns without grading scores 0.0; the generator is
        closed right after its grade (code after the grade never runs); a ``returns=``
        template receives an :class:`~hud_ray.env.Answer`; a task's ``verifier`` row is
        then run in the same session, fed the actor's grade frame, and its grade is the
        grade of record.
        """
        live = self._sessions.get(session_id)
        if live is None:
            raise GradeError(f"unknown or finished session {session_id!r}", code="no_session",
                             retryable=True)
        resources = self.environments[live.task.env].resources
        token = _current_session.set(live.session)
        try:
            async with self._views.guard(resources):
                with self._views.show(resources, session_id):
                    return await self._grade(live, answer)
        finally:
            _current_session.reset(token)
            await self._discard(session_id)

    async def _grade(self, live: _Live, answer: str | None) -> Grade:
        verifier = _verifier_task(live.task)
        try:
            raw = await self._send(live.gen, live.template,
                                   live.template.build_answer(answer), live.task.id)
            grade = normalise_grade(raw)
        except HudRayError as exc:
            if verifier is None:
                raise
            # the verifier is authoritative: a failed actor grade only informs it
            raw = {"score": 0.0, "answer": answer, "content": str(exc), "isError": True}
        if verifier is None:
            return grade
        return await self._verify(live, verifier, grade_frame(raw))

    @staticmethod
    async def _send(gen: AsyncGenerator[Any, Any], template: Template, value: Any,
                    task_id: str) -> Any:
        try:
            return await gen.asend(value)
        except StopAsyncIteration:
            return 0.0  # returned without grading: HUD scores it 0.0
        except AgentFault as exc:  # the agent broke what the grader reads: its own doing
            return {"score": 0.0, "info": {"agent_fault": exc.code, "reason": str(exc)}}
        except HudRayError:
            raise
        except Exception as exc:
            raise GradeError(f"template {task_id!r} raised while grading: "
                             f"{type(exc).__name__}: {exc}", code="grade_raised") from exc
        finally:
            try:
                await gen.aclose()
            except Exception:
                log.debug("closing template %s after its grade failed", task_id,
                          exc_info=True)

    async def _verify(self, live: _Live, verifier: Task, frame: dict[str, Any]) -> Grade:
        env = live.session.env
        if env is None or verifier.env != live.task.env:
            raise GradeError(f"verifier of {live.task.id!r} names env {verifier.env!r}; "
                             "hud-ray runs verifiers in the task's own environment only",
                             code="verifier_env")
        template = env.templates.get(verifier.id)
        if template is None:
            raise GradeError(f"env {env.name!r} has no verifier template {verifier.id!r}",
                             code="unknown_template")
        bound = template.bind_all(template.coerce_args(verifier.args))
        gen = template.func(*bound.args, **bound.kwargs)
        try:
            await gen.__anext__()
        except StopAsyncIteration:
            raise GradeError(f"verifier {verifier.id!r} finished without a prompt",
                             code="no_prompt") from None
        except Exception as exc:
            await gen.aclose()
            raise GradeError(f"verifier {verifier.id!r} raised at start: "
                             f"{type(exc).__name__}: {exc}", code="grade_raised") from exc
        raw = await self._send(gen, template, template.build_answer(frame), verifier.id)
        grade = normalise_grade(raw)
        info = {**grade.info, "actor_grade": jsonable(frame)}
        return Grade(reward=grade.reward, subscores=grade.subscores, info=info)

    async def solve(self, session_id: str) -> Any:
        """Run the template's reference solution for this session; returns the answer."""
        live = self._sessions.get(session_id)
        if live is None:
            raise EnvError(f"unknown session {session_id!r}", code="no_session")
        fn = live.template.solution_fn
        if fn is None:
            raise TemplateError(f"template {live.task.id!r} has no solution",
                                code="no_solution")
        bound = live.template.bind_all(live.template.coerce_args(live.task.args))
        kwargs = dict(bound.arguments)
        params = inspect.signature(fn).parameters
        ctx = SolutionContext(live.session)
        if "ctx" in params:
            kwargs["ctx"] = ctx
        accepted = {k: v for k, v in kwargs.items()
                    if k in params or any(p.kind is p.VAR_KEYWORD for p in params.values())}
        resources = self.environments[live.task.env].resources
        token = _current_session.set(live.session)
        try:
            async with self._views.guard(resources):
                with self._views.show(resources, session_id):
                    return await fn(**accepted)
        finally:
            _current_session.reset(token)
            await ctx.aclose()

    async def cancel(self, session_id: str) -> None:
        await self._discard(session_id)

    async def _discard(self, session_id: str) -> None:
        live = self._sessions.pop(session_id, None)
        if live is None:
            return
        if live.gen is not None:
            try:
                await live.gen.aclose()
            except Exception:
                log.debug("closing template generator failed", exc_info=True)
        env = self.environments[live.task.env]
        try:
            for name in reversed(live.opened):
                try:
                    await env.resources[name].close(session_id)
                except Exception:
                    log.warning("closing resource %s for %s failed", name, session_id,
                                exc_info=True)
        finally:
            if live.turn is not None:
                live.turn.release()

    # ---- normalisation -----------------------------------------------------------------
    @staticmethod
    def _normalise_prompt(sid: str, first: Any, session: Session, template: Template) -> Prompt:
        bindings: Any = []
        payload = first
        if isinstance(first, dict) and "prompt" in first:
            payload = first["prompt"]
            bindings = first.get("bindings") or []
        if isinstance(payload, str):
            messages = [{"role": "user", "content": payload}]
        elif isinstance(payload, list):
            messages = [_message_dict(m) for m in payload]
            if not messages:
                raise TemplateError(f"template {template.id!r} yielded an empty message list",
                                    code="bad_prompt")
        elif isinstance(payload, dict) and ("content" in payload or "type" in payload):
            messages = [_message_dict(payload)]
        else:
            raise TemplateError(
                f"template {template.id!r} yielded a {type(payload).__name__} as its prompt; "
                "expected a string, chat messages, or a dict with 'prompt'", code="bad_prompt")
        _apply_bindings(template, session, bindings)
        text = "\n\n".join(m["content"] for m in messages if isinstance(m["content"], str)
                            and m["content"])
        if len(messages) > 1 or not isinstance(messages[0]["content"], str):
            text = text or Prompt.render(messages)
        return Prompt(session_id=sid, text=text, messages=messages,
                      capabilities=list(session.capabilities),
                      has_solution=template.solution_fn is not None)


def _apply_bindings(template: Template, session: Session, bindings: Any) -> None:
    """Per-episode bindings: capabilities (a list), or HUD's ``{name: data}`` mapping.

    A mapping entry for a published capability merges ``data`` into its ``params``; an
    entry carrying ``protocol`` and ``url`` adds a capability of that name.
    """
    if isinstance(bindings, dict):
        for name, data in bindings.items():
            if not isinstance(data, dict):
                raise TemplateError(f"template {template.id!r}: bindings must map a "
                                    f"capability name to an object, got {name!r}: "
                                    f"{type(data).__name__}", code="bad_prompt")
            idx = next((i for i, c in enumerate(session.capabilities) if c.name == name), None)
            if idx is not None:
                cap = session.capabilities[idx]
                session.capabilities[idx] = Capability(cap.name, cap.protocol, cap.url,
                                                       {**cap.params, **data})
            elif "protocol" in data and "url" in data:
                session.capabilities.append(Capability.from_manifest({"name": name, **data}))
            else:
                log.warning("template %s bound unknown capability %r; ignored",
                            template.id, name)
        return
    for b in bindings:
        cap = b if isinstance(b, Capability) else Capability.from_manifest(b)
        session.capabilities.append(cap)


def _message_dict(m: Any) -> dict[str, Any]:
    """One prompt turn as a chat message; MCP-style text blocks become plain text."""
    if hasattr(m, "model_dump"):
        m = m.model_dump()
    elif not isinstance(m, dict) and hasattr(m, "role") and hasattr(m, "content"):
        m = {"role": m.role, "content": m.content}
    if not isinstance(m, dict):
        return {"role": "user", "content": str(m)}
    if "content" not in m and m.get("type") == "text":  # a bare content block
        m = {"role": "user", "content": m}
    msg = dict(m)
    msg.setdefault("role", "user")
    msg["content"] = _content(msg.get("content"))
    return msg


def _content(content: Any) -> Any:
    """Text-only MCP/Anthropic blocks (``{"type": "text", "text": ...}``) -> a string."""
    if hasattr(content, "model_dump"):
        content = content.model_dump()
    if isinstance(content, str):
        return content
    blocks = content if isinstance(content, list) else [content]
    blocks = [b.model_dump() if hasattr(b, "model_dump") else b for b in blocks]
    if all(isinstance(b, dict) and b.get("type") == "text" for b in blocks):
        return "\n\n".join(str(b.get("text", "")) for b in blocks)
    if all(isinstance(b, str) for b in blocks):
        return "\n\n".join(blocks)
    return blocks


def _verifier_task(task: Task) -> Task | None:
    verifier = getattr(task, "verifier", None)
    if verifier is None or isinstance(verifier, Task):
        return verifier
    return Task.model_validate(verifier)


def grade_frame(raw: Any) -> dict[str, Any]:
    """A grade yield as HUD's wire frame (``score`` plus any result fields)."""
    if isinstance(raw, dict):
        return dict(raw)
    if hasattr(raw, "model_dump") and hasattr(raw, "reward"):
        frame = raw.model_dump(mode="json")
        frame["score"] = frame.pop("reward")
        return frame
    value = getattr(raw, "reward", raw)
    return {"score": float(value) if isinstance(value, int | float) else value}


def normalise_grade(raw: Any) -> Grade:
    """A float, a dict with ``score``, or an object with ``reward`` -> :class:`Grade`."""
    subscores: dict[str, float] = {}
    info: dict[str, Any] = {}
    if isinstance(raw, dict):
        if "score" not in raw and "reward" not in raw:
            raise GradeError(f"grade dict has no 'score' (keys: {sorted(raw)})",
                             code="invalid_reward")
        value = raw.get("score", raw.get("reward"))
        subs = raw.get("subscores") or []
        info = dict(raw.get("info") or {})
        if raw.get("isError") is True:
            raise GradeError(f"grader reported an error: {raw.get('content', '')}"[:300],
                             code="grader_reported_error")
    elif hasattr(raw, "reward") and not isinstance(raw, int | float):
        value = raw.reward
        subs = getattr(raw, "subscores", None) or []
        info = dict(getattr(raw, "info", None) or {})
        if getattr(raw, "isError", False):
            raise GradeError(f"grader reported an error: {getattr(raw, 'content', '')}",
                             code="grader_reported_error")
    else:
        value, subs = raw, []
    if not isinstance(value, int | float):  # bool counts, as in HUD
        raise GradeError(f"reward must be a number, got {type(value).__name__}: {value!r}"[:200],
                         code="invalid_reward")
    reward = float(value)
    if not math.isfinite(reward):
        raise GradeError(f"reward is not finite: {reward}", code="invalid_reward")
    for key in ("content", "done"):
        extra = raw.get(key) if isinstance(raw, dict) else getattr(raw, key, None)
        if extra is not None and key not in info:
            info[key] = extra
    if subs and not isinstance(subs, dict):
        info.setdefault("subscore_tree", [jsonable(s) for s in subs])
    if isinstance(subs, dict):
        subscores = {str(k): float(v) for k, v in subs.items()}
    else:
        for s in subs:
            name = s.get("name") if isinstance(s, dict) else getattr(s, "name", None)
            val = s.get("value") if isinstance(s, dict) else getattr(s, "value", None)
            if name is not None and isinstance(val, int | float):
                subscores[str(name)] = float(val)
    return Grade(reward=reward, subscores=subscores, info=jsonable(info))
