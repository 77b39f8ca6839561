"""``Dockerfile.hud`` built for real without a Docker engine, and ``hud-ray eval`` run in it.

CI machines have no Docker daemon and no image registry, so the test makes its own
stand-in for ``python:3.12-slim``: a Debian 12 ``debootstrap --variant=minbase`` root
filesystem with the Python 3.12 that runs the tests (a relocatable pyenv build, copied
under /usr/local as in the official image, without its site-packages), committed with
buildah. It builds the repository's unchanged ``Dockerfile.hud`` on that base with
``buildah bud``, then runs ``hud-ray eval tasksets/shell.py oracle`` inside the built image:
every rollout gets its own bubblewrap sandbox reached over ssh, nested in the image, and
every rollout key must end with exactly one final ``ok`` row of reward 1.0.

How the image is run: bubblewrap over ``buildah mount`` (the image's root filesystem as
``/``, fresh pid/net/ipc/uts namespaces, the image's ``Env`` and ``WorkingDir``), not
``buildah run``: its chroot isolation keeps the process in a chroot, where the kernel
refuses new user namespaces, so no rollout sandbox could start; its OCI isolation (crun)
refuses this machine's hybrid cgroups. The runner mounts a fresh ``/proc`` itself, since
the kernel refuses the sandboxes' own ``/proc`` mounts under a ``/proc`` with covered
entries (bubblewrap's ``--proc`` covers ``/proc/sys``; Docker's masked paths do the same,
hence ``systempaths=unconfined`` in cluster.yaml).

Slow parts are cached on the machine under ``/var/cache/hud-ray-ci`` (or
``HUD_RAY_IMAGE_CACHE``), keyed by content: the debootstrap root filesystem and the base
image (in a buildah storage of its own there). The built image is removed after the test.
Needs root, buildah, debootstrap and bubblewrap (``make system-deps``); the Debian mirror
is the one apt uses (or ``HUD_RAY_DEBIAN_MIRROR``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hud_ray import read_rollouts
from hud_ray.task import Taskset

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("HUD_RAY_IMAGE_CACHE", "/var/cache/hud-ray-ci"))
SUITE = "bookworm"
#: What python:3.12-slim carries besides Python: the libraries its extension modules link.
PACKAGES = ("ca-certificates", "netbase", "tzdata", "libssl3", "libffi8", "libsqlite3-0",
            "libbz2-1.0", "liblzma5", "zlib1g", "libreadline8", "libncursesw6", "libuuid1",
            "libexpat1")
RECIPE = "1"  # bump to rebuild the cached root filesystem and base image
BASE_REPO = "localhost/hud-ray-ci-python"
IMAGE = "localhost/hud-ray-ci-hud:test"
PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.image, pytest.mark.timeout(2400)]


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (debootstrap, buildah storage, nested sandboxes)"
    tools = [t for t in ("buildah", "debootstrap", "bwrap", "chroot") if not shutil.which(t)]
    if tools:
        return f"needs {', '.join(tools)} (make system-deps)"
    prefix = Path(sys.base_prefix)
    if str(prefix) in ("/usr", "/") or not (prefix / "lib/libpython3.12.so.1.0").exists():
        return (f"needs a relocatable shared Python 3.12 build (a pyenv prefix); the tests "
                f"run on {prefix}")
    return None


def _run(argv: list[str], *, timeout: float = 1200, **kw: object) -> str:
    """Run ``argv``; a failure names the command and the end of its output."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                          **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip()[-3000:]
        raise AssertionError(f"{' '.join(map(str, argv[:6]))} ... exited {proc.returncode}:\n"
                             f"{tail}")
    return str(proc.stdout)


def buildah(*args: str, timeout: float = 1200) -> str:
    """buildah on the test's own storage (vfs: works on any filesystem)."""
    return _run(["buildah", "--root", str(CACHE / "storage"), "--runroot",
                 str(CACHE / "runroot"), "--storage-driver", "vfs", *args], timeout=timeout)


def debian_mirror() -> str:
    """The Debian mirror apt uses for ``SUITE`` (one-line and deb822 sources)."""
    if os.environ.get("HUD_RAY_DEBIAN_MIRROR"):
        return os.environ["HUD_RAY_DEBIAN_MIRROR"]
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for f in files:
        with contextlib.suppress(OSError):
            text = f.read_text()
            if f.suffix == ".sources":
                for stanza in re.split(r"\n\s*\n", text):
                    fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
                    if SUITE in fields.get("Suites", "").split() and fields.get("URIs"):
                        return fields["URIs"].split()[0]
            else:
                for line in text.splitlines():
                    words = re.sub(r"\[[^]]*\]", "", line).split()
                    if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                        return words[1]
    pytest.fail(f"no apt source for Debian {SUITE} in /etc/apt; set HUD_RAY_DEBIAN_MIRROR")


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps([RECIPE, *parts], default=str).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One image test at a time per cache (they share the buildah storage)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def rootfs(mirror: str) -> tuple[Path, str]:
    """The debootstrap root filesystem, from the cache or made now."""
    key = _key(SUITE, "minbase", PACKAGES, mirror)
    path = CACHE / f"rootfs-{key}"
    if not path.is_dir():
        for old in CACHE.glob("rootfs-*"):
            shutil.rmtree(old)
        work = CACHE / f"rootfs-{key}.tmp"
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
              str(work), mirror])
        for junk in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for p in (work / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        work.rename(path)
    return path, key


def base_image(mirror: str) -> str:
    """A local image standing in for python:3.12-slim (cached by content)."""
    prefix = Path(sys.base_prefix)
    lib = prefix / "lib/libpython3.12.so.1.0"
    fs_key = _key(SUITE, "minbase", PACKAGES, mirror)
    tag = f"{BASE_REPO}:{_key(fs_key, sys.version, str(prefix), lib.stat().st_size, lib.stat().st_mtime)}"
    with contextlib.suppress(AssertionError):
        buildah("inspect", "--type", "image", tag)
        return tag
    source, _ = rootfs(mirror)
    stage = CACHE / "stage"
    if stage.exists():
        shutil.rmtree(stage)
    _run(["cp", "-a", str(source), str(stage)])
    try:
        # The interpreter's whole prefix under /usr/local (its RUNPATH names the old prefix,
        # which does not exist in the image; ld.so then finds libpython in /usr/local/lib).
        # Not its site-packages: pip comes from ensurepip, nothing else of this machine's.
        stdlib = Path(sysconfig.get_paths()["stdlib"]).name
        skip = {f"lib/{stdlib}/site-packages", f"lib/{stdlib}/test"}

        def ignore(folder: str, names: list[str]) -> set[str]:
            rel = os.path.relpath(folder, prefix)
            return {n for n in names if os.path.normpath(f"{rel}/{n}") in skip
                    or n == "__pycache__"}

        for sub in ("lib", "include"):
            shutil.copytree(prefix / sub, stage / "usr/local" / sub, ignore=ignore,
                            symlinks=True, dirs_exist_ok=True)
        (stage / f"usr/local/lib/{stdlib}/site-packages").mkdir(exist_ok=True)
        (stage / "usr/local/bin").mkdir(exist_ok=True)
        shutil.copy2(prefix / "bin/python3.12", stage / "usr/local/bin/python3.12")
        for name in ("python3", "python"):
            (stage / "usr/local/bin" / name).symlink_to("python3.12")
        _run(["chroot", str(stage), "ldconfig"])
        _run(["chroot", str(stage), "/usr/local/bin/python3.12", "-m", "ensurepip",
              "--default-pip"])
        _run(["chroot", str(stage), "python3", "-c", "import ssl, sqlite3, ctypes, lzma, bz2"])
        ctr = buildah("from", "scratch").strip()
        try:
            buildah("copy", ctr, f"{stage}/", "/")
            buildah("config", "--env", f"PATH={PATH}", "--env", "LANG=C.UTF-8",
                    "--cmd", "python3", ctr)
            buildah("commit", "--quiet", ctr, tag)
        finally:
            buildah("rm", ctr)
    finally:
        shutil.rmtree(stage)
    for line in buildah("images", "--format", "{{.Name}}:{{.Tag}}").split():
        if line.startswith(BASE_REPO + ":") and line != tag:
            buildah("rmi", line)
    return tag


def build(base: str, build_args: dict[str, str]) -> None:
    """``buildah bud`` of the repository's Dockerfile.hud on ``base``."""
    args = ["bud", "--isolation", "chroot", "--pull=never", "--layers=false",
            "--build-arg", f"BASE={base}", "-t", IMAGE, "-f", str(ROOT / "Dockerfile.hud")]
    for k, v in build_args.items():
        args += ["--build-arg", f"{k}={v}"]
    if HOST_CA.exists():  # package traffic may pass a proxy only the host's bundle trusts
        args += ["--volume", f"{HOST_CA}:/run/host-ca.crt:ro",
                 "--build-arg", "PIP_CERT=/run/host-ca.crt"]
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "NO_PROXY"):
        if os.environ.get(name):
            args += ["--build-arg", f"{name}={os.environ[name]}"]
    buildah(*args, str(ROOT), timeout=1800)


@contextlib.contextmanager
def private_cgroups(name: str) -> Iterator[list[Path]]:
    """A cgroup of the test's own below this process's, in each v1 hierarchy the
    sandboxes use: their groups (and the sweep of dead ones) stay inside it."""
    made: list[Path] = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for ctrl in ("memory", "pids", "cpu", "freezer"):
            if ctrl in ctrls.split(","):
                d = Path("/sys/fs/cgroup") / ctrl / path.lstrip("/") / name
                with contextlib.suppress(OSError):
                    d.mkdir(exist_ok=True)
                    made.append(d)
    try:
        yield made
    finally:
        for d in made:
            with contextlib.suppress(OSError):
                d.rmdir()


def run_in_image(mount: Path, config: dict, argv: list[str], *, out: Path, tmp: Path,
                 cgroups: list[Path], timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``argv`` as root in the image (its root filesystem at ``mount``), like
    ``docker run --cap-add SYS_ADMIN --security-opt systempaths=unconfined`` would."""
    env = dict(e.split("=", 1) for e in config.get("Env") or [])
    env.setdefault("PATH", PATH)
    env.update(HOME="/root", RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    outer = ["bwrap", "--bind", str(mount), "/", "--dev", "/dev", "--tmpfs", "/dev/shm",
             "--ro-bind", "/sys", "/sys", "--bind", "/sys/fs/cgroup", "/sys/fs/cgroup",
             "--bind", str(tmp), "/tmp", "--bind", str(out), "/out",
             "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
             "--hostname", "hud-ray-image", "--die-with-parent", "--cap-add", "ALL",
             "--clearenv"]
    for k, v in env.items():
        outer += ["--setenv", k, v]
    outer += ["--chdir", config.get("WorkingDir") or "/", "--",
              "/bin/sh", "-c", 'mount -t proc proc /proc && exec "$@"', "sh", *argv]

    def join() -> None:  # runs in the child before exec: start inside the private cgroups
        for d in cgroups:
            with contextlib.suppress(OSError):
                (d / "cgroup.procs").write_text(str(os.getpid()))

    return subprocess.run(outer, capture_output=True, text=True, timeout=timeout,
                          check=False, preexec_fn=join)


VARIANTS = {
    # the default image: the shell taskset, each rollout in a bubblewrap sandbox over ssh
    "default": ({}, "tasksets/shell.py"),
    # CHROMIUM=1: the browser taskset, headless Chromium driven over cdp by Playwright
    "chromium": ({"CHROMIUM": "1"}, "tasksets/browser.py"),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_dockerfile_hud_builds_and_runs_a_taskset_inside(tmp_path, variant):
    """From the debootstrap base to rows: the taskset's oracle scores 1.0 on every
    rollout inside the built image."""
    why = _missing()
    if why:
        pytest.skip(why)
    build_args, taskset = VARIANTS[variant]
    times: dict[str, float] = {}
    with _locked():
        # Anything a killed earlier run left: its working containers and built image.
        CACHE.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(AssertionError):
            buildah("rm", "--all")
        with contextlib.suppress(AssertionError):
            buildah("rmi", IMAGE)
        t0 = time.monotonic()
        base = base_image(debian_mirror())
        times["base"] = time.monotonic() - t0
        t0 = time.monotonic()
        build(base, build_args)
        times["build"] = time.monotonic() - t0
        t0 = time.monotonic()
        ctr = buildah("from", "--pull=never", "--name", f"hud-ray-ci-{os.getpid()}",
                      IMAGE).strip()
        try:
            size = buildah("images", "--format", "{{.Size}}", IMAGE).strip()
            mount = Path(buildah("mount", ctr).strip())
            config = json.loads(buildah("inspect", "--type", "image", IMAGE))
            config = config.get("OCIv1", {}).get("config", {})
            out, tmp = tmp_path / "out", tmp_path / "tmp"
            out.mkdir()
            tmp.mkdir()
            times["mount"] = time.monotonic() - t0
            t0 = time.monotonic()
            with private_cgroups(f"hud-ray-image-test-{os.getpid()}") as groups:
                proc = run_in_image(mount, config, [
                    "hud-ray", "eval", taskset, "oracle", "--out", "/out/run"],
                    out=out, tmp=tmp, cgroups=groups)
            times["eval"] = time.monotonic() - t0
        finally:
            t0 = time.monotonic()
            with contextlib.suppress(AssertionError):
                buildah("umount", ctr)
            buildah("rm", ctr)
            buildah("rmi", IMAGE)
            times["cleanup"] = time.monotonic() - t0
    log.info("image test (%s): image %s, times %s", variant, size,
             {k: round(v, 1) for k, v in times.items()})
    assert config.get("WorkingDir") == "/opt/hud-ray"
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    rows = read_rollouts(out / "run").to_pylist()
    final = [r for r in rows if r["final"]]
    keys = [r["rollout_key"] for r in final]
    expected = len(Taskset.from_file(ROOT / taskset))
    assert len(keys) == len(set(keys)) == expected, keys
    assert {r["rollout_key"] for r in rows} == set(keys)
    bad = [(r["slug"], r["status"], r["reward"], r["error_message"]) for r in final
           if not (r["status"] == "ok" and r["reward_valid"] and r["reward"] == 1.0)]
    assert not bad, bad
