"""The Dockerfile fallback: materialise ``WORKDIR``, ``COPY``/``ADD`` and ``ENV`` without a builder.

No image is built: the sandbox keeps the host's read-only system directories, and
the files a Dockerfile copies in are laid out under a staging directory, one folder
per top-level path (``/app``, ``/opt``, ...), which each rollout gets a fresh copy of
at that absolute path. What cannot be reproduced this way is reported, never silently
rewritten: ``RUN`` steps are skipped (a finding), a copy into a system directory
(``/usr``, ``/etc``, ...) makes the task unpreparable (a problem).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

#: Paths the sandbox provides itself; a Dockerfile cannot put files there.
SYSTEM_ROOTS = ("usr", "etc", "bin", "sbin", "lib", "lib32", "lib64", "proc", "dev", "tmp",
                "run", "sys", "workspace")
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


@dataclass(frozen=True)
class CopyStep:
    """One file or directory to place: ``source`` on the host, ``dest`` inside."""

    source: Path
    dest: str
    extract: bool = False
    mode: int | None = None


@dataclass
class DockerPlan:
    """What a Dockerfile amounts to here: files, environment, workdir, and what was lost."""

    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    copies: list[CopyStep] = field(default_factory=list)
    workdirs: list[str] = field(default_factory=list)
    base_images: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def roots(self) -> list[str]:
        """The top-level directories the plan writes into (``/app``, ...)."""
        tops = {top_dir(p) for p in self.workdirs} | {top_dir(c.dest) for c in self.copies}
        return sorted(t for t in tops if t)


def top_dir(path: str) -> str:
    parts = PurePosixPath(path).parts
    return "/" + parts[1] if len(parts) > 1 else ""


def instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs: comments dropped, continuations joined."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.strip().partition(" ")
        out.append((keyword.upper(), rest.strip()))
        current = ""
    if current.strip():
        keyword, _, rest = current.strip().partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def _expand(text: str, variables: dict[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        default = match.group(2)
        value = variables.get(name, "")
        return value if value or default is None else default

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)",
                  sub, text)


def _words(args: str) -> list[str]:
    if args.startswith("["):
        try:
            value = json.loads(args)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
        except json.JSONDecodeError:
            pass
    return shlex.split(args)


def _pairs(args: str) -> dict[str, str]:
    """``K=V K2="v w"`` or the legacy ``K V`` form of ENV/ARG/LABEL."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        key, _, value = args.partition(" ")
        return {key.strip(): value.strip()}
    return dict(w.partition("=")[::2] for w in words)


def plan_dockerfile(context: Path, dockerfile: Path | None = None) -> DockerPlan:
    """Read ``context/Dockerfile`` into a :class:`DockerPlan` (nothing is written)."""
    path = dockerfile or context / "Dockerfile"
    plan = DockerPlan()
    variables: dict[str, str] = {}
    for keyword, args in instructions(path.read_text()):
        if keyword == "FROM":
            words = args.split()
            plan.base_images.append(words[0] if words else "")
        elif keyword == "ARG":
            for k, v in _pairs(args).items():
                variables.setdefault(k, _expand(v, variables))
        elif keyword == "ENV":
            for k, v in _pairs(args).items():
                variables[k] = plan.env[k] = _expand(v, variables)
        elif keyword == "WORKDIR":
            target = _expand(args.strip().strip('"'), variables)
            plan.workdir = os.path.normpath(os.path.join(plan.workdir, target))
            plan.workdirs.append(plan.workdir)
        elif keyword in ("COPY", "ADD"):
            _plan_copy(plan, context, keyword, _expand(args, variables))
        elif keyword == "RUN":
            plan.findings.append(f"RUN skipped (no image builder): {args[:200]}")
        elif keyword == "USER":
            plan.findings.append(f"USER {args} not applied: the sandbox has one user")
        elif keyword in ("CMD", "ENTRYPOINT"):
            plan.findings.append(f"{keyword} not run (Harbor does not run it either)")
    for root in plan.roots:
        if root.strip("/") in SYSTEM_ROOTS:
            plan.problems.append(f"the Dockerfile writes into {root}, a system directory the "
                                 "sandbox shares read-only with the host")
    return plan


def _plan_copy(plan: DockerPlan, context: Path, keyword: str, args: str) -> None:
    words = _words(args)
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    mode: int | None = None
    for flag in flags:
        name, _, value = flag[2:].partition("=")
        if name == "from":
            plan.problems.append(f"{keyword} {args[:120]}: copying from another stage or "
                                 "image needs an image builder")
            return
        if name == "chmod":
            try:
                mode = int(value, 8)
            except ValueError:
                plan.problems.append(f"{keyword} --chmod={value}: not an octal mode")
                return
        elif name == "chown":
            plan.findings.append(f"{keyword} --chown={value}: files belong to the sandbox user")
    if len(paths) < 2:
        plan.problems.append(f"{keyword} {args[:120]}: needs a source and a destination")
        return
    *sources, dest = paths
    if sources[0].startswith("<<"):
        plan.problems.append(f"{keyword} with a heredoc is not supported")
        return
    dest_abs = os.path.normpath(os.path.join(plan.workdir, dest))
    into_dir = dest.endswith("/") or len(sources) > 1
    root = context.resolve()
    for src in sources:
        if keyword == "ADD" and re.match(r"^[a-z]+://", src):
            plan.problems.append(f"ADD {src}: fetching URLs is not possible here")
            continue
        matches = sorted(root.glob(src.lstrip("/"))) if any(c in src for c in "*?[") \
            else [root / src.lstrip("/")]
        if not matches or not all(m.exists() for m in matches):
            plan.problems.append(f"{keyword} {src}: no such file in the build context")
            continue
        for match in matches:
            resolved = match.resolve()
            if resolved != root and root not in resolved.parents:
                plan.problems.append(f"{keyword} {src}: outside the build context")
                continue
            extract = keyword == "ADD" and match.is_file() and \
                match.name.endswith(_TAR_SUFFIXES)
            if match.is_dir() or extract:
                target = dest_abs
            elif into_dir or len(matches) > 1 or fnmatch.fnmatch(src, "*[*?]*"):
                target = os.path.join(dest_abs, match.name)
            else:
                target = dest_abs
            plan.copies.append(CopyStep(match, target, extract=extract, mode=mode))


def materialise(plan: DockerPlan, stage: Path) -> None:
    """Lay the plan's files out under ``stage`` (``stage/app/...`` for ``/app/...``)."""
    for workdir in plan.workdirs:
        (stage / workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for step in plan.copies:
        target = stage / step.dest.lstrip("/")
        if step.extract:
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(step.source) as tar:
                tar.extractall(target, filter="data")
        elif step.source.is_dir():
            shutil.copytree(step.source, target, symlinks=True, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(step.source, target)
        if step.mode is not None:
            paths = [target, *target.rglob("*")] if target.is_dir() else [target]
            for p in paths:
                if not p.is_symlink():
                    p.chmod(step.mode)
