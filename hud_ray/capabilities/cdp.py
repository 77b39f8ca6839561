"""The ``cdp/1.3`` capability, server side: a real headless Chromium per sandbox.

``env.browser(...)`` declares a :class:`Browser`. The sandbox launches Debian's Chromium
once (kept warm) and gives every rollout a fresh browser context with one page, so no
cookies, storage or tabs leak between rollouts. Chromium listens on loopback only; a
small bridge on the node address forwards a harness's WebSocket to it, and only with a
live per-rollout token in the URL (revoked the moment the rollout ends). Requests that
carry an ``Origin`` header (anything a web page can send) are refused, and Chromium is
never given ``--remote-allow-origins``, so a page cannot drive the browser it runs in.

Isolation modes (``isolation=``): ``"context"`` (default) shares one warm browser; a
browser context isolates storage, not CDP clients (a harness on the browser endpoint can
see other rollouts' pages). ``"browser"`` launches a browser per rollout: real isolation
between harnesses, at the cost of a cold start (~1.5 s) per rollout.

As root, Chromium runs as a dedicated unprivileged uid inside bubblewrap (it sees only
``/usr``, ``/etc``, a private ``/tmp`` and its profile) with its own sandbox on.

A browser that dies is detected: the rollout's grading raises a retryable
:class:`~hud_ray.errors.CapabilityError` (an ``infra_error`` row, retried) and the next
rollout gets a freshly launched browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import json
import logging
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hud_ray.capabilities.base import Capability, SessionResource
from hud_ray.errors import AgentFault, CapabilityError

log = logging.getLogger(__name__)

CALL_TIMEOUT = 15.0
LAUNCH_TIMEOUT = 30.0
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium",
                       "/usr/bin/chromium-browser")
FLAGS = ("--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup",
         "--no-default-browser-check", "--mute-audio", "--remote-debugging-port=0")
#: Chromium's managed policy (``make system-deps`` installs ``configs/chromium-policy.json``
#: here): blocks ``file://``, ``chrome://`` and ``view-source:`` so an agent cannot read
#: the sandbox's files (a taskset's answers) through the browser.
POLICY_PATH = "/etc/chromium/policies/managed/hud-ray.json"
#: Host directories the jailed browser sees (read-only); everything else is absent.
JAIL_DIRS = ("/usr", "/etc")
_JAIL_LINKS = (("usr/bin", "/bin"), ("usr/sbin", "/sbin"), ("usr/lib", "/lib"),
               ("usr/lib64", "/lib64"), ("usr/lib32", "/lib32"))
_LISTENING = re.compile(rb"DevTools listening on (ws://[^\s]+)")


class PageClosed(AgentFault):
    """The rollout's page is gone while its browser lives: the agent closed it (or its
    context). Graders reading the page then score 0.0, valid (see :class:`AgentFault`)."""

    code = "page_closed"


def chromium_path() -> str:
    """The Chromium binary to launch (``HUD_RAY_CHROMIUM`` overrides)."""
    from hud_ray.settings import Settings

    env = Settings.from_env().get("HUD_RAY_CHROMIUM")
    for path in ([env] if env else []) + list(CHROMIUM_CANDIDATES):
        if path and os.access(path, os.X_OK):
            return path
    raise CapabilityError("env.browser() needs Chromium: apt-get install -y chromium",
                          retryable=False)


@dataclass(frozen=True)
class Jail:
    """How a Chromium is confined: its host uid (None: ours), bubblewrap, its own sandbox."""

    uid: int | None
    bwrap: str | None
    chromium_sandbox: bool


def jail_plan() -> Jail:
    """The confinement this host allows (``HUD_RAY_CHROMIUM_SANDBOX=0``: none).

    As root, Chromium runs as a dedicated unprivileged host uid (from the range the ssh
    workspaces use); with ``bwrap`` installed, inside a bubblewrap jail that sees only
    ``/usr``, ``/etc``, a private ``/tmp`` and its profile; and always with Chromium's own
    sandbox (renderers in their own namespaces under seccomp-bpf), which needs
    unprivileged user namespaces.
    """
    from hud_ray.settings import Settings

    if Settings.from_env().get("HUD_RAY_CHROMIUM_SANDBOX") is False:
        return Jail(uid=None, bwrap=None, chromium_sandbox=False)
    from hud_ray.capabilities.ssh import _uids

    uid = next(_uids) if os.geteuid() == 0 else None
    return Jail(uid=uid, bwrap=shutil.which("bwrap"), chromium_sandbox=True)


def _jail_argv(jail: Jail, profile: str, binary: str) -> list[str]:
    argv = ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    home = os.path.dirname(os.path.realpath(binary))  # HUD_RAY_CHROMIUM may be elsewhere
    outside = not any(home == d or home.startswith(d + "/") for d in JAIL_DIRS)
    for d in (*JAIL_DIRS, home) if outside else JAIL_DIRS:
        if os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    for target, link in _JAIL_LINKS:
        if os.path.exists("/" + target):
            argv += ["--symlink", target, link]
    return [jail.bwrap or "bwrap", *argv, "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", "/tmp", "--tmpfs", "/dev/shm", "--bind", profile, profile,
            "--clearenv", "--setenv", "HOME", profile, "--setenv", "PATH", "/usr/bin:/bin",
            "--chdir", profile, "--"]


def _sweep_profiles() -> None:
    """Remove profiles left by killed processes (``hud-ray-chromium-<pid>-*``)."""
    for path in Path(tempfile.gettempdir()).glob("hud-ray-chromium-*-*"):
        pid = path.name.split("-")[3]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        shutil.rmtree(path, ignore_errors=True)


def _remove(profile: str) -> None:
    """Remove a profile; a jailed browser's processes die just after bubblewrap."""
    for _ in range(50):
        shutil.rmtree(profile, ignore_errors=True)
        if not os.path.exists(profile):
            return
        time.sleep(0.05)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class CDPConnection:
    """A minimal CDP client over one WebSocket: ``call`` with a timeout on every call."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader = asyncio.create_task(self._read())
        self.closed = False

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> CDPConnection:
        from websockets.asyncio.client import connect

        ws = await asyncio.wait_for(connect(url, max_size=None, **kwargs), CALL_TIMEOUT)
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                fut = self._pending.pop(msg.get("id", -1), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        except Exception:
            log.debug("CDP connection ended", exc_info=True)
        finally:
            self.closed = True
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(CapabilityError("browser connection lost"))
            self._pending.clear()

    async def call(self, method: str, params: dict[str, Any] | None = None, *,
                   session_id: str | None = None, timeout: float = CALL_TIMEOUT) -> Any:
        """Send one command; its ``result`` (a CDP error raises CapabilityError)."""
        if self.closed:
            raise CapabilityError("browser connection lost")
        msg_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session_id:
            msg["sessionId"] = session_id
        try:
            await self.ws.send(json.dumps(msg))
            reply = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise CapabilityError(f"CDP {method} timed out after {timeout:g}s") from None
        except CapabilityError:
            raise
        except Exception as exc:
            raise CapabilityError(f"CDP {method} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self._pending.pop(msg_id, None)
        if "error" in reply:
            raise CapabilityError(f"CDP {method}: {reply['error'].get('message')}",
                                  retryable=False)
        return reply.get("result", {})

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader


class Chromium:
    """One headless Chromium process on loopback, with the sandbox's own CDP connection."""

    def __init__(self, proc: asyncio.subprocess.Process, ws_url: str, profile: str,
                 conn: CDPConnection, jail: Jail | None = None) -> None:
        self.proc = proc
        self.jail = jail or Jail(uid=None, bwrap=None, chromium_sandbox=False)
        self.ws_url = ws_url
        self.profile = profile
        self.conn = conn
        self.first_page: str | None = None  # the tab Chromium opens at launch
        m = re.match(r"ws://([^/]+)(/.*)", ws_url)
        assert m is not None
        self.address, self.browser_path = m.group(1), m.group(2)
        self._drain = asyncio.create_task(self._drain_stderr())

    @classmethod
    async def launch(cls, extra_args: tuple[str, ...] = ()) -> Chromium:
        binary = chromium_path()
        if not await asyncio.to_thread(os.path.exists, POLICY_PATH):
            log.warning("%s is missing: pages can open file:// URLs (the sandbox's files); "
                        "run `make system-deps`", POLICY_PATH)
        await asyncio.to_thread(_sweep_profiles)
        jail = jail_plan()
        profile = tempfile.mkdtemp(prefix=f"hud-ray-chromium-{os.getpid()}-")
        argv = [binary, *FLAGS, f"--user-data-dir={profile}", *extra_args, "about:blank"]
        if not jail.chromium_sandbox:
            argv.insert(1, "--no-sandbox")
            log.warning("HUD_RAY_CHROMIUM_SANDBOX=0: Chromium runs unjailed, --no-sandbox")
        elif jail.bwrap is None:
            log.warning("bwrap is missing: Chromium runs without its bubblewrap jail "
                        "(it sees the host's files); apt-get install bubblewrap")
        else:
            argv = _jail_argv(jail, profile, binary) + argv
        ids: dict[str, Any] = {}
        if jail.uid is not None:
            os.chown(profile, jail.uid, jail.uid)
            ids = {"user": jail.uid, "group": jail.uid, "extra_groups": []}
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, preexec_fn=_die_with_parent,
            start_new_session=True, **ids)
        assert proc.stderr is not None
        try:
            ws_url = await asyncio.wait_for(cls._endpoint(proc.stderr), LAUNCH_TIMEOUT)
            conn = await CDPConnection.open(ws_url)
            targets = (await conn.call("Target.getTargets"))["targetInfos"]
        except BaseException as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            shutil.rmtree(profile, ignore_errors=True)
            if isinstance(exc, CapabilityError) and jail.chromium_sandbox:
                raise CapabilityError(f"{exc} (jailed launch; on hosts without unprivileged "
                                      "user namespaces set HUD_RAY_CHROMIUM_SANDBOX=0)",
                                      retryable=exc.retryable) from exc
            if isinstance(exc, CapabilityError) or not isinstance(exc, Exception):
                raise
            raise CapabilityError(f"Chromium failed to start: {type(exc).__name__}: "
                                  f"{exc}") from exc
        chromium = cls(proc, ws_url, profile, conn, jail)
        chromium.first_page = next((t["targetId"] for t in targets if t["type"] == "page"), None)
        return chromium

    @staticmethod
    async def _endpoint(stream: asyncio.StreamReader) -> str:
        tail: list[bytes] = []
        while line := await stream.readline():
            if m := _LISTENING.search(line):
                return m.group(1).decode()
            tail = ([*tail, line.strip()])[-3:]
        raise CapabilityError("Chromium exited at start: " +
                              b" | ".join(tail).decode(errors="replace")[:300])

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        with contextlib.suppress(Exception):
            while await self.proc.stderr.readline():
                pass

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and not self.conn.closed

    async def close(self) -> None:
        await self.conn.close()
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.wait(), 10)
        self._drain.cancel()
        await asyncio.to_thread(_remove, self.profile)


@dataclass
class BrowserSession:
    """What template code and graders get for one rollout (``session.resource("browser")``).

    ``state`` is this rollout's server-side app state (a dict the app writes);
    ``app_url`` is where the environment's app is served for this rollout.
    """

    id: str
    target_id: str
    context_id: str
    app_url: str | None
    state: dict[str, Any] = field(default_factory=dict)
    _chromium: Chromium | None = None
    _cdp_session: str | None = None

    def _conn(self) -> CDPConnection:
        if self._chromium is None or not self._chromium.alive:
            raise CapabilityError(f"the browser of rollout {self.id} crashed", retryable=True)
        return self._chromium.conn

    async def _session(self) -> str:
        if self._cdp_session is None:
            res = await self._conn().call("Target.attachToTarget",
                                          {"targetId": self.target_id, "flatten": True})
            self._cdp_session = res["sessionId"]
        return self._cdp_session

    async def cdp(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send a CDP command to this rollout's page (with a timeout).

        A dead browser raises a retryable :class:`CapabilityError` (infrastructure); a
        page the agent closed (itself, every page, or its context) raises
        :class:`PageClosed`, which scores the rollout 0.0.
        """
        try:
            sid = await self._session()
            return await self._conn().call(method, params, session_id=sid)
        except PageClosed:
            raise
        except CapabilityError:
            if not await self._page_exists():
                raise PageClosed(f"the agent closed its browser page (rollout {self.id}); "
                                 "the grader could not read it") from None
            raise

    async def _page_exists(self) -> bool:
        """Whether this rollout's page is still open (a dead browser raises, retryable)."""
        crashed = CapabilityError(f"the browser of rollout {self.id} crashed", retryable=True)
        try:
            targets = (await self._conn().call("Target.getTargets"))["targetInfos"]
        except CapabilityError:
            raise crashed from None
        if self._chromium is None or not self._chromium.alive:
            raise crashed
        if not any(t.get("targetId") == self.target_id for t in targets):
            self._cdp_session = None
            return False
        return True

    async def on_app(self) -> bool:
        """Whether the page shows this rollout's app (not another origin or a ``data:`` URL).

        The DOM is the agent's to change; graders that read it should check this first,
        and prefer the app's server-side ``state`` where they can.
        """
        return self.app_url is not None and (await self.url()).startswith(self.app_url)

    async def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page; its JSON value (an exception raises)."""
        res = await self.cdp("Runtime.evaluate", {"expression": expression,
                                                  "returnByValue": True,
                                                  "awaitPromise": True})
        if "exceptionDetails" in res:
            detail = res["exceptionDetails"]
            text = detail.get("exception", {}).get("description") or detail.get("text")
            raise CapabilityError(f"page script raised: {text}", retryable=False)
        return res.get("result", {}).get("value")

    async def url(self) -> str:
        """The page's current URL."""
        return str(await self.evaluate("location.href"))

    async def text(self, selector: str = "body") -> str | None:
        """``innerText`` of the first element matching ``selector`` (None when absent)."""
        return await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " return e ? e.innerText : null; })()")

    async def value(self, selector: str) -> str | None:
        """The ``value`` of a form field (None when absent)."""
        return await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " return e ? e.value : null; })()")


@dataclass
class _Live:
    session: BrowserSession
    chromium: Chromium
    token: str  # in the CDP URL (never shown to the page)
    app_token: str  # in the app URL
    owned: bool  # a browser launched for this rollout alone


class Browser(SessionResource):
    """Chromium for every rollout of one sandbox, published as ``cdp/1.3``."""

    concurrent_sessions = True  # each rollout has its own context (or browser)

    def __init__(self, *, name: str = "browser", app: Any = None,
                 isolation: str = "context", host: str | None = None) -> None:
        if isolation not in ("context", "browser"):
            raise CapabilityError(f"env.browser(isolation={isolation!r}): use 'context' or "
                                  "'browser'", retryable=False)
        self.name = name
        self.isolation = isolation
        self.host = host
        self.app = app
        self._chromium: Chromium | None = None
        self._lock = asyncio.Lock()
        self._start_lock = asyncio.Lock()
        self._live: dict[str, _Live] = {}
        self._ours: set[str] = set()  # browser contexts of rollouts, live or opening
        self._bridge: Any = None
        self._server: Any = None  # the app server (hud_ray.capabilities.webapp)
        self._pipes: dict[str, set[asyncio.StreamWriter]] = {}
        self.address: tuple[str, int] | None = None
        self.launches = 0

    # ---- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        async with self._start_lock:
            if self._bridge is None:
                await self._start()

    async def _start(self) -> None:
        from hud_ray.capabilities.ssh import node_address

        host = self.host or node_address()
        self._bridge = await asyncio.start_server(self._serve_bridge, host, 0)
        self.address = (host, self._bridge.sockets[0].getsockname()[1])
        if self.app is not None:
            from hud_ray.capabilities.webapp import AppServer

            self._server = AppServer(self.app, host, self._state_for)
            await self._server.start()
        if self.isolation == "context":
            await self._warm()

    async def stop(self) -> None:
        for sid in list(self._live):
            await self.close(sid)
        if (client := sys.modules.get("hud_ray.capabilities.cdp_client")) is not None:
            await client.stop_idle_driver()  # solutions' Playwright driver, kept warm
        if self._chromium is not None:
            await self._chromium.close()
            self._chromium = None
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self._bridge is not None:
            self._bridge.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._bridge.wait_closed(), 5)
            self._bridge = None

    async def _warm(self) -> Chromium:
        async with self._lock:
            if self._chromium is not None and not self._chromium.alive:
                log.warning("browser %s died (exit %s); restarting it", self.name,
                            self._chromium.proc.returncode)
                await self._chromium.close()
                self._chromium = None
            if self._chromium is None:
                self._chromium = await Chromium.launch()
                self.launches += 1
            return self._chromium

    async def open(self, session_id: str) -> list[Capability]:
        await self.start()
        assert self.address is not None
        owned = self.isolation == "browser"
        chromium = await Chromium.launch() if owned else await self._warm()
        if owned:
            self.launches += 1
        try:
            ctx = await chromium.conn.call("Target.createBrowserContext",
                                           {"disposeOnDetach": False})
            self._ours.add(ctx["browserContextId"])  # before any await: _sweep spares it
            target = await chromium.conn.call("Target.createTarget", {
                "url": "about:blank", "browserContextId": ctx["browserContextId"]})
        except BaseException:
            if owned:
                await chromium.close()
            elif "ctx" in locals():
                self._ours.discard(ctx["browserContextId"])
            raise
        token, app_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        app_url = self._server.url_for(app_token) if self._server is not None else None
        session = BrowserSession(id=session_id, target_id=target["targetId"],
                                 context_id=ctx["browserContextId"], app_url=app_url,
                                 _chromium=chromium)
        self._live[session_id] = _Live(session, chromium, token, app_token, owned)
        host, port = self.address
        url_host = f"[{host}]" if ":" in host else host
        params: dict[str, Any] = {"target_id": session.target_id,
                                  "browser_context_id": session.context_id,
                                  "isolation": self.isolation}
        if app_url:
            params["start_url"] = app_url
        return [Capability(self.name, "cdp/1.3",
                           f"ws://{url_host}:{port}/{token}/devtools/browser", params)]

    async def close(self, session_id: str) -> None:
        live = self._live.pop(session_id, None)
        if live is None:
            return
        self._revoke(live.token)
        self._ours.discard(live.session.context_id)
        if live.owned:
            await live.chromium.close()
        elif live.chromium.alive:
            with contextlib.suppress(CapabilityError):
                await live.chromium.conn.call("Target.disposeBrowserContext",
                                              {"browserContextId": live.session.context_id})
            if not any(v.chromium is live.chromium for v in self._live.values()):
                await self._sweep(live.chromium)

    async def _sweep(self, chromium: Chromium) -> None:
        """With no rollout left on a shared browser, close what rollouts' CDP clients made
        outside their own contexts (tabs in the default context, contexts of their own).

        A rollout may open meanwhile: its context is in ``_ours`` from the moment it
        exists, and is checked before every close."""
        with contextlib.suppress(CapabilityError):
            conn = chromium.conn
            for ctx_id in (await conn.call("Target.getBrowserContexts"))["browserContextIds"]:
                if ctx_id not in self._ours:
                    await conn.call("Target.disposeBrowserContext",
                                    {"browserContextId": ctx_id})
            for target in (await conn.call("Target.getTargets"))["targetInfos"]:
                if target["type"] == "page" and target["targetId"] != chromium.first_page \
                        and target.get("browserContextId") not in self._ours:
                    await conn.call("Target.closeTarget", {"targetId": target["targetId"]})

    def session_context(self, session_id: str) -> Any:
        return self._live[session_id].session

    def _state_for(self, token: str) -> dict[str, Any] | None:
        for live in self._live.values():
            if _same(live.app_token, token):
                return live.session.state
        return None

    # ---- the bridge -----------------------------------------------------------------------
    def _revoke(self, token: str) -> None:
        for writer in self._pipes.pop(token, set()):
            writer.close()

    async def _serve_bridge(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        try:
            await self._bridge_one(reader, writer)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.debug("bridge connection failed", exc_info=True)
        finally:
            writer.close()

    async def _bridge_one(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        headers = [line.split(":", 1) for line in lines[1:] if ":" in line]
        names = {k.strip().lower() for k, _ in headers}
        if len(parts) != 3 or parts[0] != "GET":
            return await _respond(writer, 405, "method not allowed")
        if "origin" in names or any(n.startswith("sec-fetch-") for n in names):
            return await _respond(writer, 403, "forbidden: web pages may not use the bridge")
        _, token, rest = ([*parts[1].split("/", 2), "", ""])[:3]
        live = next((v for v in self._live.values()
                     if _same(v.token, token)), None)
        if live is None or not live.chromium.alive:
            return await _respond(writer, 403, "forbidden: no live rollout for this token")
        if rest == "json/version":
            host, port = self.address or ("", 0)
            body = json.dumps({"Browser": "Chromium", "Protocol-Version": "1.3",
                               "webSocketDebuggerUrl":
                               f"ws://{host}:{port}/{token}/devtools/browser"})
            return await _respond(writer, 200, body, "application/json")
        if rest == "devtools/browser":
            upstream = live.chromium.browser_path
        elif rest == f"devtools/page/{live.session.target_id}":
            upstream = "/" + rest
        else:
            return await _respond(writer, 404, "not found")
        host, _, port_text = live.chromium.address.rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port_text))
        request = [f"GET {upstream} HTTP/1.1", f"Host: {live.chromium.address}"]
        request += [f"{k}:{v}" for k, v in headers if k.strip().lower() != "host"]
        up_writer.write(("\r\n".join(request) + "\r\n\r\n").encode("latin-1"))
        pipes = self._pipes.setdefault(token, set())
        pipes.update((writer, up_writer))
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            pipes.discard(writer)
            pipes.discard(up_writer)
            up_writer.close()


def _same(secret: str, given: str) -> bool:
    """Constant-time comparison that takes any text (a URL may carry non-ASCII)."""
    return secrets.compare_digest(secret.encode(), given.encode("utf-8", "replace"))


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            dst.close()


async def _respond(writer: asyncio.StreamWriter, status: int, body: str,
                   kind: str = "text/plain") -> None:
    reason = {200: "OK", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"}
    data = body.encode()
    writer.write(f"HTTP/1.1 {status} {reason.get(status, '')}\r\nContent-Type: {kind}\r\n"
                 f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
    with contextlib.suppress(Exception):
        await writer.drain()

