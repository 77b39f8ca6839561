"""cluster.yaml is a valid Ray cluster launcher config; Dockerfile.hud is consistent."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cluster_config() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_validates_against_rays_schema(cluster_config):
    import jsonschema
    import ray
    from ray.autoscaler._private.util import prepare_config, validate_config

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json")
                        .read_text())
    jsonschema.validate(cluster_config, schema)
    validate_config(prepare_config(copy.deepcopy(cluster_config)))  # with defaults filled
    types = cluster_config["available_node_types"]
    assert types["harness"]["resources"]["harness"] > 0
    assert types["sandbox"]["resources"]["sandbox"] > 0
    assert cluster_config["head_node_type"] in types
    assert any("hud_ray" in c or "hud-ray" in c for c in cluster_config["setup_commands"])


def test_schema_check_catches_a_broken_config(cluster_config):
    import jsonschema
    import ray

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json")
                        .read_text())
    bad = copy.deepcopy(cluster_config)
    bad["available_node_types"]["sandbox"]["resources"] = {"sandbox": "many"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_dockerfile_installs_what_the_package_needs():
    text = (ROOT / "Dockerfile.hud").read_text()
    assert "ARG BASE=python:3.12-slim" in text and "FROM ${BASE}" in text
    for path in ("hud_ray", "actors", "pyproject.toml"):
        assert f"COPY {path}" in text
    assert '".[ssh' in text and "bubblewrap" in text  # built for real: tests/test_image.py
