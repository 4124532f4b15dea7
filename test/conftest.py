"""Test-wide settings: an isolated, loopback-only DDS domain for every test session."""

import os
import random
from pathlib import Path

# A random domain per run keeps parallel CI jobs and a developer's running nodes apart; set
# before rclpy initialises, inherited by the node processes the tests start.
os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 200))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)
# Whole ~1 MB best-effort frames need the shared-memory profile (scripts/env.sh sets the same).
_PROFILE = str(Path(__file__).resolve().parents[1] / "config" / "dds" / "fastdds_loopback.xml")
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", _PROFILE)
os.environ.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
