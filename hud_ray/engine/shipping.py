"""Shipping a run's files to a cluster whose nodes never saw them.

A run against ``--address`` uploads one directory (by default the tasks file's folder)
as Ray's ``runtime_env`` ``working_dir``: the tasks file, the environment modules it
imports and its data files. Every actor then starts in its node's unpacked copy, so the
driver hands actors source paths *relative* to that directory instead of its own
absolute paths. Inside a Ray Job (``hud-ray submit``) the job already carries the
directory; the driver only makes the paths relative to it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hud_ray.errors import ConfigError

#: Never worth shipping; users add more with ``--exclude`` (gitignore syntax).
DEFAULT_EXCLUDES: tuple[str, ...] = (".git", "__pycache__", "*.pyc", ".venv", ".mypy_cache",
                                     ".pytest_cache", ".ruff_cache")


def max_package_bytes() -> int:
    """Ray's upper bound on one uploaded package (the GCS gRPC message size)."""
    from ray._private.runtime_env.packaging import GCS_STORAGE_MAX_SIZE

    return int(GCS_STORAGE_MAX_SIZE)


@dataclass(frozen=True)
class Shipment:
    """One directory uploaded with the run, and how actors should name files in it."""

    root: Path
    excludes: tuple[str, ...] = ()
    upload: bool = True  # False inside a Ray Job: the job already shipped ``root``
    size: int = field(default=0, compare=False)

    @property
    def runtime_env(self) -> dict[str, Any] | None:
        if not self.upload:
            return None
        return {"working_dir": str(self.root), "excludes": list(self.excludes)}

    def uploaded_env(self) -> dict[str, Any] | None:
        """``runtime_env`` for actors when Ray was already connected (no ``ray.init`` of
        ours to upload it): Ray only uploads local folders at job level, so upload the
        package here and name it by its ``gcs://`` URI."""
        env = self.runtime_env
        if env is None:
            return None
        import tempfile

        from ray._private.runtime_env.working_dir import upload_working_dir_if_needed

        with upload_errors(self), tempfile.TemporaryDirectory(prefix="hud-ray-ship-") as tmp:
            return upload_working_dir_if_needed(dict(env), include_gitignore=True,
                                                scratch_dir=tmp)

    def actor_sources(self, sources: dict[str, str]) -> dict[str, str]:
        """Each source path as the actors see it: relative to their working directory."""
        out = {}
        for name, path in sources.items():
            resolved = Path(path).resolve()
            if not resolved.is_relative_to(self.root):
                raise ConfigError(f"{path}: environment source is outside the shipped "
                                  f"directory {self.root}; pass --working-dir covering both")
            out[name] = resolved.relative_to(self.root).as_posix()
        return out


def _roots(source: str, env_source: str | None) -> list[Path]:
    roots = []
    for item in (source, env_source):
        if item is None:
            continue
        path = Path(item).resolve()
        roots.append(path if path.is_dir() else path.parent)
    return roots


def plan_shipment(*, source: str, env_source: str | None, address: str | None,
                  working_dir: str | None = None, excludes: list[str] | None = None,
                  ship: bool | None = None, out_dir: str | Path | None = None) -> Shipment | None:
    """What to upload for a run, or None when actors can read the driver's own paths.

    ``ship`` None means: ship when connecting to a cluster (``address`` given).
    """
    if ship is None:
        ship = address is not None
    if not ship:
        return None
    roots = _roots(source, env_source)
    if working_dir is not None:
        root = Path(working_dir).resolve()
        if not root.is_dir():
            raise ConfigError(f"--working-dir {working_dir}: not a directory")
    else:
        root = Path(os.path.commonpath([str(r) for r in roots]))
    for item, r in zip((source, env_source), roots, strict=False):
        if not r.is_relative_to(root):
            raise ConfigError(f"{item} is outside --working-dir {root}; ship a directory "
                              "that contains the tasks file and its environment")
    patterns = [*DEFAULT_EXCLUDES, *(excludes or [])]
    if out_dir is not None:
        out = Path(out_dir).resolve()
        if out.is_relative_to(root) and out != root:
            patterns.append("/" + out.relative_to(root).as_posix())
    size, biggest = measure(root, patterns)
    limit = max_package_bytes()
    if size >= limit:
        top = ", ".join(f"{name} ({_mib(n)})" for name, n in biggest[:3])
        raise ConfigError(f"{root}: {_mib(size)} to ship is over Ray's {_mib(limit)} package "
                          f"limit (largest: {top}); leave files out with --exclude PATTERN "
                          "or .rayignore, or pass a smaller --working-dir")
    return Shipment(root=root, excludes=tuple(patterns), upload=True, size=size)


def job_shipment() -> Shipment | None:
    """Inside a Ray Job that carries a ``working_dir``: actors start in the same unpacked
    copy the driver runs in, so paths under the current directory are made relative."""
    import ray

    try:
        env = ray.get_runtime_context().runtime_env
    except Exception:
        return None
    if not env or not env.get("working_dir"):
        return None
    return Shipment(root=Path.cwd().resolve(), upload=False)


def measure(root: Path, patterns: list[str]) -> tuple[int, list[tuple[str, int]]]:
    """Bytes Ray would pack under ``root`` (same exclude rules as its upload), and the
    top-level entries by size, largest first."""
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes

    per_top: dict[str, int] = {}

    def handler(path: Path) -> None:
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(root)
            top = rel.parts[0] if rel.parts else path.name
            per_top[top] = per_top.get(top, 0) + path.stat().st_size

    _dir_travel(root, [_get_excludes(root, patterns)], handler, include_gitignore=True)
    biggest = sorted(per_top.items(), key=lambda kv: -kv[1])
    return sum(per_top.values()), biggest


@contextlib.contextmanager
def upload_errors(shipment: Shipment | None) -> Iterator[None]:
    """Ray's own size error (on the zipped package) as one line."""
    try:
        yield
    except ValueError as exc:
        if shipment is None or "exceeds the maximum size" not in str(exc):
            raise
        raise ConfigError(f"{shipment.root}: {str(exc).split('. ')[0]}; leave files out with "
                          "--exclude PATTERN or .rayignore") from None


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
