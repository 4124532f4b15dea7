"""``python -m edge_trt_ros.cli`` = ``edge-trt``."""

import sys

from edge_trt_ros.cli import main

sys.exit(main())
