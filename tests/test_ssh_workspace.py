"""ssh/2 workspaces: lifecycle, fresh state, background processes, the client, BashGrader."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hud_ray import Environment, Task
from hud_ray.capabilities.isolation import bwrap_available
from hud_ray.capabilities.ssh import Workspace
from hud_ray.capabilities.ssh_client import SSHClient
from hud_ray.errors import CapabilityError, GradeError
from hud_ray.graders import BashGrader
from hud_ray.sandbox import Sandbox

pytestmark = pytest.mark.skipif(not bwrap_available(), reason="needs bubblewrap")


@pytest.fixture
async def ws():
    async def setup(path: Path) -> None:
        (path / "made_by_setup.txt").write_text("setup ran\n")

    w = Workspace(seed={"notes/hello.txt": "hello\n"}, setup=setup)
    await w.start()
    yield w
    await w.stop()


async def open_client(ws: Workspace, sid: str) -> SSHClient:
    caps = await ws.open(sid)
    assert caps[0].protocol == "ssh/2" and caps[0].params["isolation"] == "bwrap"
    return await SSHClient.connect(caps[0])


def procs_matching(text: str) -> int:
    count = 0
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if text.encode() in (p / "cmdline").read_bytes():
                    count += 1
            except OSError:
                pass
    return count


async def test_manifest_and_seeded_fresh_workspace(ws):
    caps = await ws.open("a")
    p = caps[0].params
    assert caps[0].url.startswith("ssh://") and "127.0.0.1" not in caps[0].url
    assert p["user"] == "agent" and p["cwd"] == "/workspace" and p["host_pubkey"]
    assert "PRIVATE KEY" in p["client_key"]
    c = await SSHClient.connect(caps[0])
    r = await c.run("pwd; id -u; cat notes/hello.txt made_by_setup.txt; echo x > mine.txt")
    assert r.exit_code == 0
    assert r.stdout.split("\n")[:4] == ["/workspace", "1000", "hello", "setup ran"]
    await c.close()
    await ws.close("a")
    c2 = await open_client(ws, "b")  # the next rollout starts fresh
    assert (await c2.run("test -e mine.txt")).exit_code == 1
    await c2.close()


async def test_background_processes_survive_commands_and_die_at_close(ws):
    c = await open_client(ws, "bg")
    await c.run("nohup sleep 777 > /dev/null 2>&1 &")
    await c.run("setsid sleep 778 < /dev/null > /dev/null 2>&1 &")
    r = await c.run("pgrep -c sleep")
    assert int(r.stdout) >= 2
    assert procs_matching("sleep\0" + "777") == 1
    await c.close()
    await ws.close("bg")
    for _ in range(100):  # the kill is sent; wait until the kernel has reaped them
        if procs_matching("sleep\0" + "777") == 0 and procs_matching("sleep\0" + "778") == 0:
            break
        await asyncio.sleep(0.05)
    assert procs_matching("sleep\0" + "777") == 0 and procs_matching("sleep\0" + "778") == 0


async def test_client_files_timeouts_and_caps(ws):
    c = await open_client(ws, "f")
    await c.write_file("deep/dir/a.py", "print('hi')\n")
    assert await c.read_file("deep/dir/a.py") == "print('hi')\n"
    assert (await c.run("python3 deep/dir/a.py")).stdout == "hi\n"
    with pytest.raises(CapabilityError, match="cannot read"):
        await c.read_file("missing.txt")
    r = await c.run("sleep 10", timeout=0.5)
    assert r.timed_out and r.exit_code != 0
    r = await c.run("yes | head -c 100000", max_output=1000)
    assert r.truncated and len(r.stdout) < 1100
    r = await c.run("echo out; echo err >&2; exit 3")
    assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n", "err\n")
    await c.close()


async def test_bash_grader_runs_inside_the_rollout_sandbox(tmp_path):
    env = Environment(name="g")
    env.workspace(seed={"x.txt": "42\n"})

    @env.template()
    async def check(score_file: bool = False):
        yield "p"
        if score_file:
            r = await BashGrader.grade(command="echo 0.25 > $HUD_REWARD_FILE; exit 1")
        else:
            r = await BashGrader.grade(command="test \"$(cat x.txt)\" = 42 && test ! -e /root "
                                               "&& test \"$(id -u)\" = 1001 && echo 7 >> x.txt")
        yield {"score": r.value, "info": r.info}

    sb = Sandbox({"g": env})
    p = await sb.start(Task(env="g", id="check"))
    g = await sb.grade(p.session_id, None)
    assert g.reward == 1.0 and g.info["exit_code"] == 0
    p = await sb.start(Task(env="g", id="check", args={"score_file": True}))
    g = await sb.grade(p.session_id, None)
    assert g.reward == 0.25 and g.info["exit_code"] == 1
    await sb.close()
    with pytest.raises(GradeError, match="no rollout"):
        await BashGrader.grade(command="true")


async def test_timeout_in_grader_scores_zero():
    env = Environment(name="t")
    env.workspace()

    @env.template()
    async def slow():
        yield "p"
        r = await BashGrader.grade(command="sleep 5", timeout_seconds=0.5)
        yield {"score": r.value, "info": r.info}

    sb = Sandbox({"t": env})
    p = await sb.start(Task(env="t", id="slow"))
    g = await sb.grade(p.session_id, None)
    assert g.reward == 0.0 and g.info["timed_out"]
    await sb.close()


async def test_unisolated_needs_an_explicit_opt_in(monkeypatch):
    monkeypatch.setattr("hud_ray.capabilities.ssh.bwrap_available", lambda: False)
    with pytest.raises(CapabilityError, match="allow_unisolated"):
        await Workspace().start()
    w = Workspace(allow_unisolated=True)
    caps = await w.open("u")
    assert caps[0].params["isolation"] == "none"
    c = await SSHClient.connect(caps[0])
    assert (await c.run("echo hi")).stdout == "hi\n"
    await c.close()
    await w.stop()


async def test_this_suite_runs_isolated(ws):
    """The escape tests above mean something only if sessions really are jailed here."""
    caps = await ws.open("iso")
    assert caps[0].params["isolation"] == "bwrap"
    c = await SSHClient.connect(caps[0])
    r = await c.run("id -u; cat /proc/self/status | grep -E '^(NoNewPrivs|CapBnd)'")
    await c.close()
    uid, *status = r.stdout.split("\n")
    fields = dict(line.split(":\t") for line in status if line)
    assert uid != "0" and fields["NoNewPrivs"] == "1" and int(fields["CapBnd"], 16) == 0


async def test_large_commands_and_too_large_ones(ws):
    await ws.open("big")
    session = ws.session_context("big")
    r = await session.exec(f"echo {'z' * 100_000} | wc -c")
    assert (r.exit_code, r.stdout) == (0, "100001\n")
    r = await session.exec(f"echo {'z' * 1_000_000} | wc -c")  # over the kernel's 128 KiB
    assert r.exit_code == 127 and "Argument list too long" in r.stderr
    assert (await session.exec("echo ok")).stdout == "ok\n"


@pytest.mark.parametrize("isolated", [True, False], ids=["bind-mount", "unisolated-swap"])
async def test_template_code_sees_its_own_rollouts_copy_at_root(tmp_path, monkeypatch, isolated):
    """As on HUD, template code reading/writing under ``root`` sees the agent's files: each
    concurrent rollout its own copy; the pristine root stays as it was for new rollouts."""
    if not isolated:
        monkeypatch.setattr("hud_ray.capabilities.ssh.bwrap_available", lambda: False)
    root = tmp_path / "root"
    env = Environment(name="ws-root-view")
    env.workspace(root, allow_unisolated=not isolated)
    seen: dict[str, tuple[str, ...]] = {}

    @env.initialize
    async def seed():
        (root / "f.txt").write_text("pristine")

    @env.template()
    async def t(tag: str = ""):
        (root / "tag.txt").write_text(tag)  # before the agent acts: lands in its copy
        yield "go"
        in_thread = await asyncio.to_thread((root / "f.txt").read_text)
        await asyncio.sleep(0.05)  # the other rollout's grading may interleave here
        seen[tag] = ((root / "f.txt").read_text(), (root / "tag.txt").read_text(), in_thread)
        (root / "graded.txt").write_text(tag)
        yield 1.0

    sb = Sandbox({env.name: env})
    try:
        pa, pb = await sb.start(t(tag="a")), await sb.start(t(tag="b"))
        for prompt, tag in ((pa, "a"), (pb, "b")):
            shell = sb._sessions[prompt.session_id].session.resource("shell")
            r = await shell.exec(f"printf agent-{tag} > f.txt; cat tag.txt; ls -ln tag.txt")
            assert r.stdout.startswith(tag)
            assert not isolated or " 1000 1000 " in r.stdout  # the agent owns the file
        await asyncio.gather(sb.grade(pb.session_id, ""), sb.grade(pa.session_id, ""))
        assert seen == {"a": ("agent-a", "a", "agent-a"), "b": ("agent-b", "b", "agent-b")}
        assert sorted(p.name for p in root.iterdir()) == ["f.txt"]
        assert (root / "f.txt").read_text() == "pristine"
        pc = await sb.start(t(tag="c"))  # a later rollout starts from the pristine root
        shell = sb._sessions[pc.session_id].session.resource("shell")
        assert (await shell.exec("cat f.txt; ls")).stdout == "pristinef.txt\ntag.txt\n"
        await sb.cancel(pc.session_id)
    finally:
        await sb.close()
    assert [line for line in Path("/proc/thread-self/mountinfo").read_text().splitlines()
            if str(root) in line] == []
