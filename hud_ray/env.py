"""The authoring model: ``Environment``, ``@env.template``, lifecycle hooks.

Same shape as the HUD SDK v6, so a HUD ``tasks.py`` ports by changing one import::

    env = Environment(name="letter-count")

    @env.template()
    async def count_letter(word: str = "strawberry", letter: str = "r"):
        answer = yield f"How many '{letter}'s are in '{word}'?"
        yield 1.0 if answer == str(word.count(letter)) else 0.0

    tasks = [count_letter(word=w) for w in ("strawberry", "raspberry")]

Calling a template runs nothing: it mints a :class:`~hud_ray.task.Task` row.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from hud_ray.capabilities.base import Capability, SessionResource
from hud_ray.errors import ConfigError, TemplateError
from hud_ray.placement import check_request

if TYPE_CHECKING:
    from hud_ray.task import Task

TemplateFn = Callable[..., AsyncGenerator[Any, Any]]
SolutionFn = Callable[..., Awaitable[Any]]

#: Every environment constructed in this process, by name (the latest one wins), so an
#: environment defined in a module the tasks file imports (``from env import ...``) is
#: found by name.
_REGISTRY: dict[str, Environment] = {}


def registered_environment(name: str) -> Environment | None:
    """The environment most recently constructed with ``name`` in this process."""
    return _REGISTRY.get(name)


class Answer[T](BaseModel):
    """What a ``returns=``-typed template receives as its answer (HUD's shape).

    ``content`` is the agent's answer parsed into the declared type, or the original
    value when parsing failed; ``raw`` is the answer as submitted, as a string.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    content: T = Field(description="the parsed answer")
    raw: str = ""


@dataclass
class Session:
    """What template code can reach while one rollout runs (``current_session()``)."""

    id: str
    task: Task
    capabilities: list[Capability] = field(default_factory=list)
    resources: dict[str, Any] = field(default_factory=dict)
    env: Environment | None = None

    def resource(self, name: str) -> Any:
        """The per-session handle of a declared resource (e.g. a workspace)."""
        try:
            return self.resources[name]
        except KeyError:
            raise KeyError(f"session has no resource {name!r}; "
                           f"declared: {sorted(self.resources)}") from None


_current_session: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "hud_ray_session", default=None)


def current_session() -> Session | None:
    """The session whose template code is running now, or ``None`` outside a rollout."""
    return _current_session.get()


class Template:
    """A registered ``@env.template``: call it to mint a :class:`Task` row."""

    def __init__(self, env: Environment, id: str, description: str, func: TemplateFn,
                 *, input: Any = None, returns: Any = None) -> None:
        self.env = env
        self.id = id
        self.description = description
        self.func = func
        self.input_type = input
        self.return_type = returns
        try:
            self.sig = inspect.signature(func, eval_str=True)
        except Exception:  # an annotation that does not resolve: keep it as written
            self.sig = inspect.signature(func)
        self.solution_fn: SolutionFn | None = None
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    def __call__(self, *args: Any, **kwargs: Any) -> Task:
        from hud_ray.task import Task

        try:
            bound = self.sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise TemplateError(f"template {self.id!r}: {exc}") from None
        try:  # rows cross processes and land on disk as JSON
            json.dumps(bound.arguments)
        except (TypeError, ValueError) as exc:
            raise TemplateError(f"template {self.id!r}: arguments must be JSON-serialisable "
                                f"({exc})") from None
        task = Task(env=self.env.name, id=self.id, args=dict(bound.arguments))
        task._env = self.env
        return task

    def solution(self, fn: SolutionFn) -> SolutionFn:
        """Register the reference solution the ``oracle`` agent runs.

        ``fn`` is an async function taking the template's parameters; it returns
        the answer. A keyword parameter named ``ctx`` receives a
        :class:`SolutionContext` (capabilities, connected clients).
        """
        if not inspect.iscoroutinefunction(fn):
            raise TemplateError(f"solution for {self.id!r} must be an `async def` function")
        self.solution_fn = fn
        return fn

    def bind_all(self, args: dict[str, Any]) -> inspect.BoundArguments:
        """Bind a row's args to the signature, defaults applied."""
        try:
            bound = self.sig.bind(**args)
        except TypeError as exc:
            raise TemplateError(f"template {self.id!r} cannot take args {args!r}: {exc}") from None
        bound.apply_defaults()
        return bound

    def coerce_args(self, args: dict[str, Any]) -> dict[str, Any]:
        """Row args validated into the annotated parameter types (``"3"`` -> ``3``), as HUD.

        A value that does not validate (as itself, or as JSON text) passes unchanged.
        """
        out: dict[str, Any] = {}
        for key, value in args.items():
            param = self.sig.parameters.get(key)
            ann = param.annotation if param is not None else inspect.Parameter.empty
            if ann in (inspect.Parameter.empty, Any) or isinstance(ann, str):
                out[key] = value
                continue
            try:
                adapter: TypeAdapter[Any] = TypeAdapter(ann)
                out[key] = adapter.validate_python(value)
            except ValidationError:
                out[key] = value
                if isinstance(value, str):
                    try:
                        out[key] = adapter.validate_json(value)
                    except ValidationError:
                        pass
            except Exception:  # not a type pydantic understands
                out[key] = value
        return out

    def build_answer(self, answer: Any) -> Any:
        """The value sent into the template for grading (an :class:`Answer` with ``returns=``)."""
        if self.return_type is None:
            return answer
        try:
            adapter: TypeAdapter[Any] = TypeAdapter(self.return_type)
            content = adapter.validate_json(answer) if isinstance(answer, str) \
                else adapter.validate_python(answer)
        except ValidationError:
            content = answer
        return Answer(content=content, raw=answer if isinstance(answer, str) else str(answer))

    def manifest_entry(self) -> dict[str, Any]:
        return {"id": self.id, "description": self.description,
                "args": [p for p in self.sig.parameters],
                "has_solution": self.solution_fn is not None}

    def __repr__(self) -> str:
        return f"<Template {self.env.name}:{self.id}>"


class Environment:
    """Capabilities, templates and lifecycle hooks of one environment.

    ``placement`` is the Ray resource request of the sandbox actors that host this
    environment, e.g. ``{"CPU": 0.5, "memory": 2 * 1024**3, "sandbox": 1}`` (``CPU``,
    ``GPU``, ``memory`` in bytes, and custom resources a node offers with ``ray start
    --resources``). An environment with a placement always runs in sandbox actors, never
    inside the harness; the run option ``sandbox_resources`` overrides it key by key
    (see :mod:`hud_ray.placement` and docs/CLUSTER.md).
    """

    def __init__(self, name: str = "environment", *, version: str = "0.0.1",
                 capabilities: Sequence[Capability] | None = None,
                 placement: Mapping[str, float] | None = None,
                 resources: Any = None) -> None:
        if resources is not None:
            raise ConfigError(
                f"Environment({name!r}, resources=...): not an option; for the Ray resources "
                "its sandbox actors request use placement={'CPU': 0.5, 'sandbox': 1, ...}; "
                "per-rollout resources come from env.workspace()/env.browser()/env.mcp()")
        self.name = name
        #: Ray resources the sandbox actors hosting this environment request.
        self.placement: dict[str, float] = check_request(
            placement, what=f"Environment({name!r}, placement=...)")
        self.version = version
        self.capabilities: list[Capability] = []
        self.templates: dict[str, Template] = {}
        self.resources: dict[str, SessionResource] = {}
        self._on_start: list[Callable[[], Awaitable[None]]] = []
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        self._starting = False
        #: Capabilities ``@env.initialize`` hooks published: daemons this process runs.
        self.served_capabilities: set[str] = set()
        for cap in capabilities or []:
            self.add_capability(cap)
        _REGISTRY[name] = self

    @property
    def tasks(self) -> dict[str, Template]:
        """Alias of :attr:`templates`, as in HUD."""
        return self.templates

    @property
    def stateful(self) -> bool:
        """Whether rollouts need per-session server state (pooled sandbox actors)."""
        return bool(self.resources)

    @property
    def colocatable(self) -> bool:
        """Whether the harness may host this environment in its own process: it keeps
        no per-session server state and asks for no placement of its own."""
        return not self.stateful and not self.placement

    @property
    def isolates_sessions(self) -> bool:
        """Whether every resource keeps concurrent sessions apart (many per sandbox)."""
        return all(r.concurrent_sessions for r in self.resources.values())

    @property
    def one_session_at_a_time(self) -> bool:
        """Whether a sandbox must run this env's rollouts one after another, whatever
        its session capacity: a resource says so (``env.mcp``), or a started hook
        published a daemon of its own (an MCP game server, say), whose state all
        rollouts in the process would share."""
        return bool(self.served_capabilities) or any(
            getattr(r, "exclusive", False) for r in self.resources.values())

    def template(self, *, id: str | None = None, description: str = "", input: Any = None,
                 returns: Any = None) -> Callable[[TemplateFn], Template]:
        """Register an async generator with two yields (prompt, then grade) as a template."""

        def decorate(func: TemplateFn) -> Template:
            if not inspect.isasyncgenfunction(func):
                raise TemplateError(
                    f"@env.template: {getattr(func, '__qualname__', func)!s} must be an async "
                    "generator function (`async def` with two `yield`s: prompt, then grade)")
            template_id = id or func.__name__
            if template_id in self.templates:
                raise TemplateError(
                    f"template {template_id!r} already registered on env {self.name!r}")
            tpl = Template(self, template_id, description, func, input=input, returns=returns)
            self.templates[template_id] = tpl
            return tpl

        return decorate

    def initialize(self, fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Register a hook run once when a sandbox brings the environment up."""
        self._on_start.append(fn)
        return fn

    def shutdown(self, fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Register a teardown hook (run in reverse order)."""
        self._on_stop.append(fn)
        return fn

    def add_capability(self, cap: Capability) -> None:
        """Publish concrete wire data, replacing a same-named entry."""
        if not isinstance(cap, Capability):
            raise TypeError(f"expected a Capability, got {type(cap).__name__}")
        if self._starting:
            self.served_capabilities.add(cap.name)
        self.capabilities = [c for c in self.capabilities if c.name != cap.name] + [cap]

    def capability(self, name: str) -> Capability:
        for cap in self.capabilities:
            if cap.name == name:
                return cap
        raise KeyError(f"env {self.name!r} has no capability {name!r}")

    def add_resource(self, resource: SessionResource) -> None:
        """Declare per-rollout server state (a workspace, a browser profile)."""
        if resource.name in self.resources:
            raise TemplateError(f"env {self.name!r} already has a resource {resource.name!r}")
        self.resources[resource.name] = resource

    def workspace(self, root: str | Path | None = None, *, name: str = "shell",
                  **kwargs: Any) -> Any:
        """Serve an isolated per-rollout shell workspace over ``ssh/2`` (needs ``hud-ray[ssh]``).

        As in HUD, ``root`` is created when the environment starts, in registration
        order with the ``@env.initialize`` hooks, so a hook registered after this call
        may write into it. Every rollout then gets a fresh copy of ``root``; a
        ``BashGrader(cwd=root)`` runs in that copy. HUD's ``track_files`` is ignored.
        """
        from hud_ray.capabilities.ssh import Workspace

        kwargs.pop("track_files", None)
        ws = Workspace(root=root, name=name, **kwargs)
        self.add_resource(ws)
        if root is not None:
            async def _create_root() -> None:
                await asyncio.to_thread(Path(root).mkdir, parents=True, exist_ok=True)

            self._on_start.append(_create_root)
        return ws

    def mcp(self, server: Any, *, name: str = "tools", **kwargs: Any) -> Any:
        """Serve ``server`` (an MCP ``FastMCP``) to every rollout as an ``mcp`` capability.

        The harnesses list its tools and offer them to the model; calls go to the server
        in the sandbox, where template code can read the state they changed. Runs in a
        sandbox actor, one rollout at a time (the server's state is shared). Needs
        ``hud-ray[mcp]``.
        """
        from hud_ray.capabilities.mcp_server import MCPServer

        res = MCPServer(server, name=name, **kwargs)
        self.add_resource(res)
        return res

    def browser(self, *, name: str = "browser", app: Any = None,
                isolation: str = "context", **kwargs: Any) -> Any:
        """Give every rollout a headless Chromium page over ``cdp/1.3`` (needs
        ``hud-ray[browser]`` and Debian's ``chromium``).

        ``app`` (a directory, an ASGI app or a :class:`~hud_ray.capabilities.webapp.WebApp`)
        is served per rollout; graders read ``session.resource(name)`` (a
        :class:`~hud_ray.capabilities.cdp.BrowserSession`: page state over CDP, the app's
        ``state``). ``isolation="context"`` shares one warm browser (storage isolation);
        ``"browser"`` launches one per rollout. See docs/BROWSER.md.
        """
        from hud_ray.capabilities.cdp import Browser

        res = Browser(name=name, app=app, isolation=isolation, **kwargs)
        self.add_resource(res)
        return res

    async def start(self) -> None:
        self._starting = True
        try:
            for hook in self._on_start:
                await hook()
        finally:
            self._starting = False
        for res in self.resources.values():
            await res.start()

    async def stop(self) -> None:
        for res in reversed(list(self.resources.values())):
            await res.stop()
        for hook in reversed(self._on_stop):
            await hook()

    def manifest(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version,
                "capabilities": [c.to_manifest() for c in self.capabilities],
                "templates": [t.manifest_entry() for t in self.templates.values()],
                "resources": sorted(self.resources)}

    def __repr__(self) -> str:
        return f"<Environment {self.name!r} templates={sorted(self.templates)}>"
