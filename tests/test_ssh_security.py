"""Escape attempts from inside a workspace; every one of them must fail."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import asyncssh
import pytest

from hud_ray.capabilities.base import Capability
from hud_ray.capabilities.isolation import bwrap_available
from hud_ray.capabilities.ssh import Workspace, node_address
from hud_ray.capabilities.ssh_client import SSHClient
from hud_ray.errors import CapabilityError

pytestmark = pytest.mark.skipif(not bwrap_available(), reason="needs bubblewrap")


@pytest.fixture
async def ws():
    w = Workspace()
    await w.start()
    yield w
    await w.stop()


async def client(ws: Workspace, sid: str) -> SSHClient:
    return await SSHClient.connect((await ws.open(sid))[0])


async def test_cannot_read_host_files_outside_the_workspace(ws, tmp_path):
    secret = tmp_path / "host-secret.txt"
    secret.write_text("TOPSECRET")
    secret.chmod(0o644)
    c = await client(ws, "r")
    for cmd in (f"cat {secret}", "cat /etc/shadow", "ls /root", "ls /home",
                f"cat /proc/1/root{secret}", "find / -name host-secret.txt 2>/dev/null"):
        r = await c.run(cmd)
        assert "TOPSECRET" not in r.stdout and "host-secret" not in r.stdout, cmd
        assert "root:" not in r.stdout, cmd


async def test_cannot_write_outside_the_workspace(ws, tmp_path):
    c = await client(ws, "w")
    target = tmp_path / "planted.txt"
    for cmd in (f"echo x > {target}", "echo x > /usr/planted.txt", "echo x > /etc/planted",
                "mkdir -p /opt/x"):
        await c.run(cmd)
    assert not target.exists()
    assert not Path("/usr/planted.txt").exists() and not Path("/etc/planted").exists()
    assert (await c.run("echo ok > /tmp/inside.txt && cat /tmp/inside.txt")).stdout == "ok\n"


async def test_no_network_including_host_loopback(ws):
    hits = []

    async def handle(reader, writer):
        hits.append(1)
        writer.close()

    servers = [await asyncio.start_server(handle, host, 0)
               for host in ("127.0.0.1", node_address())]
    c = await client(ws, "n")
    for server in servers:
        host, port = server.sockets[0].getsockname()[:2]
        r = await c.run(f"timeout 3 bash -c 'echo hi > /dev/tcp/{host}/{port}' && echo OPEN",
                        timeout=10)
        assert "OPEN" not in r.stdout
    r = await c.run("python3 -c \"import urllib.request as u; u.urlopen('http://pypi.org', "
                    "timeout=3)\" && echo OPEN", timeout=15)
    assert "OPEN" not in r.stdout
    await asyncio.sleep(0.2)
    assert hits == []
    for server in servers:
        server.close()


async def test_cannot_see_or_signal_other_rollouts(ws):
    a, b = await client(ws, "a"), await client(ws, "b")
    await a.run("nohup sleep 4242 > /dev/null 2>&1 &")
    r = await b.run("ps -eo pid,args")
    assert "4242" not in r.stdout
    await b.run("pkill -f 'sleep 4242'; kill -9 -1")
    assert "4242" in (await a.run("ps -eo args")).stdout  # still alive in its own rollout
    assert (await a.run("ls /workspace")).exit_code == 0


async def test_no_host_environment_or_keys(ws, monkeypatch):
    monkeypatch.setenv("HUD_RAY_TEST_SECRET", "leak-me-please")
    c = await client(ws, "e")
    r = await c.run("env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'")
    assert "leak-me-please" not in r.stdout and "OPENAI_API_KEY" not in r.stdout
    r = await c.run("grep -rl 'PRIVATE KEY' /workspace /tmp /run /etc 2>/dev/null | "
                    "head; ls -d /tmp/hud-ray-ws-* 2>/dev/null", timeout=60)
    assert not r.timed_out and r.stdout.strip() == ""
    assert (await c.run("cat /proc/1/cmdline")).exit_code == 0  # only its own namespace


async def test_wrong_client_key_is_refused(ws):
    cap = (await ws.open("k"))[0]
    other = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    forged = Capability(cap.name, cap.protocol, cap.url, {**cap.params, "client_key": other})
    with pytest.raises(CapabilityError, match="refused"):
        await SSHClient.connect(forged)
    await ws.close("k")
    with pytest.raises(CapabilityError, match="refused"):  # a closed rollout's key is revoked
        await SSHClient.connect(cap)


async def test_client_refuses_a_different_host_key(ws):
    cap = (await ws.open("h"))[0]
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    shown = Capability(cap.name, cap.protocol, cap.url, {**cap.params, "host_pubkey": impostor})
    with pytest.raises(CapabilityError, match="refused"):
        await SSHClient.connect(shown)
    no_key = Capability(cap.name, cap.protocol, cap.url,
                        {k: v for k, v in cap.params.items() if k != "host_pubkey"})
    with pytest.raises(CapabilityError, match="unverified"):
        await SSHClient.connect(no_key)


def test_server_is_not_on_loopback_only():
    assert node_address() != "" and socket.inet_aton(node_address())
    assert os.path.exists("/usr/bin/bwrap")
