"""Private on-disk state of ``hud-ray serve`` / ``hud-ray task``.

Everything lives in one directory (``$HUD_RAY_STATE_DIR``, default ``~/.hud-ray``) kept at
mode 0700 and owned by the caller; files are 0600, written to a temporary name with
``O_NOFOLLOW | O_EXCL`` and renamed into place (so a symlink planted at a state path is
replaced, never written through), and read with ``O_NOFOLLOW``.

    control-PORT.token      the secret of the server on PORT (written by ``serve``)
    task-session.json       {"HOST:PORT": session id} of the task last started there
    keys/SESSION/NAME       a parked session's ssh private key, and NAME.known_hosts
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import stat
from pathlib import Path

from hud_ray.errors import ConfigError
from hud_ray.settings import Settings

_SESSION_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")


def state_dir() -> Path:
    return Settings.from_env().state_dir


def private_dir(path: Path) -> Path:
    """Create ``path`` (0700) or check an existing one is ours and not a symlink; fix its mode."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise ConfigError(f"{path} is a symlink; point HUD_RAY_STATE_DIR at a real directory")
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{path} is not a directory")
    if st.st_uid != os.geteuid():
        raise ConfigError(f"{path} belongs to uid {st.st_uid}, not to you (uid {os.geteuid()})")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Atomically replace ``path`` with a 0600 file holding ``text``; never follows symlinks."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "w") as f:
            fd = -1
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_private(path: Path) -> str | None:
    """The text of ``path``, or None when it is missing or a symlink."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise
    with os.fdopen(fd) as f:
        return f.read()


def check_session_id(session: str) -> str:
    if not _SESSION_RE.fullmatch(session):
        raise ConfigError("malformed session id (expected 16-64 characters of [A-Za-z0-9_-])")
    return session


# ---- the control token -------------------------------------------------------------------
def token_path(port: int) -> Path:
    return state_dir() / f"control-{port}.token"


def save_token(port: int, token: str) -> Path:
    private_dir(state_dir())
    path = token_path(port)
    write_private(path, token + "\n")
    return path


def remove_token(port: int, token: str) -> None:
    """Remove the token file of ``port`` if it still holds ``token``."""
    path = token_path(port)
    with contextlib.suppress(OSError):
        if (read_private(path) or "").strip() == token:
            path.unlink()


def load_token(port: int) -> str:
    path = token_path(port)
    try:
        private_dir(state_dir())
        text = read_private(path)
    except (PermissionError, ConfigError) as exc:
        raise ConfigError(f"cannot read the control token {path}: {exc}; pass --token or set "
                          "HUD_RAY_CONTROL_TOKEN") from None
    if not text or not text.strip():
        raise ConfigError(f"no control token at {path}: run this as the user who started "
                          "`hud-ray serve`, or pass --token / set HUD_RAY_CONTROL_TOKEN")
    return text.strip()


# ---- parked sessions and their key files ---------------------------------------------------
def _sessions_path() -> Path:
    return state_dir() / "task-session.json"


def saved_sessions() -> dict[str, str]:
    try:
        data = json.loads(read_private(_sessions_path()) or "{}")
    except (ValueError, OSError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items()
            if isinstance(k, str) and isinstance(v, str) and _SESSION_RE.fullmatch(v)}


def save_session(address: str, session: str) -> None:
    private_dir(state_dir())
    sessions = saved_sessions()
    sessions[address] = check_session_id(session)
    write_private(_sessions_path(), json.dumps(sessions, indent=1) + "\n")


def forget_session(session: str) -> None:
    """Drop ``session`` from the saved sessions and delete its key files."""
    sessions = saved_sessions()
    kept = {k: v for k, v in sessions.items() if v != session}
    if kept != sessions:
        write_private(_sessions_path(), json.dumps(kept, indent=1) + "\n")
    remove_keys(session)


def keys_dir(session: str) -> Path:
    return state_dir() / "keys" / check_session_id(session)


def remove_keys(session: str) -> None:
    if _SESSION_RE.fullmatch(session):
        shutil.rmtree(state_dir() / "keys" / session, ignore_errors=True)


def sweep_keys() -> None:
    """Delete the key files of every session that is no longer saved (ended elsewhere)."""
    root = state_dir() / "keys"
    if not root.is_dir() or root.is_symlink():
        return
    live = set(saved_sessions().values())
    for entry in root.iterdir():
        if entry.name not in live:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def write_key_files(session: str, name: str, private_key: str, known_hosts: str) -> tuple[Path,
                                                                                           Path]:
    """Write a session's ssh key and known_hosts (0600, in 0700 dirs); return their paths."""
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(f"capability name {name!r} is not usable as a file name")
    private_dir(state_dir())
    private_dir(state_dir() / "keys")
    directory = private_dir(keys_dir(session))
    key, known = directory / name, directory / f"{name}.known_hosts"
    write_private(key, private_key.rstrip("\n") + "\n")
    write_private(known, known_hosts)
    return key, known
