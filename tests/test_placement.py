"""Resource requests: checking, precedence (run over environment) and Ray's options.

Where actors really land is proven on a multi-node cluster in test_cluster_placement.py.
"""

from __future__ import annotations

import pytest

from hud_ray import Environment, EvalConfig
from hud_ray.errors import ConfigError
from hud_ray.placement import check_request, merge, ray_options


def test_request_keys_map_to_ray_options():
    req = check_request({"num_cpus": 0.5, "GPU": 1, "memory": 2**30, "sandbox": 1,
                         "browser": 0.25}, what="x")
    assert req == {"CPU": 0.5, "GPU": 1.0, "memory": float(2**30), "sandbox": 1.0,
                   "browser": 0.25}
    opts = ray_options(req)
    assert opts == {"num_cpus": 0.5, "num_gpus": 1.0, "memory": 2**30,
                    "resources": {"sandbox": 1.0, "browser": 0.25}}
    assert isinstance(opts["memory"], int)
    assert ray_options({}) == {}


@pytest.mark.parametrize(("request_", "message"), [
    ({"CPU": -1}, "CPU must be a number >= 0"),
    ({"sandbox": "1"}, "sandbox must be a number >= 0"),
    ({"sandbox": True}, "sandbox must be a number >= 0"),
    ({"sandbox": float("inf")}, "sandbox must be a number >= 0"),
    ({"robot": 1.5}, "amounts above 1 must be whole numbers"),
    ({"memory": 1.5}, "memory is in bytes"),
    ({"CPU": 1, "num_cpus": 1}, "CPU given twice"),
    ([("CPU", 1)], "expected a mapping"),
])
def test_bad_requests_are_one_line_config_errors(request_, message):
    with pytest.raises(ConfigError, match=message):
        check_request(request_, what="sandbox_resources")


def test_run_options_win_key_by_key_and_zero_drops():
    env = {"CPU": 0.5, "memory": 1e9, "sandbox": 1.0}
    assert merge(env, {}) == env
    assert merge(env, {"CPU": 1.0, "robot": 1.0}) == {"CPU": 1.0, "memory": 1e9,
                                                      "sandbox": 1.0, "robot": 1.0}
    assert merge(env, {"sandbox": 0.0}) == {"CPU": 0.5, "memory": 1e9}
    assert merge(None, None) == {}


def test_environment_placement_and_the_resources_keyword():
    env = Environment("placed-env", placement={"num_cpus": 0.5, "sandbox": 1})
    assert env.placement == {"CPU": 0.5, "sandbox": 1.0}
    assert not env.colocatable  # a placed env always gets sandbox actors of its own
    assert Environment("unplaced-env").colocatable
    with pytest.raises(ConfigError, match=r"resources=\.\.\.\): not an option; .*"
                       r"use placement=\{"):
        Environment("bad-env", resources={"CPU": 1})
    with pytest.raises(ConfigError, match=r"Environment\('bad-env', placement=\.\.\.\): "
                       "sandbox must be a number"):
        Environment("bad-env", placement={"sandbox": -1})


def test_eval_config_checks_resources():
    cfg = EvalConfig(source="x.py", sandbox_resources={"num_cpus": 1, "sandbox": 1},
                     harness_resources={"harness": 1})
    assert cfg.sandbox_resources == {"CPU": 1.0, "sandbox": 1.0}
    assert cfg.placement_timeout == 300
    with pytest.raises(ValueError, match=r"harness_resources: robot=2\.5"):
        EvalConfig(source="x.py", harness_resources={"robot": 2.5})
