"""What a run ships to a cluster: the folder, excludes, the size limit, actor paths."""

from __future__ import annotations

import pytest

from hud_ray.engine.shipping import max_package_bytes, measure, plan_shipment
from hud_ray.errors import ConfigError


def _tree(tmp_path):
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "tasks.py").write_text("from myenv import env\n")
    (src / "myenv.py").write_text("env = None\n")
    (src / "data" / "rows.json").write_text("[]")
    (src / ".git").mkdir()
    (src / ".git" / "blob").write_bytes(b"x" * 5000)
    (src / "cache").mkdir()
    (src / "cache" / "big.bin").write_bytes(b"y" * 7000)
    return src


def test_not_shipped_without_address(tmp_path):
    src = _tree(tmp_path)
    assert plan_shipment(source=str(src / "tasks.py"), env_source=None, address=None) is None
    assert plan_shipment(source=str(src / "tasks.py"), env_source=None, address="auto",
                         ship=False) is None


def test_ships_the_tasks_folder_with_relative_actor_paths(tmp_path):
    src = _tree(tmp_path)
    ship = plan_shipment(source=str(src / "tasks.py"), env_source=None, address="auto",
                         excludes=["cache/"], out_dir=src / "runs" / "r1")
    assert ship is not None and ship.root == src.resolve()
    assert ship.runtime_env["working_dir"] == str(src.resolve())
    assert "cache/" in ship.runtime_env["excludes"] and "/runs/r1" in ship.excludes
    size, biggest = measure(ship.root, list(ship.excludes))
    assert size == ship.size == len("from myenv import env\n") + len("env = None\n") + 2
    assert ship.actor_sources({"e": str(src / "myenv.py")}) == {"e": "myenv.py"}
    with pytest.raises(ConfigError, match="outside the shipped directory"):
        ship.actor_sources({"e": str(tmp_path / "elsewhere.py")})


def test_env_outside_working_dir_is_a_one_line_error(tmp_path):
    src = _tree(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "env.py").write_text("")
    with pytest.raises(ConfigError, match="outside --working-dir") as info:
        plan_shipment(source=str(src / "tasks.py"), env_source=str(other / "env.py"),
                      address="auto", working_dir=str(src))
    assert "\n" not in str(info.value)
    # Without --working-dir the common folder of both is shipped.
    ship = plan_shipment(source=str(src / "tasks.py"), env_source=str(other / "env.py"),
                         address="auto", excludes=["cache/"])
    assert ship is not None and ship.root == tmp_path.resolve()


def test_over_rays_size_limit_is_a_one_line_error_naming_the_culprit(tmp_path):
    src = _tree(tmp_path)
    with open(src / "data" / "huge.bin", "wb") as f:  # sparse: no disk used
        f.truncate(max_package_bytes() + 1)
    with pytest.raises(ConfigError) as info:
        plan_shipment(source=str(src / "tasks.py"), env_source=None, address="auto")
    msg = str(info.value)
    assert "\n" not in msg and "over Ray's" in msg and "data (" in msg and "--exclude" in msg
    # Excluding it makes the folder shippable.
    ship = plan_shipment(source=str(src / "tasks.py"), env_source=None, address="auto",
                         excludes=["*.bin"])
    assert ship is not None and ship.size < 1000


def test_working_dir_must_exist(tmp_path):
    src = _tree(tmp_path)
    with pytest.raises(ConfigError, match="not a directory"):
        plan_shipment(source=str(src / "tasks.py"), env_source=None, address="auto",
                      working_dir=str(tmp_path / "missing"))
