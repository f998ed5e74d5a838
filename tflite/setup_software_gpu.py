#!/usr/bin/env python3
"""Set up a software GPU (Mesa 25 lavapipe, a CPU Vulkan driver) so that LiteRT's GPU
accelerator runs on a machine with no GPU: for checking GPU delegation and numerics, never
latency. Idempotent; touches nothing outside the folder.

    python tflite/setup_software_gpu.py [--dir DIR]

The default folder is $SWIFTFORMER_SOFTWARE_GPU or ~/.cache/swiftformer_tf/software_gpu;
tools find it there (set SWIFTFORMER_SOFTWARE_GPU when you pass --dir elsewhere).
"""

import argparse
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _software_gpu_module():
    # Loaded by path: importing the swiftformer_tf package would start TensorFlow.
    path = os.path.join(ROOT, "swiftformer_tf", "lite", "software_gpu.py")
    spec = importlib.util.spec_from_file_location("software_gpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    software_gpu = _software_gpu_module()
    p = argparse.ArgumentParser(prog="setup_software_gpu.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=software_gpu.default_dir(), help="where to put it")
    args = p.parse_args(argv)
    try:
        folder = software_gpu.setup(args.dir)
    except (software_gpu.SoftwareGpuError, OSError) as err:
        print(f"setup_software_gpu.py: error: {err}", file=sys.stderr)
        return 2
    if os.path.abspath(folder) != os.path.abspath(software_gpu.default_dir()):
        print(f"note: set {software_gpu.ENV_DIR}={folder} so the tools find it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
