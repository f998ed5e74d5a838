#!/usr/bin/env python3
"""Compile a converted .tflite model ahead of time for a phone's NPU with LiteRT's vendor
compiler plugins, and report how much of it each NPU takes (``swiftformer-export --npu`` does the
same right after converting).

    swiftformer-compile-npu swiftformer_xs_int8.tflite --npu qualcomm:SM8650
    swiftformer-compile-npu swiftformer_xs_fp32.tflite --npu intel_openvino:LNL \\
        --npu-option intel_openvino_graph_backends=cpu
    swiftformer-compile-npu --list-npu

Each compiled model is written beside the input as ``<stem>_<vendor>_<SOC>.tflite``.
"""

from __future__ import annotations

import argparse
import os
import sys


from swiftformer_tf.io_utils import write_json
from swiftformer_tf.runtime import npu


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="swiftformer-compile-npu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="a .tflite model")
    npu.add_arguments(p)
    p.add_argument("--report", help="also write the results as JSON here")
    args = p.parse_args(argv)
    if not args.list_npu and (not args.model or not args.npu):
        p.error("give a .tflite model and at least one --npu VENDOR:SOC (or --list-npu)")
    return args


def compile_models(args):
    if args.list_npu:
        print(npu.format_targets())
        return 0
    targets = npu.targets_from_args(args)
    if not os.path.isfile(args.model):
        raise FileNotFoundError(2, "no such file", args.model)
    results = npu.compile_targets(args.model, targets, args.npu_option)
    for compiled in results:
        print(f"NPU: {compiled.summary()}")
    if args.report:
        write_json(args.report, [c.to_dict() for c in results])
    return 0


def main(argv=None):
    from swiftformer_tf.io_utils import run_command
    return run_command("swiftformer-compile-npu", lambda a: compile_models(parse_args(a)), argv)


if __name__ == "__main__":
    sys.exit(main())
