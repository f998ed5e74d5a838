#!/usr/bin/env python3
"""A shim kept at this documented path: ``swiftformer-compile-npu``
(swiftformer_tf/cli/compile_npu.py)."""

import os
import sys

# a checkout used without `pip install -e .` still finds the package
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from swiftformer_tf.cli.compile_npu import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
