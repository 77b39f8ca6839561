"""The ``cdp/1.3`` browser capability in real headless Chromium: the bridge and its
token, isolation between rollouts, a crashed browser, raw CDP without Playwright, the
browser tools in a model harness, and the web taskset on real Ray."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import tempfile
from pathlib import Path

import pytest
import pytest_asyncio
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from hud_ray import read_rollouts
from hud_ray.agents import create_agent
from hud_ray.agents.toolbox import tools_for
from hud_ray.capabilities.cdp import Browser, Chromium, PageClosed, chromium_path
from hud_ray.capabilities.webapp import Request, WebApp
from hud_ray.engine import EvalConfig, run_eval_async
from hud_ray.errors import CapabilityError
from hud_ray.sandbox import Sandbox, load_environments
from hud_ray.testing import FakeProvider, ProviderRequest, Reply, ToolCall
from hud_ray.types import AgentConfig, AgentContext, AgentSpec

try:
    chromium_path()
    HAVE_CHROMIUM = True
except CapabilityError:
    HAVE_CHROMIUM = False

pytestmark = [pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Debian's chromium"),
              pytest.mark.asyncio(loop_scope="module")]
TASKSET = Path(__file__).resolve().parent.parent / "tasksets" / "browser.py"

app = WebApp()


@app.page("/")
async def _home(req: Request) -> str:
    req.state["hits"] = req.state.get("hits", 0) + 1
    return "<h1 id='title'>Home</h1><input id='q'>"


@pytest_asyncio.fixture(scope="module", loop_scope="module", autouse=True)
async def _stop_playwright_driver():
    """The module's loop closes after its tests: stop the Playwright driver kept warm."""
    from hud_ray.capabilities.cdp_client import stop_idle_driver

    yield
    await stop_idle_driver()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    b = Browser(app=app)
    await b.start()
    yield b
    await b.stop()


async def cdp(ws, method, params=None, *, session=None, _ids=iter(range(1, 10**6))):
    """One raw CDP call over a plain WebSocket (events skipped)."""
    msg_id = next(_ids)
    msg = {"id": msg_id, "method": method, "params": params or {}}
    if session:
        msg["sessionId"] = session
    await ws.send(json.dumps(msg))
    while True:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 15))
        if reply.get("id") == msg_id:
            return reply


async def raw_eval(ws, expression, session=None):
    reply = await cdp(ws, "Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                               "awaitPromise": True}, session=session)
    return reply["result"]["result"].get("value")


async def test_raw_cdp_drives_the_page_and_the_grader_sees_it(browser):
    [cap] = await browser.open("raw")
    try:
        assert cap.protocol == "cdp/1.3" and "127.0.0.1" not in cap.url
        assert cap.url.startswith(f"ws://{browser.address[0]}:")
        page_url = cap.url.replace("devtools/browser", f"devtools/page/{cap.params['target_id']}")
        async with ws_connect(page_url, max_size=None) as ws:
            await cdp(ws, "Page.enable")
            await cdp(ws, "Page.navigate", {"url": cap.params["start_url"]})
            for _ in range(100):
                if await raw_eval(ws, "document.readyState") == "complete" and \
                        await raw_eval(ws, "location.href") == cap.params["start_url"]:
                    break
                await asyncio.sleep(0.05)
            await raw_eval(ws, "document.querySelector('#q').value = 'typed'")
        handle = browser.session_context("raw")
        assert await handle.text("#title") == "Home" and await handle.value("#q") == "typed"
        assert handle.state == {"hits": 1}
        # the browser-level endpoint speaks CDP too (any client, any language)
        async with ws_connect(cap.url, max_size=None) as ws:
            version = await cdp(ws, "Browser.getVersion")
            assert version["result"]["protocolVersion"] == "1.3"
    finally:
        await browser.close("raw")


async def test_token_is_required_and_revoked_when_the_rollout_ends(browser):
    [cap] = await browser.open("tok")
    for token in ("not-a-token", "%C3%A9t%C3%A9", ""):
        bad = re.sub(r"/[^/]+/devtools", f"/{token}/devtools", cap.url)
        with pytest.raises(Exception, match="403"):
            await ws_connect(bad)
    other = cap.url.replace("devtools/browser", "devtools/page/0123456789ABCDEF")
    with pytest.raises(Exception, match="404"):
        await ws_connect(other)  # only this rollout's own target
    with pytest.raises(Exception, match="403") as err:  # anything a web page could send
        await ws_connect(cap.url, origin="http://evil.test")
    assert b"web pages may not use the bridge" in err.value.response.body
    ws = await ws_connect(cap.url, max_size=None)
    await browser.close("tok")
    with pytest.raises(ConnectionClosed):  # the live connection is cut, new ones refused
        for _ in range(3):
            await cdp(ws, "Browser.getVersion")
    with pytest.raises(Exception, match="403"):
        await ws_connect(cap.url)


async def test_the_page_cannot_reach_the_bridge_or_devtools(browser):
    [cap] = await browser.open("escape")
    try:
        handle = browser.session_context("escape")
        await handle.cdp("Page.navigate", {"url": cap.params["start_url"]})
        for _ in range(100):
            if await handle.evaluate("document.readyState") == "complete" and \
                    await handle.text("#title") == "Home":
                break
            await asyncio.sleep(0.05)
        direct = browser._live["escape"].chromium.ws_url
        http_bridge = cap.url.replace("ws://", "http://").replace("devtools/browser",
                                                                  "json/version")
        probe = """async (url) => {
          try { const r = await fetch(url); return 'read:' + (await r.text()); }
          catch (e) { return 'blocked'; } }"""
        ws_probe = """(url) => new Promise(done => {
          const ws = new WebSocket(url);
          ws.onopen = () => done('open'); ws.onerror = () => done('blocked');
          setTimeout(() => done('timeout'), 5000); })"""
        for url in (http_bridge, direct.replace("ws://", "http://").rsplit("/devtools", 1)[0]
                    + "/json/version"):
            assert await handle.evaluate(f"({probe})({json.dumps(url)})") == "blocked"
        for url in (cap.url, direct):
            assert await handle.evaluate(f"({ws_probe})({json.dumps(url)})") == "blocked"
    finally:
        await browser.close("escape")


async def test_concurrent_rollouts_share_no_state(browser):
    [a], [b] = await asyncio.gather(browser.open("a"), browser.open("b"))
    try:
        ha, hb = browser.session_context("a"), browser.session_context("b")
        for h, cap in ((ha, a), (hb, b)):
            await h.cdp("Page.navigate", {"url": cap.params["start_url"]})
        for h in (ha, hb):
            for _ in range(100):
                if await h.text("#title") == "Home":
                    break
                await asyncio.sleep(0.05)
        await ha.evaluate("localStorage.setItem('k', 'a'); document.cookie = 'c=a'")
        assert await hb.evaluate("[localStorage.getItem('k'), document.cookie]") == [None, ""]
        assert ha.state == {"hits": 1} and hb.state == {"hits": 1}
        assert a.params["start_url"] != b.params["start_url"]
    finally:
        await browser.close("a")
        await browser.close("b")


async def test_a_crashed_browser_fails_the_rollout_retryably_and_is_restarted(browser):
    [cap] = await browser.open("crash")
    handle = browser.session_context("crash")
    chromium = browser._live["crash"].chromium
    launches = browser.launches
    os.kill(chromium.proc.pid, signal.SIGKILL)
    await asyncio.wait_for(chromium.proc.wait(), 10)
    with pytest.raises(CapabilityError) as err:
        await handle.text("body")
    assert err.value.retryable and "crashed" in str(err.value)
    await browser.close("crash")
    [cap2] = await browser.open("after")
    try:
        assert browser.launches == launches + 1
        handle = browser.session_context("after")
        await handle.cdp("Page.navigate", {"url": cap2.params["start_url"]})
        for _ in range(100):
            if await handle.text("#title") == "Home":
                break
            await asyncio.sleep(0.05)
        assert await handle.text("#title") == "Home"
    finally:
        await browser.close("after")


def browse_policy(req: ProviderRequest) -> Reply:
    """Reads the invite code: navigate to the codes page, read it, answer."""
    if req.turn == 0:
        base = re.search(r"(http://\S+/) ", req.prompt_text).group(1)
        return Reply(tool_calls=(ToolCall("browser_navigate", {"url": base + "codes"}),))
    if req.turn == 1:
        return Reply(tool_calls=(ToolCall("browser_read", {}),))
    code = re.search(r"invite code is (INV-\d+)", req.last_text).group(1)
    return Reply(text=code)


async def test_openai_compatible_harness_solves_a_web_task_with_browser_tools():
    sandbox = Sandbox(load_environments({"browser": str(TASKSET)}))
    try:
        env = sandbox.environments["browser"]
        prompt = await sandbox.start(env.templates["invite_code"]())
        async with FakeProvider(browse_policy) as provider:
            agent = create_agent(AgentSpec(name="openai_compatible", model="m",
                                           base_url=provider.base_url))
            try:
                result = await agent.run(AgentContext(prompt=prompt, config=AgentConfig()))
            finally:
                await agent.close()
            assert {"browser_navigate", "browser_click", "browser_type", "browser_select",
                    "browser_read"} <= set(provider.log[0].tools)
        assert result.answer == "INV-7342"
        assert (await sandbox.grade(prompt.session_id, result.answer)).reward == 1.0
    finally:
        await sandbox.close()


async def test_browser_tools_report_failures_to_the_model():
    sandbox = Sandbox(load_environments({"browser": str(TASKSET)}))
    try:
        env = sandbox.environments["browser"]
        prompt = await sandbox.start(env.templates["invite_code"]())
        tools, cleanup = await tools_for(prompt.capabilities, AgentConfig())
        try:
            by_name = {t.name: t for t in tools}
            out = await by_name["browser_click"].run({"selector": "#nope"})
            assert out.startswith("error: ")
        finally:
            await cleanup()
        await sandbox.cancel(prompt.session_id)
    finally:
        await sandbox.close()


@pytest.mark.ray
async def test_taskset_on_ray_oracle_scores_one_and_nop_zero(ray_session, tmp_path):
    for agent, expected in (("oracle", 1.0), ("nop", 0.0)):
        config = EvalConfig(source=str(TASKSET), agent=agent, out=str(tmp_path / agent),
                            max_retries=1, rollout_timeout=120, group_size=1)
        result = await run_eval_async(config=config)
        rows = [r for r in read_rollouts(result.out_dir).to_pylist() if r["final"]]
        assert len(rows) == 9
        assert all(r["reward_valid"] and r["reward"] == expected for r in rows), \
            [(r["template_id"], r["status"], r["error_message"]) for r in rows]


async def test_browser_per_rollout_isolates_cdp_clients():
    b = Browser(isolation="browser")
    await b.start()
    try:
        [a], [c] = await asyncio.gather(b.open("a"), b.open("c"))
        procs = [b._live[s].chromium.proc for s in ("a", "c")]
        assert procs[0].pid != procs[1].pid and b.launches == 2
        async with ws_connect(a.url, max_size=None) as ws:
            targets = (await cdp(ws, "Target.getTargets"))["result"]["targetInfos"]
        ids = {t["targetId"] for t in targets}
        assert a.params["target_id"] in ids and c.params["target_id"] not in ids
        await b.close("a")
        assert procs[0].returncode is not None and procs[1].returncode is None
    finally:
        await b.stop()
    assert procs[1].returncode is not None


async def test_shared_browser_contexts_are_not_a_boundary_between_cdp_clients(browser):
    """What docs/BROWSER.md says of isolation="context": storage is isolated, but the
    browser endpoint sees every rollout's page."""
    [a], [c] = await asyncio.gather(browser.open("ca"), browser.open("cc"))
    try:
        async with ws_connect(a.url, max_size=None) as ws:
            targets = (await cdp(ws, "Target.getTargets"))["result"]["targetInfos"]
        assert c.params["target_id"] in {t["targetId"] for t in targets}
    finally:
        await browser.close("ca")
        await browser.close("cc")


async def test_bad_isolation_mode_is_one_clear_error():
    with pytest.raises(CapabilityError, match="isolation='vm'"):
        Browser(isolation="vm")


@pytest.mark.ray
async def test_a_killed_browser_is_retried_without_a_lost_row(ray_session, tmp_path):
    marker = tmp_path / "crashed"
    fixture = Path(__file__).resolve().parent / "fixtures" / "browser_crash.py"
    source = tmp_path / "browser_crash.py"
    source.write_text(fixture.read_text().replace("/nonexistent/marker", str(marker)))
    config = EvalConfig(source=str(source), agent="oracle", out=str(tmp_path / "out"),
                        max_retries=2, rollout_timeout=120, group_size=1)
    result = await run_eval_async(config=config)
    rows = read_rollouts(result.out_dir).to_pylist()
    assert marker.exists()
    final = [r for r in rows if r["final"]]
    assert len(final) == 1 and final[0]["reward_valid"] and final[0]["reward"] == 1.0
    failed = [r for r in rows if not r["final"]]
    assert [(r["status"], r["retryable"]) for r in failed] == [("infra_error", True)]
    assert "crashed" in failed[0]["error_message"]


def screenshot_policy(req: ProviderRequest) -> Reply:
    if req.turn == 0:
        base = re.search(r"(http://\S+/) ", req.prompt_text).group(1)
        return Reply(tool_calls=(ToolCall("browser_navigate", {"url": base + "codes"}),))
    if req.turn == 1:
        return Reply(tool_calls=(ToolCall("browser_screenshot", {}),))
    return Reply(text="INV-7342")


@pytest.mark.parametrize("name", ["openai_compatible", "openai", "claude"])
async def test_screenshots_reach_the_model_as_images(name):
    sandbox = Sandbox(load_environments({"browser": str(TASKSET)}))
    try:
        env = sandbox.environments["browser"]
        prompt = await sandbox.start(env.templates["invite_code"]())
        async with FakeProvider(screenshot_policy) as provider:
            url = provider.anthropic_base_url if name == "claude" else provider.base_url
            agent = create_agent(AgentSpec(name=name, model="m", base_url=url))
            try:
                result = await agent.run(AgentContext(prompt=prompt, config=AgentConfig()))
            finally:
                await agent.close()
            body = json.dumps(provider.log[2].body)
            assert "image/jpeg" in body and "/9j/" in body  # a JPEG, base64
            assert "image/jpeg" not in json.dumps(provider.log[1].body)
        assert result.answer == "INV-7342" and result.stop_reason == "done"
        tool_steps = [s for s in result.steps if s["role"] == "tool"]
        assert tool_steps[1]["content"].startswith("screenshot of http")
        await sandbox.cancel(prompt.session_id)
    finally:
        await sandbox.close()


async def test_playwright_clients_on_one_loop_share_a_driver_and_release_it(browser,
                                                                             monkeypatch):
    from hud_ray.capabilities import cdp_client

    monkeypatch.setattr(cdp_client, "DRIVER_IDLE_S", 0.5)
    caps = [c for s in ("p1", "p2") for c in await browser.open(s)]
    try:
        one, two = await asyncio.gather(*(cdp_client.CDPClient.connect(c) for c in caps))
        assert one.playwright is two.playwright
        targets = []
        for client in (one, two):
            session = await client.page.context.new_cdp_session(client.page)
            targets.append((await session.send("Target.getTargetInfo"))["targetInfo"]["targetId"])
        assert targets == [c.params["target_id"] for c in caps]
        await one.close()
        loop = asyncio.get_running_loop()
        assert loop in cdp_client._DRIVERS
        await two.close()
        assert cdp_client._DRIVERS[loop][0] is one.playwright  # kept warm a while
        again = await cdp_client.CDPClient.connect(caps[0])
        assert again.playwright is one.playwright  # the next connection reuses it
        await again.close()
        for _ in range(100):  # then stopped once idle
            if loop not in cdp_client._DRIVERS:
                break
            await asyncio.sleep(0.05)
        assert loop not in cdp_client._DRIVERS
    finally:
        await browser.close("p1")
        await browser.close("p2")


@pytest.mark.ray
async def test_openai_compatible_on_ray_drives_the_browser(ray_session, tmp_path):
    async with FakeProvider(screenshot_policy) as provider:
        config = EvalConfig(source=str(TASKSET), agent="openai_compatible", model="m",
                            base_url=provider.base_url, out=str(tmp_path / "out"),
                            task_ids=["invite_code"], max_retries=0, rollout_timeout=120,
                            group_size=2)
        result = await run_eval_async(config=config)
        assert sum("image/jpeg" in json.dumps(r.body) for r in provider.log) == 2
    rows = [r for r in read_rollouts(result.out_dir).to_pylist() if r["final"]]
    assert len(rows) == 2 and all(r["reward_valid"] and r["reward"] == 1.0 for r in rows)
    for row in rows:
        tools = [s["name"] for s in json.loads(row["steps"]) if s["role"] == "tool"]
        assert tools == ["browser_navigate", "browser_screenshot"]


@pytest.mark.parametrize("url", ["file:///etc/hostname", "chrome://version",
                                 f"view-source:file://{TASKSET}"])
async def test_the_agent_cannot_open_local_files_or_browser_internals(browser, url):
    [cap] = await browser.open("files")
    try:
        page_url = cap.url.replace("devtools/browser", f"devtools/page/{cap.params['target_id']}")
        async with ws_connect(page_url, max_size=None) as ws:
            reply = await cdp(ws, "Page.navigate", {"url": url})
        assert reply["result"].get("errorText") == "net::ERR_BLOCKED_BY_ADMINISTRATOR"
        assert "INV-" not in (await browser.session_context("files").text("body") or "")
    finally:
        await browser.close("files")


async def test_static_app_serves_its_directory_only_under_a_live_prefix(tmp_path):
    import httpx

    from hud_ray.capabilities.webapp import AppServer

    site = tmp_path / "site"
    (site / "sub").mkdir(parents=True)
    (site / "index.html").write_text("<h1>index</h1>")
    (site / "sub" / "a.css").write_text("h1 {}")
    (tmp_path / "secret.txt").write_text("answer")
    server = AppServer(site, "127.0.0.1", lambda token: {} if token == "tok" else None)
    await server.start()
    try:
        async with httpx.AsyncClient() as http:
            base = server.url_for("tok")
            assert (await http.get(base)).text == "<h1>index</h1>"
            css = await http.get(base + "sub/a.css")
            assert css.headers["content-type"].startswith("text/css")
            for path in ("../secret.txt", "%2e%2e/secret.txt", "sub/../../secret.txt"):
                assert (await http.get(base + path)).status_code == 404
            assert (await http.get(server.url_for("ended"))).status_code == 404
    finally:
        await server.stop()
    with pytest.raises(CapabilityError, match="not a directory"):
        AppServer(tmp_path / "missing", "127.0.0.1", lambda token: None)


async def test_chromium_dies_with_a_killed_sandbox_process():
    import sys

    script = ("import asyncio\nfrom hud_ray.capabilities.cdp import Browser\n"
              "async def main():\n    b = Browser(host='127.0.0.1'); await b.start()\n"
              "    print(b._chromium.proc.pid, flush=True); await asyncio.sleep(600)\n"
              "asyncio.run(main())\n")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script,
                                                stdout=asyncio.subprocess.PIPE)
    try:
        pid = int(await asyncio.wait_for(proc.stdout.readline(), 60))
        os.kill(pid, 0)  # Chromium is up (and its jail: every process below it)
        pids = _descendants(pid)
        assert len(pids) > 2
        proc.kill()
        await proc.wait()
        for _ in range(200):
            if not [p for p in pids if Path(f"/proc/{p}").exists()]:
                break
            await asyncio.sleep(0.05)
        else:
            for p in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
            pytest.fail("Chromium outlived its killed sandbox process")
        left = list(Path(tempfile.gettempdir()).glob(f"hud-ray-chromium-{proc.pid}-*"))
        assert left  # the killed process could not clean up; the next launch does
        fresh = await Chromium.launch()
        await fresh.close()
        assert not any(p.exists() for p in left)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


CARELESS = Path(__file__).resolve().parent / "fixtures" / "browser_careless.py"


@pytest.mark.parametrize("how", ["page", "all_pages", "context", "other_origin"])
async def test_an_agent_that_breaks_its_page_scores_zero_not_an_infra_error(how):
    """Closing the page the grader reads is the agent's doing: 0.0, valid, with the reason."""
    sandbox = Sandbox(load_environments({"browser-careless": str(CARELESS)}))
    try:
        env = sandbox.environments["browser-careless"]
        prompt = await sandbox.start(env.templates["graded_on_page"](how=how))
        grade = await sandbox.grade(prompt.session_id, await sandbox.solve(prompt.session_id))
        assert grade.reward == 0.0
        if how == "other_origin":  # the page is there, just not the app's
            assert "agent_fault" not in grade.info
        else:
            assert grade.info["agent_fault"] == "page_closed"
            assert "closed" in grade.info["reason"]
        # the shared browser is unharmed: the next rollout solves the same task
        prompt = await sandbox.start(env.templates["graded_on_state"](how="page"))
        grade = await sandbox.grade(prompt.session_id, await sandbox.solve(prompt.session_id))
        assert grade.reward == 1.0
    finally:
        await sandbox.close()


@pytest.mark.parametrize("how", ["page", "all_pages", "context", "many_tabs"])
async def test_a_grader_of_server_state_does_not_need_the_page(how):
    sandbox = Sandbox(load_environments({"browser-careless": str(CARELESS)}))
    try:
        env = sandbox.environments["browser-careless"]
        browser = env.resources["browser"]
        prompt = await sandbox.start(env.templates["graded_on_state"](how=how))
        grade = await sandbox.grade(prompt.session_id, await sandbox.solve(prompt.session_id))
        assert grade.reward == 1.0 and not grade.info
        # nothing the rollout opened outlives it: no tabs, no contexts
        conn = browser._chromium.conn
        for _ in range(100):  # Target.closeTarget returns before the tab is gone
            pages = [t for t in (await conn.call("Target.getTargets"))["targetInfos"]
                     if t["type"] == "page"]
            if len(pages) <= 1:
                break
            await asyncio.sleep(0.05)
        assert len(pages) <= 1, pages  # Chromium's own first tab at most
        assert (await conn.call("Target.getBrowserContexts"))["browserContextIds"] == []
    finally:
        await sandbox.close()


async def test_browser_close_over_cdp_is_an_infra_error_and_the_browser_restarts(browser):
    """A harness may send Browser.close on the shared browser endpoint: every rollout on
    it fails retryably (infra_error, retried) and the next rollout gets a new browser."""
    [a], [b] = await asyncio.gather(browser.open("bc-a"), browser.open("bc-b"))
    launches = browser.launches
    chromium = browser._live["bc-a"].chromium
    try:
        async with ws_connect(a.url, max_size=None) as ws:
            await ws.send(json.dumps({"id": 1, "method": "Browser.close"}))
            await asyncio.wait_for(chromium.proc.wait(), 15)
        for sid in ("bc-a", "bc-b"):
            with pytest.raises(CapabilityError) as err:
                await browser.session_context(sid).text("body")
            assert err.value.retryable and "crashed" in str(err.value)
            assert not isinstance(err.value, PageClosed)
    finally:
        await browser.close("bc-a")
        await browser.close("bc-b")
    [c] = await browser.open("bc-c")
    try:
        assert browser.launches == launches + 1
        assert await browser.session_context("bc-c").url() == "about:blank"
    finally:
        await browser.close("bc-c")


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (host pids)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid drop needs root")
async def test_chromium_is_jailed_unprivileged_and_sandboxed(browser):
    """Chromium runs as a dedicated unprivileged uid, in bubblewrap (no host files but
    /usr and /etc), with its own sandbox on: renderers under seccomp in namespaces."""
    [cap] = await browser.open("jail")
    host_tmp = tempfile.NamedTemporaryFile(prefix="host-secret-")
    try:
        handle = browser.session_context("jail")
        await handle.cdp("Page.navigate", {"url": cap.params["start_url"]})
        for _ in range(100):
            if await handle.text("#title") == "Home":
                break
            await asyncio.sleep(0.05)
        chromium = browser._live["jail"].chromium
        procs = {}
        for pid in _descendants(chromium.proc.pid):
            with contextlib.suppress(OSError):
                procs[pid] = (_status(pid), Path(f"/proc/{pid}/cmdline").read_bytes())
        browsers = [p for p, (_, cmd) in procs.items()
                    if cmd.split(b"\0")[0].endswith(b"/chromium") and b"--type=" not in cmd]
        renderers = [p for p, (_, cmd) in procs.items() if b"--type=renderer" in cmd]
        assert browsers and renderers
        for pid, (status, cmd) in procs.items():
            assert status["Uid"].split()[0] != "0", (pid, cmd)
            assert b"--no-sandbox" not in cmd
        for pid in renderers:
            assert procs[pid][0]["Seccomp"] == "2" and procs[pid][0]["NoNewPrivs"] == "1"
        assert len(browsers) == 1
        for pid in browsers:  # the jail: the taskset, root's home, host /tmp are not there
            root = Path(f"/proc/{pid}/root")
            assert (root / "usr/lib/chromium").is_dir()
            assert not (root / str(TASKSET).lstrip("/")).exists()
            assert not (root / "root").exists() or not any((root / "root").iterdir())
            assert (root / "tmp" / Path(chromium.profile).name).is_dir()
            assert not (root / "tmp" / Path(host_tmp.name).name).exists()
    finally:
        host_tmp.close()
        await browser.close("jail")


@pytest.mark.ray
async def test_careless_agents_on_ray_get_a_valid_row_each(ray_session, tmp_path):
    """Through the engine: no infra_error, no retry, no lost row; the fault is recorded."""
    config = EvalConfig(source=str(CARELESS), agent="oracle", out=str(tmp_path / "out"),
                        max_retries=1, rollout_timeout=120, group_size=1)
    result = await run_eval_async(config=config)
    rows = read_rollouts(result.out_dir).to_pylist()
    assert len(rows) == 8 and all(r["final"] and r["reward_valid"] for r in rows), \
        [(r["template_id"], r["status"], r["error_message"]) for r in rows]
    by_task = {(r["template_id"], json.loads(r["args"])["how"]): r for r in rows}
    assert len(by_task) == 8
    for key, row in by_task.items():
        faulted = key[0] == "graded_on_page" and key[1] != "other_origin"
        assert row["reward"] == (1.0 if key[0] == "graded_on_state" else 0.0), key
        info = json.loads(row["grade_info"] or "{}")
        assert (info.get("agent_fault") == "page_closed") == faulted, (key, info)


async def test_the_unjailed_escape_hatch_still_launches(monkeypatch):
    """HUD_RAY_CHROMIUM_SANDBOX=0 (hosts without user namespaces): the old launch."""
    monkeypatch.setenv("HUD_RAY_CHROMIUM_SANDBOX", "0")
    chromium = await Chromium.launch()
    try:
        cmd = Path(f"/proc/{chromium.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert cmd[0].endswith(b"/chromium") and b"--no-sandbox" in cmd
        assert (await chromium.conn.call("Browser.getVersion"))["protocolVersion"] == "1.3"
    finally:
        await chromium.close()
    assert not Path(chromium.profile).exists()


async def test_the_idle_sweep_spares_a_rollout_opening_meanwhile(browser):
    """The last rollout's end sweeps stray tabs and contexts while the next one opens:
    the newcomer's context and page survive."""
    await browser.open("sw-0")
    for i in range(1, 8):
        await asyncio.gather(browser.close(f"sw-{i - 1}"), browser.open(f"sw-{i}"))
        assert await browser.session_context(f"sw-{i}").url() == "about:blank"
    await browser.close("sw-7")
