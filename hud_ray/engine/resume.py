"""``resume=DIR``: rebuild a run's config from its manifest, checking what is given again."""

from __future__ import annotations

import os
from typing import Any

from pydantic import ValidationError

from hud_ray.engine.config import RESUME_FIELDS, EvalConfig
from hud_ray.errors import ConfigError, RecordError
from hud_ray.rundir import RunDir
from hud_ray.sink import read_manifest


def resume_config(directory: str | os.PathLike[str], **given: Any) -> EvalConfig:
    """The stored config of the run in ``directory``, with ``given`` options applied.

    Options that shape the rows (:data:`RESUME_FIELDS`) must equal the stored ones, or
    this raises a one-line :class:`ConfigError` naming each difference; the rest
    (concurrency, workers, address, timeouts, ...) override the stored values. The
    taskset itself is compared by digest when the run starts.
    """
    path = RunDir.resolve(directory)
    stored = read_manifest(path).get("config")
    if not isinstance(stored, dict) or "source" not in stored:
        raise RecordError(f"{path}: manifest has no stored config; resume with the full "
                          "command line instead")
    known = {k: v for k, v in stored.items() if k in EvalConfig.model_fields}
    known["resume"], known["out"] = path.location, None
    if given.get("out") is not None and not path.same_as(given["out"]):
        raise ConfigError(f"--out {given['out']} differs from --resume {path} (a resumed run "
                          "writes to its own directory)")
    given = {k: v for k, v in given.items() if k not in ("out", "resume")}
    try:
        base = EvalConfig.model_validate(known)
        merged = EvalConfig.model_validate({**known, **given})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: invalid resume options: {where}: {first['msg']}") from None
    diffs = [f"{k} (run has {getattr(base, k)!r}, given {getattr(merged, k)!r})"
             for k in RESUME_FIELDS if k in given and getattr(base, k) != getattr(merged, k)]
    if diffs:
        raise ConfigError(f"{path}: cannot resume with different settings: "
                          f"{'; '.join(diffs)}")
    return merged
