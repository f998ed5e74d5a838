#!/usr/bin/env python3
"""A shim kept at this documented path: ``swiftformer-benchmark``
(swiftformer_tf/cli/benchmark.py)."""

import os
import sys

# a checkout used without `pip install -e .` still finds the package
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from swiftformer_tf.cli.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
