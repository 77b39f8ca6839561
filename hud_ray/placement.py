"""Ray resource requests of harness and sandbox actors: checked, merged, mapped.

A *request* is a flat mapping of resource name to amount, the same shape everywhere
(``Environment(placement=...)``, the run options ``sandbox_resources`` and
``harness_resources``)::

    {"CPU": 0.5, "memory": 2 * 1024**3, "sandbox": 1}

``CPU`` and ``GPU`` (or ``num_cpus``/``num_gpus``) become Ray's ``num_cpus`` and
``num_gpus``, ``memory`` (bytes) Ray's ``memory``, every other name a custom resource
(``resources={...}``) that a node offers with ``ray start --resources``.

Precedence for a sandbox actor: the run's ``sandbox_resources`` win key by key over the
environment's ``placement``; keys the run does not name keep the environment's value;
an amount of 0 removes the key (a run can drop an environment's custom resource on a
cluster that has no such nodes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hud_ray.errors import ConfigError

_ALIASES = {"CPU": "CPU", "num_cpus": "CPU", "GPU": "GPU", "num_gpus": "GPU",
            "memory": "memory"}
_RAY_KEYS = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory"}


def check_request(request: Mapping[str, Any] | None, *, what: str) -> dict[str, float]:
    """``request`` validated and with canonical keys (``num_cpus`` -> ``CPU``).

    Raises :class:`ConfigError` naming ``what`` (e.g. ``"sandbox_resources"``) for a
    value that is not a non-negative finite number, a fractional custom amount above 1
    (Ray allows fractions only up to 1) or a key given twice under two spellings.
    """
    if request is None:
        return {}
    if not isinstance(request, Mapping):
        raise ConfigError(f"{what}: expected a mapping of resource name to amount, e.g. "
                          f"{{'CPU': 0.5, 'sandbox': 1}}; got {type(request).__name__}")
    out: dict[str, float] = {}
    for key, value in request.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{what}: resource names are non-empty strings (got {key!r})")
        name = _ALIASES.get(key, key)
        if name in out:
            raise ConfigError(f"{what}: {name} given twice ({key!r})")
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or value < 0:
            raise ConfigError(f"{what}: {key} must be a number >= 0 (got {value!r})")
        if name == "memory" and value != int(value):
            raise ConfigError(f"{what}: memory is in bytes, a whole number (got {value!r})")
        if name != "memory" and value > 1 and value != int(value):
            raise ConfigError(f"{what}: {key}={value!r}: amounts above 1 must be whole "
                              "numbers (Ray's rule)")
        out[name] = float(value)
    return out


def merge(env: Mapping[str, float] | None, run: Mapping[str, float] | None) -> dict[str, float]:
    """The request of a sandbox actor: the run's keys over the environment's, 0 drops."""
    merged = {**(env or {}), **(run or {})}
    return {k: v for k, v in merged.items() if v > 0}


def ray_options(request: Mapping[str, float] | None) -> dict[str, Any]:
    """``request`` as keyword options of ``ActorClass.options(...)``."""
    options: dict[str, Any] = {}
    custom: dict[str, float] = {}
    for key, value in (request or {}).items():
        if key in _RAY_KEYS:
            options[_RAY_KEYS[key]] = int(value) if key == "memory" else value
        else:
            custom[key] = value
    if custom:
        options["resources"] = custom
    return options


def describe(request: Mapping[str, float]) -> str:
    """One line naming the request and what the live nodes lack (needs a Ray connection)."""
    shown = ", ".join(f"{k}={v:g}" for k, v in sorted(request.items())) or "nothing"
    try:
        import ray

        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    except Exception:
        return f"requested {shown}"
    missing = [k for k, v in request.items()
               if not any(res.get(k, 0) >= v for res in nodes)]
    if missing:
        return (f"requested {shown}; no live node offers "
                + ", ".join(f"{k}>={request[k]:g}" for k in sorted(missing)))
    if not any(all(res.get(k, 0) >= v for k, v in request.items()) for res in nodes):
        return f"requested {shown}; no live node offers all of it at once"
    return f"requested {shown}; the nodes that fit are busy"
