"""Per-rollout resource limits: a cgroup per sandbox, created under the actor's own.

cgroup v1 (a ``memory``, ``pids``, ``cpu`` and ``freezer`` hierarchy each) or a
delegated cgroup v2 subtree. Groups are made only below the cgroup this process
already is in, never change a parent's settings, and are removed at teardown. A
controller that is missing or not writable is skipped (logged once); the sandbox's
other defences still hold.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from hud_ray.errors import CapabilityError

log = logging.getLogger(__name__)
ROOT = Path("/sys/fs/cgroup")
_MB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What one rollout's sandbox may use. ``None`` switches a limit off."""

    pids: int | None = 512            #: processes and threads
    memory_mb: int | None = 2048      #: RAM, including its tmpfs (/tmp, /run, workspace)
    cpus: float | None = 1.0          #: CPU time, in cores
    tmp_mb: int = 256                 #: size of /tmp and of /run (each a tmpfs)
    workspace_mb: int | None = 1024   #: size of /workspace (a tmpfs); None: host disk

    def __post_init__(self) -> None:
        for name in ("pids", "memory_mb", "cpus", "workspace_mb"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise CapabilityError(f"workspace limit {name} must be a positive number or "
                                      f"None, not {value!r}", code="bad_limits", retryable=False)
        if not isinstance(self.tmp_mb, int) or self.tmp_mb <= 0:
            raise CapabilityError(f"workspace limit tmp_mb must be a positive integer, not "
                                  f"{self.tmp_mb!r}", code="bad_limits", retryable=False)

    @classmethod
    def parse(cls, value: Limits | dict[str, object] | None) -> Limits:
        if value is None:
            return cls()
        if isinstance(value, Limits):
            return value
        if not isinstance(value, dict):
            raise CapabilityError(f"workspace limits must be a dict or Limits, not "
                                  f"{type(value).__name__}", code="bad_limits", retryable=False)
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise CapabilityError(f"unknown workspace limits {sorted(unknown)}; known: "
                                  f"{sorted(cls.__dataclass_fields__)}", code="bad_limits",
                                  retryable=False)
        return cls(**value)  # type: ignore[arg-type]


_warned: set[str] = set()
_swept: set[Path] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(parent: Path) -> None:
    """Remove empty ``hud-ray-PID-*`` groups left below ``parent`` by a process that died
    without tearing down (its sandboxes died with it: bwrap ``--die-with-parent``)."""
    if parent in _swept:
        return
    _swept.add(parent)
    with contextlib.suppress(OSError):
        for d in parent.glob("hud-ray-*"):
            pid = d.name.split("-")[2]
            if pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    d.rmdir()


def _own(controller: str) -> str | None:
    """This process's cgroup path in ``controller``'s v1 hierarchy (or v2 with "")."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        mine = controller in ctrls.split(",") if controller else ctrls == ""
        if mine:
            return path
    return None


class Cgroup:
    """One sandbox's cgroups: ``create`` -> ``procs_files`` (to join) -> ``remove``."""

    def __init__(self, name: str, limits: Limits) -> None:
        self.name = name
        self.limits = limits
        self.dirs: dict[str, Path] = {}  # controller (or "unified") -> group dir
        self.v2 = False

    def _settings(self) -> dict[str, dict[str, str]]:
        lim = self.limits
        if self.v2:
            s: dict[str, str] = {}
            if lim.memory_mb:
                s["memory.max"] = str(lim.memory_mb * _MB)
                s["memory.swap.max"] = "0"
            if lim.pids:
                s["pids.max"] = str(lim.pids)
            if lim.cpus:
                s["cpu.max"] = f"{int(lim.cpus * 100_000)} 100000"
            return {"unified": s}
        v1: dict[str, dict[str, str]] = {"freezer": {}, "memory": {}, "pids": {}, "cpu": {}}
        if lim.memory_mb:
            v1["memory"]["memory.limit_in_bytes"] = str(lim.memory_mb * _MB)
        if lim.pids:
            v1["pids"]["pids.max"] = str(lim.pids)
        if lim.cpus:
            v1["cpu"]["cpu.cfs_period_us"] = "100000"
            v1["cpu"]["cpu.cfs_quota_us"] = str(int(lim.cpus * 100_000))
        return v1

    def create(self) -> None:
        v1 = any((ROOT / c / "cgroup.procs").exists() for c in ("memory", "pids"))
        if not v1 and (ROOT / "cgroup.controllers").exists():
            self._create_v2()
            return
        for ctrl, settings in self._settings().items():
            own = _own(ctrl)
            base = ROOT / ctrl
            if own is None or not (base / "cgroup.procs").exists():
                self._warn(ctrl, "not mounted")
                continue
            d = base / own.lstrip("/") / self.name
            sweep(d.parent)
            try:
                d.mkdir()
                for key, value in settings.items():
                    (d / key).write_text(value)
            except OSError as e:
                self._warn(ctrl, str(e))
                with contextlib.suppress(OSError):
                    d.rmdir()
                continue
            self.dirs[ctrl] = d

    def _create_v2(self) -> None:
        self.v2 = True
        own = _own("")
        parent = ROOT / (own or "/").lstrip("/")
        try:
            delegated = set((parent / "cgroup.subtree_control").read_text().split())
        except OSError:
            delegated = set()
        if not {"memory", "pids", "cpu"} <= delegated:
            self._warn("v2", f"controllers not delegated to {parent} ({sorted(delegated)})")
            return
        d = parent / self.name
        try:
            d.mkdir()
            for key, value in self._settings()["unified"].items():
                with contextlib.suppress(FileNotFoundError):
                    (d / key).write_text(value)
        except OSError as e:
            self._warn("v2", str(e))
            with contextlib.suppress(OSError):
                d.rmdir()
            return
        self.dirs["unified"] = d

    @staticmethod
    def _warn(ctrl: str, why: str) -> None:
        if ctrl not in _warned:
            _warned.add(ctrl)
            log.warning("sandbox cgroup %s unavailable (%s): that limit is not enforced",
                        ctrl, why)

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def pids(self) -> list[int]:
        for d in self.dirs.values():
            with contextlib.suppress(OSError):
                return [int(x) for x in (d / "cgroup.procs").read_text().split()]
        return []

    def freeze(self, frozen: bool) -> bool:
        """Freeze (or thaw) every process of the group; False without a freezer."""
        if "freezer" in self.dirs:
            state = self.dirs["freezer"] / "freezer.state"
            state.write_text("FROZEN" if frozen else "THAWED")
            if frozen:
                deadline = time.monotonic() + 5
                while state.read_text().strip() != "FROZEN" and time.monotonic() < deadline:
                    time.sleep(0.001)
            return True
        if "unified" in self.dirs:
            (self.dirs["unified"] / "cgroup.freeze").write_text("1" if frozen else "0")
            return True
        return False

    def events(self) -> dict[str, int]:
        """Counters of limits hit so far: ``memory`` (OOM kills), ``pids`` (forks refused)."""
        out = {"memory": 0, "pids": 0}
        with contextlib.suppress(OSError):
            if "memory" in self.dirs:
                for line in (self.dirs["memory"] / "memory.oom_control").read_text().splitlines():
                    if line.startswith("oom_kill "):
                        out["memory"] = int(line.split()[1])
            if "pids" in self.dirs:
                out["pids"] = int((self.dirs["pids"] / "pids.events").read_text().split()[1])
            if "unified" in self.dirs:
                for name, key in (("memory.events", "oom_kill"), ("pids.events", "max")):
                    for line in (self.dirs["unified"] / name).read_text().splitlines():
                        if line.startswith(key + " "):
                            out[name.split(".")[0]] = int(line.split()[1])
        return out

    def remove(self, timeout: float = 5.0) -> None:
        """Remove the groups (waits for their processes to be gone)."""
        deadline = time.monotonic() + timeout
        for ctrl, d in list(self.dirs.items()):
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        log.warning("cgroup %s still busy at teardown; left in place", d)
                        break
                    time.sleep(0.005)
            self.dirs.pop(ctrl, None)
