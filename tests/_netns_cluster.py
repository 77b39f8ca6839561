"""A real multi-process Ray cluster on one machine, with a distinct IP per node.

Everything runs inside one network + PID namespace (``unshare --net --pid``) whose
loopback carries 10.77.0.x/32 aliases, one per node (``ray start --node-ip-address``),
so a server bound to 127.0.0.1 fails across nodes as on a real cluster. Killing the
namespace's first process (``close()``) kills every process inside it: Ray daemons,
workers, drivers. Commands run inside with :meth:`NetnsCluster.run` / ``popen``.

A driver can also get a private ``/tmp`` view (``private_dir``): a tmpfs only that
driver's mount namespace sees, so files put there exist for the driver and for no node.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PY = sys.executable
BIN = str(Path(PY).parent)
HEAD_IP = "10.77.0.1"


def available() -> str | None:
    """None when the namespace cluster can run here, else why not."""
    if os.geteuid() != 0:
        return "needs root for unshare --net"
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    probe = subprocess.run(["unshare", "--net", "--pid", "--fork", "true"],
                           capture_output=True, timeout=20)
    if probe.returncode != 0:
        return f"unshare failed: {probe.stderr.decode()[:200]}"
    return None


def ray_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_", "HUD_RAY_", "PYTEST_"))}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
               PATH=f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
               RAY_health_check_initial_delay_ms="0", RAY_health_check_period_ms="1000",
               RAY_health_check_timeout_ms="1000", RAY_health_check_failure_threshold="5")
    env.update(extra)
    return env


class NetnsCluster:
    """Head + worker nodes as ``ray start`` processes inside a private namespace."""

    def __init__(self, n_ips: int = 4) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="hrc-", dir="/tmp"))
        self.ips = [f"10.77.0.{i}" for i in range(1, n_ips + 1)]
        setup = "ip link set lo up; " + "; ".join(f"ip addr add {ip}/32 dev lo"
                                                   for ip in self.ips)
        # The holder is PID 1 of the namespace: when it dies, the kernel kills the rest.
        self.holder = subprocess.Popen(
            ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc",
             "bash", "-c", f"{setup}; echo ready; exec sleep infinity"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline().decode().strip()
        if line != "ready":
            self.close()
            raise RuntimeError(f"namespace setup failed: {self.holder.stderr.read()!r}")
        self.ns_pid = self._inner_pid()
        self.nodes: dict[str, dict[str, Any]] = {}

    def _inner_pid(self) -> int:
        deadline = time.time() + 10
        while time.time() < deadline:
            children = Path(f"/proc/{self.holder.pid}/task/{self.holder.pid}/children")
            pids = children.read_text().split() if children.exists() else []
            if pids:
                return int(pids[0])
            time.sleep(0.05)
        raise RuntimeError("namespace holder has no child")

    # ---- running things inside -------------------------------------------------------
    def argv(self, cmd: list[str], *, private_dir: Path | None = None,
             cwd: Path | None = None) -> list[str]:
        cwd = cwd or self.tmp
        # nsenter --mount would start in "/": name the working directory explicitly.
        base = ["nsenter", "-t", str(self.ns_pid), "--net", "--pid", "--mount",
                f"--wd={cwd}", "--"]
        if private_dir is None:
            return [*base, *cmd]
        # A private mount namespace with a tmpfs on private_dir: no node sees its files.
        stage = private_dir.with_name(private_dir.name + ".stage")
        script = (f"mount -t tmpfs none {private_dir} && cp -a {stage}/. {private_dir}/ && "
                  f'cd {cwd} && exec "$@"')
        return [*base, "unshare", "--mount", "--propagation", "private", "bash", "-c",
                script, "bash", *cmd]

    def run(self, cmd: list[str], *, timeout: float = 180, check: bool = True,
            env: dict[str, str] | None = None, cwd: Path | None = None,
            private_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv(cmd, private_dir=private_dir, cwd=cwd),
                              capture_output=True,
                              text=True, timeout=timeout, env=env or ray_env(),
                              cwd=cwd or self.tmp)
        if check and proc.returncode != 0:
            raise AssertionError(f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\n"
                                 f"stderr:\n{proc.stderr[-4000:]}")
        return proc

    def popen(self, cmd: list[str], *, env: dict[str, str] | None = None,
              cwd: Path | None = None, private_dir: Path | None = None,
              **kw: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(cmd, private_dir=private_dir, cwd=cwd), text=True,
                                env=env or ray_env(), cwd=cwd or self.tmp, **kw)

    # ---- Ray nodes --------------------------------------------------------------------
    @property
    def gcs(self) -> str:
        return f"{HEAD_IP}:6379"

    def start_head(self, *, num_cpus: int = 1, resources: dict[str, float] | None = None,
                   dashboard: bool = False) -> None:
        args = ["ray", "start", "--head", f"--node-ip-address={HEAD_IP}", "--port=6379",
                f"--num-cpus={num_cpus}", f"--temp-dir={self.tmp / 'n1'}",
                "--disable-usage-stats", f"--resources={json.dumps(resources or {})}"]
        args += ["--include-dashboard=true", "--dashboard-host=0.0.0.0"] if dashboard \
            else ["--include-dashboard=false"]
        self.run(args)
        self.nodes[HEAD_IP] = {"resources": resources}

    def add_worker(self, ip: str, *, num_cpus: int = 1,
                   resources: dict[str, float] | None = None) -> None:
        self.run(["ray", "start", f"--address={self.gcs}", f"--node-ip-address={ip}",
                  f"--num-cpus={num_cpus}", f"--temp-dir={self.tmp / ip}",
                  "--disable-usage-stats", f"--resources={json.dumps(resources or {})}"])
        self.nodes[ip] = {"resources": resources}

    def wait_nodes(self, n: int, timeout: float = 60) -> list[dict[str, Any]]:
        code = (f"import ray, json; ray.init(address={self.gcs!r}, log_to_driver=False); "
                "print(json.dumps([{'ip': x['NodeManagerAddress'], 'alive': x['Alive']} "
                "for x in ray.nodes()]))")
        deadline = time.time() + timeout
        while True:
            out = self.run([PY, "-c", code], check=False)
            nodes = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 \
                else []
            if sum(x["alive"] for x in nodes) >= n:
                return nodes
            if time.time() > deadline:
                raise AssertionError(f"{n} nodes not up: {nodes} {out.stderr[-2000:]}")
            time.sleep(1)

    def raylet_pids(self, ip: str) -> list[int]:
        """Every process of the node at ``ip`` (identified by its own temp dir)."""
        marker = str(self.tmp / ("n1" if ip == HEAD_IP else ip))
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker + "/" in cmdline or cmdline.rstrip().endswith(marker):
                pids.append(int(proc.name))
        return pids

    def kill_node(self, ip: str) -> list[int]:
        """SIGKILL the node's raylet and everything else started with its temp dir; its
        workers die with the raylet."""
        pids = self.raylet_pids(ip)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def close(self) -> None:
        if self.holder.poll() is None:
            try:
                os.killpg(self.holder.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.holder.wait(timeout=30)
        shutil.rmtree(self.tmp, ignore_errors=True)
