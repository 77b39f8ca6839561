"""Every shell command in README.md runs as written (offline), or fails cleanly.

Each ```bash block is one test; its lines run in order through ``bash -c`` in a scratch
directory that links the repository's ``examples/``, ``configs/`` and ``tasksets/``, with
the venv's ``bin/`` first on ``PATH`` (so ``hud-ray`` is this checkout's script). What the
test changes about a command, all listed here:

- a line ending in ``&`` starts a background process; the next line runs once it prints
  its ready line (:data:`READY`); ``kill %N`` stops the block's N-th background process;
- the fake provider's port 8000 becomes a free port (:data:`PORT_8000`), and ``hud-ray
  serve``/``task`` get a free port and a scratch state dir through ``HUD_RAY_*`` variables;
- commands that need an API key or a cluster must fail with one clean line
  (:data:`EXPECT_ERROR`); :data:`SKIP` lists the few that cannot run here, with why.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BIN = Path(sys.executable).parent

#: Command prefix -> why it cannot run in this test.
SKIP = {
    "make test": "runs this test suite (it would recurse)",
    "hud-ray eval examples/tasks.py openai_compatible --base-url http://vllm:8000/v1":
        "needs a vLLM server at http://vllm:8000",
}
#: Command prefix -> text its one-line error must contain (no key / no cluster here).
EXPECT_ERROR = {
    "hud-ray eval examples/tasks.py claude": "ANTHROPIC_API_KEY",
    "hud-ray eval examples/tasks.py openai --gateway": "HUD_RAY_GATEWAY_KEY",
    "hud-ray eval examples/tasks.py oracle --address auto": "no running Ray cluster",
}
#: Background command prefix -> the line it prints when ready.
READY = {"hud-ray fake-provider": "listening on", "hud-ray serve": "serving env"}
#: Lines with the fake provider's port 8000 (it is rewritten to a free port).
PORT_8000 = re.compile(r"(--port |127\.0\.0\.1:)8000\b")
#: Keys that would let model commands reach a real provider.
KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "HUD_API_KEY", "HUD_RAY_GATEWAY_KEY", "RAY_ADDRESS")


def bash_blocks() -> list[tuple[str, list[str]]]:
    """(nearest heading, command lines) for every ```bash block of the README."""
    blocks, heading, current = [], "top", None
    for line in README.read_text().splitlines():
        if current is None and line.startswith("#"):
            heading = line.lstrip("# ").strip()
        elif current is None and line.strip() == "```bash":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append((heading, current))
            current = None
        elif current is not None and line.strip() and not line.lstrip().startswith("#"):
            current.append(re.sub(r"\s+#.*$", "", line.strip()))  # drop trailing comments
    return blocks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _match(table: dict[str, str], line: str) -> str | None:
    return next((v for k, v in table.items() if line.startswith(k)), None)


def _ray_cluster_visible() -> bool:
    from ray._private.services import get_ray_address_from_environment

    try:
        get_ray_address_from_environment("auto", None)
    except ConnectionError:
        return False
    return True


def _isolated(argv: list[str]) -> list[str] | None:
    """``argv`` in a fresh pid namespace with an empty /tmp/ray, so Ray's ``auto`` lookup
    sees no cluster of other processes on this machine; None if that is impossible."""
    bwrap = shutil.which("bwrap")
    if bwrap:
        wrap = [bwrap, "--dev-bind", "/", "/", "--unshare-pid", "--proc", "/proc",
                "--tmpfs", "/tmp/ray"]
        if subprocess.run([*wrap, "true"], capture_output=True).returncode == 0:
            return [*wrap, *argv]
    return None if _ray_cluster_visible() else argv


def _run(argv: list[str], *, cwd: Path, env: dict[str, str],
         timeout: float) -> subprocess.CompletedProcess:
    """Run in its own process group, so a hang kills the command and all it started."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, text=True, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\n(killed after {timeout}s)"
        return subprocess.CompletedProcess(argv, -9, out, err)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("readme")
    for name in ("examples", "configs", "tasksets"):
        (work / name).symlink_to(ROOT / name)
    return work


def test_readme_has_commands_and_example_file():
    blocks = bash_blocks()
    assert len(blocks) >= 5 and all(lines for _, lines in blocks)
    # the README's tasks.py is the shipped example, verbatim
    text = README.read_text()
    python_blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    example = (ROOT / "examples" / "tasks.py").read_text()
    assert example in python_blocks, "README's tasks.py and examples/tasks.py differ"
    for prefix in [*SKIP, *EXPECT_ERROR]:
        assert any(line.startswith(prefix) for _, lines in blocks for line in lines), \
            f"stale allowlist entry: {prefix!r}"


@pytest.mark.parametrize("heading, lines", bash_blocks(),
                         ids=[re.sub(r"\W+", "-", h).strip("-") for h, _ in bash_blocks()])
def test_readme_block_runs(heading, lines, workdir, tmp_path):
    serve_port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in KEYS and not k.startswith("HUD_RAY_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", RAY_AUTH_MODE="disabled",
               RAY_USAGE_STATS_ENABLED="0", HUD_RAY_STATE_DIR=str(tmp_path / "state"),
               HUD_RAY_SERVE_PORT=str(serve_port),
               HUD_RAY_CONTROL_URL=f"127.0.0.1:{serve_port}")
    provider_port = str(_free_port())
    background: list[subprocess.Popen] = []
    failures: list[str] = []
    try:
        for line in lines:
            if _match(SKIP, line):
                continue  # listed in SKIP with its reason
            line = PORT_8000.sub(lambda m: m.group(1) + provider_port, line)
            if m := re.fullmatch(r"kill %(\d+)", line):
                proc = background[int(m.group(1)) - 1]
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=30)
                continue
            if line.startswith("make "):
                if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
                    continue  # make targets use ROOT/.venv; this run uses another venv
                before = set((ROOT / "runs").glob("demo-*"))
                proc = _run(["bash", "-c", line], cwd=ROOT, env=env, timeout=300)
                for new in set((ROOT / "runs").glob("demo-*")) - before:
                    shutil.rmtree(new)
                if proc.returncode != 0:
                    failures.append(f"{line!r} exited {proc.returncode}: {proc.stderr[-800:]}")
                continue
            if line.endswith("&"):
                ready = _match(READY, line)
                assert ready, f"no ready line known for background command {line!r}"
                log = tmp_path / f"bg{len(background)}.log"
                background.append(subprocess.Popen(
                    ["bash", "-c", f"exec {line[:-1]}"], cwd=workdir, env=env,
                    stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True))
                deadline = time.monotonic() + 60
                while ready not in log.read_text():
                    assert background[-1].poll() is None, f"{line!r} died: {log.read_text()}"
                    assert time.monotonic() < deadline, f"{line!r} never got ready"
                    time.sleep(0.1)
                continue
            argv = ["bash", "-c", line]
            expected = _match(EXPECT_ERROR, line)
            if expected and "--address auto" in line:
                isolated = _isolated(argv)
                if isolated is None:
                    continue  # a Ray cluster is visible and cannot be hidden: nothing to check
                argv = isolated
            proc = _run(argv, cwd=workdir, env=env, timeout=240)
            out = proc.stdout + proc.stderr
            if "Traceback" in out:
                failures.append(f"{line!r} printed a traceback:\n{out[-1500:]}")
            elif expected:
                err = proc.stderr.strip().splitlines()
                if proc.returncode == 0 or len(err) != 1 or expected not in err[0]:
                    failures.append(f"{line!r}: want one error line with {expected!r}, got "
                                    f"exit {proc.returncode}, stderr {proc.stderr!r}")
            elif proc.returncode != 0:
                failures.append(f"{line!r} exited {proc.returncode}: {proc.stderr[-800:]}")
    finally:
        for bg in background:
            if bg.poll() is None:
                os.killpg(bg.pid, signal.SIGKILL)
                bg.wait()
    assert not failures, f"README section {heading!r}:\n" + "\n".join(failures)
