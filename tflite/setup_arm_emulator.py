#!/usr/bin/env python3
"""Set up an emulated phone CPU: LiteRT's aarch64 runtime under QEMU user mode, with one root
per emulated CPU (cortex-a53, cortex-a76, i8mm, sme) and an instruction-count plugin, so a
.tflite file runs through XNNPACK's ARM kernels on this x86-64 machine. For answers and
instruction counts, never latency. Idempotent; Debian and PyPI only; touches nothing outside
the folder.

    python tflite/setup_arm_emulator.py [--dir DIR]

The default folder is $SWIFTFORMER_ARM_EMULATOR or ~/.cache/swiftformer_tf/arm_emulator;
tools find it there (set SWIFTFORMER_ARM_EMULATOR when you pass --dir elsewhere).
"""

import argparse
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _arm_emulator_module():
    # Loaded by path: importing the swiftformer_tf package would start TensorFlow.
    path = os.path.join(ROOT, "swiftformer_tf", "lite", "arm_emulator.py")
    spec = importlib.util.spec_from_file_location("arm_emulator", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    arm_emulator = _arm_emulator_module()
    p = argparse.ArgumentParser(prog="setup_arm_emulator.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=arm_emulator.default_dir(), help="where to put it")
    args = p.parse_args(argv)
    try:
        folder = arm_emulator.setup(args.dir)
    except (arm_emulator.ArmEmulatorError, OSError) as err:
        print(f"setup_arm_emulator.py: error: {err}", file=sys.stderr)
        return 2
    if os.path.abspath(folder) != os.path.abspath(arm_emulator.default_dir()):
        print(f"note: set {arm_emulator.ENV_DIR}={folder} so the tools find it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
