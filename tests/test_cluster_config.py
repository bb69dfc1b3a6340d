"""launch/cluster.yaml is a cluster config Ray accepts: it passes the schema inside Ray."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

CONFIG = Path(__file__).resolve().parents[1] / "launch" / "cluster.yaml"


def _validate(config: dict) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))


def test_cluster_config_passes_rays_schema():
    config = yaml.safe_load(CONFIG.read_text())
    _validate(config)
    assert config["head_node_type"] in config["available_node_types"]
    setup = " ".join(config["setup_commands"])
    assert "torch==2.13.0" in setup and "pip install --quiet -e /home/ubuntu/recsys-tune" in setup


def test_the_schema_check_can_fail():
    config = yaml.safe_load(CONFIG.read_text())
    config["available_node_types"]["gpu_worker"]["max_wokers"] = 4  # a typo Ray must reject
    with pytest.raises(jsonschema.ValidationError, match="max_wokers"):
        _validate(config)
