"""Template code sees its own rollout's workspace at the workspace ``root`` (as on HUD).

On HUD, ``env.workspace(root)`` serves ``root`` itself, so template or grader Python
code that reads (or writes) under ``root`` after the agent acted sees the agent's
files. hud-ray gives every rollout a fresh copy of ``root``; while a session's template
code runs (prompt phase, grading phase, reference solution) :class:`RootViews` makes
``root`` show that session's copy:

- with bubblewrap isolation (the sandbox runs as root), the event-loop thread moves
  into a private mount namespace once (``unshare(CLONE_NEWNS | CLONE_FS)`` affects the
  calling thread only, and threads it starts later) and bind-mounts the session's copy
  over ``root`` for the phase (threads it starts later, such as the loop's default
  executor used by ``asyncio.to_thread``, see the same view). Other processes (other
  sandboxes on the node) and threads that existed before keep the pristine ``root``.
- without isolation, ``root`` is swapped in place for the phase (pristine contents
  moved aside, the copy put at ``root``, changes copied back afterwards).

Opening a rooted session (which copies ``root``) and the template phases of rooted
sessions run one at a time per sandbox process, so a copy is always taken from the
pristine ``root``. Without isolation the swap is visible to other processes: several
sandbox processes on one node sharing a ``root`` need isolation.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hud_ray.errors import CapabilityError

log = logging.getLogger(__name__)

_CLONE_FS = 0x00000200
_CLONE_NEWNS = 0x00020000
_MS_BIND = 4096
_MS_REC = 16384
_MS_SLAVE = 1 << 19
_MNT_DETACH = 2
_private_threads: set[int] = set()


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise CapabilityError(f"workspace root view: {what} failed: {os.strerror(err)}")


def _private_mount_namespace() -> None:
    """Move the calling thread into its own mount namespace (once per thread)."""
    ident = threading.get_ident()
    if ident in _private_threads:
        return
    libc = _libc()
    _check(libc.unshare(_CLONE_NEWNS | _CLONE_FS), "unshare")
    _check(libc.mount(None, b"/", None, _MS_REC | _MS_SLAVE, None), "making / a slave mount")
    _private_threads.add(ident)
    # threads this thread starts from now on share its namespace: give the loop a fresh
    # default executor so `asyncio.to_thread` in template code sees the view too
    with contextlib.suppress(RuntimeError):
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(thread_name_prefix="hud-ray-rootview"))


def rooted(resources: dict[str, Any]) -> list[Any]:
    """The resources of an environment that serve a workspace ``root``."""
    return [r for r in resources.values() if getattr(r, "root", None) is not None]


class RootViews:
    """Serialises the template phases of rooted sessions and shows each its own copy."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    def guard(self, resources: dict[str, Any]) -> contextlib.AbstractAsyncContextManager[Any]:
        """Held across opening a rooted session and across each of its template phases."""
        return self._lock if rooted(resources) else contextlib.nullcontext()

    @contextlib.contextmanager
    def show(self, resources: dict[str, Any], session_id: str) -> Iterator[None]:
        """While inside, each rooted resource's ``root`` shows this session's copy."""
        with contextlib.ExitStack() as stack:
            for res in rooted(resources):
                ws = res.session_context(session_id)
                stack.enter_context(_view(Path(res.root), Path(ws.path),
                                          getattr(ws.jail, "host_uid", None)))
            yield


@contextlib.contextmanager
def _view(root: Path, copy: Path, uid: int | None) -> Iterator[None]:
    if uid is not None and os.geteuid() == 0:
        _private_mount_namespace()
        libc = _libc()
        _check(libc.mount(os.fsencode(copy), os.fsencode(root), None, _MS_BIND | _MS_REC,
                          None), f"binding {copy} over {root}")
        try:
            yield
        finally:
            _check(libc.umount2(os.fsencode(root), _MNT_DETACH), f"unmounting {root}")
            _give_back(copy, uid)
        return
    pristine = root.with_name(f".{root.name}.hud-ray-pristine")
    os.rename(root, pristine)
    try:
        shutil.copytree(copy, root, symlinks=True)
        try:
            yield
        finally:
            _replace_contents(copy, root)
            shutil.rmtree(root, ignore_errors=True)
    finally:
        os.rename(pristine, root)


def _give_back(copy: Path, uid: int) -> None:
    """Files template code created in the copy (as root) belong to the rollout's user."""
    for p in [copy, *copy.rglob("*")]:
        with contextlib.suppress(OSError):
            if p.lstat().st_uid == 0:
                os.lchown(p, uid, uid)


def _replace_contents(dest: Path, source: Path) -> None:
    for child in list(dest.iterdir()):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    shutil.copytree(source, dest, symlinks=True, dirs_exist_ok=True)

