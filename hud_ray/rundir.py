"""Where a run directory lives: a local path, or any URI ``pyarrow.fs`` understands.

``file:///...`` URIs and plain paths are local: writes go to a hidden temp name, then an
atomic rename. ``s3://``, ``gs://`` and ``abfs://`` are object stores: every object is
written in one PUT from a finished in-memory buffer, so it is whole the moment it is
visible, and directories are just key prefixes. Other filesystems (``hdfs://``) get a temp
name and a rename, like local disks. Storage errors become one-line :class:`RecordError`s.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.fs as pafs

from hud_ray.errors import RecordError

#: Object stores: no renames, no directories; a PUT is atomic.
OBJECT_STORES = ("s3", "gcs", "abfs")
#: Client limits so a dead endpoint is an error within seconds, not a hang.
CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 60.0
GCS_RETRY_LIMIT_S = 15.0

Location = str | os.PathLike[str]


def is_uri(location: object) -> bool:
    """True for ``scheme://...`` strings (a plain path never contains ``://``)."""
    return isinstance(location, str) and "://" in location


#: S3 error codes that mean the credentials are missing or wrong (a request without
#: credentials fails as INTERNAL_FAILURE, with no message of its own).
AUTH_ERRORS = ("ACCESS_DENIED", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH",
               "INTERNAL_FAILURE", "EXPIRED_TOKEN", "UNRECOGNIZED_CLIENT", "MISSING_AUTHENTICATION",
               "HTTP status 403")
CREDENTIALS_HINT = ("check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                    "AWS_PROFILE, ~/.aws/credentials, or the instance role)")


def one_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of a storage error (S3 auth failures get a credentials hint)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = (lines[0] if lines else type(exc).__name__)[:limit]
    if "AWS Error" in text and any(code in text for code in AUTH_ERRORS):
        text = f"{text.rstrip(': ')}; {CREDENTIALS_HINT}"
    return text


@contextlib.contextmanager
def storage_errors(what: str, code: str | None = None) -> Iterator[None]:
    """Turn a storage failure (``OSError``, Arrow error) into one-line RecordError."""
    try:
        yield
    except RecordError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise RecordError(f"{what}: {one_line(exc)}", code=code) from exc


@dataclass(frozen=True, eq=False)
class RunDir:
    """A run directory, resolved once: ``fs`` is None for local ones (``path`` is then an
    OS path), else the pyarrow filesystem and the path inside it."""

    location: str  # as given (path or URI): pass it back to readers
    path: str
    fs: pafs.FileSystem | None = None

    @classmethod
    def resolve(cls, location: Location | RunDir) -> RunDir:
        """A path or URI as a :class:`RunDir` (a bad scheme, or a client that cannot be
        built, is a one-line RecordError)."""
        if isinstance(location, RunDir):
            return location
        if not is_uri(location):
            path = str(Path(location))
            return cls(path, path)
        uri = str(location)
        shown = redact(uri)
        if uri.startswith("file:"):
            with storage_errors(f"{shown}: not a usable file:// URI"):
                fs, path = pafs.FileSystem.from_uri(uri)
            return cls(uri, path)
        with storage_errors(f"{shown}: cannot open this location"):
            fs, path = pafs.FileSystem.from_uri(uri)
            fs = _with_timeouts(fs)
        return cls(uri, path.rstrip("/"), fs)

    # ---- naming -----------------------------------------------------------------------
    @property
    def local(self) -> bool:
        return self.fs is None

    @property
    def object_store(self) -> bool:
        return self.fs is not None and self.fs.type_name in OBJECT_STORES

    @property
    def local_path(self) -> Path:
        if self.fs is not None:
            raise RecordError(f"{self}: not a local directory")
        return Path(self.path)

    @property
    def public(self) -> Path | str:
        """How the run is handed back to users: a Path when local, else its URI."""
        return Path(self.path) if self.fs is None else self.location

    def __str__(self) -> str:
        return redact(self.location) if self.fs is not None else self.location

    def key(self, name: str) -> str:
        """The path of ``name`` inside this directory (for the filesystem)."""
        return str(Path(self.path) / name) if self.fs is None else f"{self.path}/{name}"

    def where(self, name: str) -> str:
        """``name`` inside this directory, for messages."""
        return f"{str(self).split('?')[0].rstrip('/')}/{name}"

    def child(self, rel: str) -> RunDir:
        """A directory below this one (``rel`` uses ``/``)."""
        if self.fs is None:
            return RunDir(str(Path(self.location) / rel), str(Path(self.path) / rel))
        return RunDir(join_uri(self.location, rel), f"{self.path}/{rel}", self.fs)

    def same_as(self, other: Location | RunDir) -> bool:
        o = RunDir.resolve(other)
        if self.fs is None or o.fs is None:
            return self.fs is None and o.fs is None and \
                Path(self.path).resolve() == Path(o.path).resolve()
        return self.fs.equals(o.fs) and self.path == o.path

    # ---- queries ----------------------------------------------------------------------
    def _info(self, path: str) -> pafs.FileInfo:
        assert self.fs is not None
        with storage_errors(f"{self}: cannot reach the run directory"):
            return self.fs.get_file_info(path)

    def is_dir(self) -> bool:
        """A directory (on an object store: a prefix with objects under it)."""
        if self.fs is None:
            return Path(self.path).is_dir()
        return self._info(self.path).type == pafs.FileType.Directory

    def is_file_here(self) -> bool:
        """Whether the location itself is a file (so it cannot be a run directory)."""
        if self.fs is None:
            return Path(self.path).exists() and not Path(self.path).is_dir()
        return self._info(self.path).type == pafs.FileType.File

    def names(self) -> list[str]:
        """What is directly inside (empty when the directory does not exist)."""
        if self.fs is None:
            path = Path(self.path)
            return sorted(p.name for p in path.iterdir()) if path.is_dir() else []
        with storage_errors(f"{self}: cannot list the run directory"):
            infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        return sorted(i.base_name for i in infos)

    def glob(self, pattern: str) -> list[str]:
        """Sorted names of the files directly inside matching ``pattern``."""
        if self.fs is None:
            path = Path(self.path)
            return sorted(p.name for p in path.glob(pattern)) if path.is_dir() else []
        return [n for n in self.names() if fnmatch.fnmatchcase(n, pattern)]

    def subdirs(self) -> list[RunDir]:
        """Every directory below this one, at any depth (sorted)."""
        if self.fs is None:
            return [RunDir(str(p), str(p)) for p in sorted(Path(self.path).rglob("*"))
                    if p.is_dir()]
        with storage_errors(f"{self}: cannot list"):
            infos = self.fs.get_file_info(
                pafs.FileSelector(self.path, allow_not_found=True, recursive=True))
        every: set[str] = set()
        for info in infos:
            bits = info.path[len(self.path) + 1:].split("/")
            if info.type != pafs.FileType.Directory:
                bits = bits[:-1]  # a file: its parents are directories
            every |= {"/".join(bits[:n]) for n in range(1, len(bits) + 1)}
        return [self.child(rel) for rel in sorted(every)]

    def is_file(self, name: str) -> bool:
        if self.fs is None:
            return (Path(self.path) / name).is_file()
        return self._info(self.key(name)).type == pafs.FileType.File

    # ---- reading ----------------------------------------------------------------------
    def read_bytes(self, name: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""
        if self.fs is None:
            try:
                return (Path(self.path) / name).read_bytes()
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise RecordError(f"{self.where(name)}: unreadable: {exc}") from None
        with storage_errors(f"{self.where(name)}: unreadable"):
            try:
                with self.fs.open_input_stream(self.key(name)) as src:
                    return bytes(src.read())
            except FileNotFoundError:
                return None

    def read_table(self, name: str) -> pa.Table:
        """An Arrow IPC file (a part) as a table."""
        try:
            if self.fs is None:
                with pa.memory_map(self.key(name)) as source:
                    return pa.ipc.open_file(source).read_all()
            with self.fs.open_input_file(self.key(name)) as source:
                return pa.ipc.open_file(source).read_all()
        except (pa.ArrowInvalid, OSError) as exc:
            raise RecordError(f"{self.where(name)}: unreadable Arrow part: "
                              f"{one_line(exc)}") from None

    # ---- writing ----------------------------------------------------------------------
    def mkdir(self) -> None:
        """Create the directory (object stores have none to create)."""
        if self.fs is None:
            Path(self.path).mkdir(parents=True, exist_ok=True)
        elif not self.object_store:
            with storage_errors(f"{self}: cannot create the run directory"):
                self.fs.create_dir(self.path, recursive=True)

    def write_bytes(self, name: str, data: bytes | pa.Buffer) -> int:
        """Write a whole file; it is never visible half-written. Returns its size.

        Local and other filesystems: a hidden temp name, then a rename. Object stores:
        one upload of the finished buffer (an object appears only once complete)."""
        final = self.key(name)
        if self.fs is not None and self.object_store:
            stream = self.fs.open_output_stream(final)
            try:
                stream.write(data)
            finally:
                stream.close()
            return len(data)
        tmp = self.key(f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            if self.fs is None:
                with open(tmp, "wb") as fh:
                    fh.write(memoryview(data))
                os.replace(tmp, final)
            else:
                with self.fs.open_output_stream(tmp) as out:
                    out.write(data)
                self.fs.move(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError, pa.ArrowException):
                self.delete(tmp.rsplit("/", 1)[-1])
            raise
        return len(data)

    def delete(self, name: str) -> None:
        """Remove a file if it is there."""
        if self.fs is None:
            Path(self.key(name)).unlink(missing_ok=True)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.key(name))

    def remove_if_empty(self) -> None:
        """Remove the directory if nothing is in it (object stores: nothing to do)."""
        if self.fs is None:
            with contextlib.suppress(OSError):
                Path(self.path).rmdir()
        elif not self.object_store:
            with contextlib.suppress(OSError, pa.ArrowException):
                if not self.names():
                    self.fs.delete_dir(self.path)

    def probe(self) -> None:
        """Check for real that this location takes files: write and delete a probe."""
        name = f".hud-ray-probe-{uuid.uuid4().hex[:8]}"
        with storage_errors(f"{self}: not writable"):
            self.write_bytes(name, b"")
            self.delete(name)


def resolve(location: Location | RunDir) -> RunDir:
    """Shorthand for :meth:`RunDir.resolve`."""
    return RunDir.resolve(location)


def join_uri(location: str, rel: str) -> str:
    """``location`` (a path or URI) with ``rel`` appended to its path (a URI keeps its
    ``?query``)."""
    if not is_uri(location):
        return str(Path(location) / rel)
    parts = urlsplit(location)
    path = f"{parts.path.rstrip('/')}/{rel}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def redact(uri: str) -> str:
    """``uri`` without a ``user:secret@`` part (safe to print and store)."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[1], parts.path, parts.query,
                       parts.fragment))


def _with_timeouts(fs: pafs.FileSystem) -> pafs.FileSystem:
    """The same client with bounded connects, requests and retries (unless set)."""
    if isinstance(fs, pafs.S3FileSystem):
        kwargs: dict[str, Any] = dict(fs.__reduce__()[1][0])
        if kwargs.get("connect_timeout", -1) < 0:
            kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
        if kwargs.get("request_timeout", -1) < 0:
            kwargs["request_timeout"] = REQUEST_TIMEOUT_S
        kwargs["allow_delayed_open"] = True  # a small object is then one PutObject on close
        return pafs.S3FileSystem._reconstruct(kwargs)
    gcs = getattr(pafs, "GcsFileSystem", None)
    if gcs is not None and isinstance(fs, gcs):
        kwargs = dict(fs.__reduce__()[1][0])
        if kwargs.get("retry_time_limit") is None:
            kwargs["retry_time_limit"] = timedelta(seconds=GCS_RETRY_LIMIT_S)
        return gcs._reconstruct(kwargs)
    return fs
