#!/usr/bin/env python3
"""A shim kept at this documented path: ``swiftformer-setup-arm``
(swiftformer_tf/cli/setup_arm_emulator.py)."""

import os
import sys

# a checkout used without `pip install -e .` still finds the package
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from swiftformer_tf.cli.setup_arm_emulator import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
