"""Run HUD v6 files unchanged: ``from hud import ...`` without the ``hud`` package.

When hud-ray loads a tasks or environment file and the real ``hud`` package is not
installed, :func:`install_hud_shim` appends a finder to ``sys.meta_path`` that serves
``hud`` and ``hud.*`` from :mod:`hud_ray.compat.hud` (hud-ray's own classes under
HUD's names). It never shadows an installed ``hud``: it is not installed when
``importlib.util.find_spec("hud")`` finds one, and as the last finder it is asked
only after every real one failed. Set ``HUD_RAY_HUD_SHIM=0`` to turn it off.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any

SHIM_PACKAGE = "hud_ray.compat.hud"


class _HudShimFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``hud[.x.y]`` as the module ``hud_ray.compat.hud[.x.y]``."""

    def find_spec(self, fullname: str, path: Any = None,
                  target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "hud" and not fullname.startswith("hud."):
            return None
        real = SHIM_PACKAGE + fullname[3:]
        try:
            if importlib.util.find_spec(real) is None:
                return None
        except ModuleNotFoundError:
            return None
        is_pkg = importlib.util.find_spec(real).submodule_search_locations is not None  # type: ignore[union-attr]
        return importlib.machinery.ModuleSpec(fullname, self, is_package=is_pkg)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(SHIM_PACKAGE + spec.name[3:])

    def exec_module(self, module: ModuleType) -> None:
        """The aliased module ran when it was first imported under its own name."""


_FINDER = _HudShimFinder()


def shim_enabled() -> bool:
    from hud_ray.settings import Settings

    return bool(Settings.from_env().get("HUD_RAY_HUD_SHIM", True))


def install_hud_shim() -> bool:
    """Install the ``hud`` finder unless opted out or a real ``hud`` is importable.

    Returns whether the shim is active.
    """
    if _FINDER in sys.meta_path:
        return True
    if not shim_enabled():
        return False
    try:
        if importlib.util.find_spec("hud") is not None:
            return False
    except (ImportError, ValueError):
        return False
    sys.meta_path.append(_FINDER)
    return True


def uninstall_hud_shim() -> None:
    """Remove the finder and forget modules it served (tests use this)."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name in [n for n in sys.modules if n == "hud" or n.startswith("hud.")]:
        if getattr(sys.modules[name], "__name__", "").startswith(SHIM_PACKAGE):
            del sys.modules[name]


def unsupported(module: str, name: str) -> Exception:
    """The error for a HUD name hud-ray's shim does not provide.

    An :class:`ImportError` (so ``from hud import Job`` says why), except for dunder
    probes, which stay :class:`AttributeError` as the import machinery expects.
    """
    if name.startswith("__"):
        return AttributeError(f"module {module!r} has no attribute {name!r}")
    return ImportError(f"{module}.{name} is HUD SDK API that hud-ray's `hud` shim does not "
                       f"provide (install the real `hud` package to use it; see "
                       f"docs/HUD_COMPAT.md)")
