"""The layering holds: hud_ray reaches the Ray placement layer (actors/) through one seam."""

from __future__ import annotations

import ast
from pathlib import Path

SEAM = Path("hud_ray/engine/_placement.py")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_placement_seam_imports_actors(root):
    offenders = []
    for path in sorted((root / "hud_ray").rglob("*.py")):
        rel = path.relative_to(root)
        if rel == SEAM:
            continue
        if any(m == "actors" or m.startswith("actors.") for m in imported_modules(path)):
            offenders.append(str(rel))
    assert offenders == []
    assert any(m.startswith("actors") for m in imported_modules(root / SEAM))


def test_one_canonical_args_json(root):
    # rows, slugs and failure rows share hud_ray.task.canonical_args_json: the task table
    # stores each row's args with it, and workers and the driver read that column
    assert "canonical_args_json(" in (root / "hud_ray/tasktable.py").read_text()
    for rel in ("hud_ray/engine/worker.py", "hud_ray/engine/driver.py"):
        text = (root / rel).read_text()
        assert ".args_json(" in text and "sort_keys=True" not in text, rel
