"""Test-wide settings (an isolated, loopback-only DDS domain per session) and shared fixtures."""

import os
import random
from pathlib import Path

import pytest

# A random domain per run keeps parallel CI jobs and a developer's running nodes apart; set
# before rclpy initialises, inherited by the node processes the tests start.
os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 200))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)
# Whole ~1 MB best-effort frames need the shared-memory profile (scripts/env.sh sets the same).
_PROFILE = str(Path(__file__).resolve().parents[1] / "config" / "dds" / "fastdds_loopback.xml")
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", _PROFILE)
os.environ.pop("FASTDDS_BUILTIN_TRANSPORTS", None)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny generated detector (test/onnx_models.py), written once per session."""
    from onnx_models import tiny_detector

    return tiny_detector(tmp_path_factory.mktemp("tiny") / "tiny.onnx")
