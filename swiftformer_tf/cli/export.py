#!/usr/bin/env python3
"""Convert SwiftFormer to TFLite (optionally quantized), check it against the Keras model
on held-out images and report size, ops, XNNPACK partitions, fidelity and host latency.

    swiftformer-export --variant L1 --weights imagenet --quantize int8
    swiftformer-export --weights SwiftFormer_XS_ckpt.pth --quantize int8
    swiftformer-export --weights imagenet --quantize int8 --npu qualcomm:SM8650
    swiftformer-export --weights imagenet --quantize int8 --check-arm cortex-a76,i8mm
"""

from __future__ import annotations

import argparse
import dataclasses
import sys


from swiftformer_tf.export.converter import QUANTIZE_MODES
from swiftformer_tf.io_utils import number, positive_int
from swiftformer_tf.runtime import npu
from swiftformer_tf.variants import VARIANTS

RANDOM_WEIGHTS_WARNING = """\
##########################################################################################
# WARNING: no --weights given: converting a RANDOMLY INITIALISED SwiftFormer-{variant}.
# Its predictions are meaningless; sizes, ops and latency are still representative.
# For the official ImageNet weights: --weights imagenet (downloaded once, verified).
##########################################################################################"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="swiftformer-export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", choices=list(VARIANTS),
                   help="model variant (default XS; detected from --weights when given)")
    p.add_argument("--weights", help="imagenet (the official ImageNet-1k weights, downloaded "
                                     "once and verified), an official / timm / Hugging Face "
                                     "checkpoint, or a .keras file")
    p.add_argument("--attention", choices=["normalize", "legacy"],
                   help="attention semantics (default: from the checkpoint's format)")
    p.add_argument("--quantize", default="none", choices=QUANTIZE_MODES)
    p.add_argument("--int8-io", action="store_true", help="int8 input and output (with int8)")
    p.add_argument("--input-size", default="224",
                   help="input size, N or HxW (default 224)")
    p.add_argument("--dynamic-size", action="store_true",
                   help="keep H and W dynamic (batch stays 1); slower with XNNPACK")
    p.add_argument("--include-preprocessing", action="store_true",
                   help="the model takes 0-255 RGB and normalises in-graph")
    p.add_argument("--metadata", action="store_true",
                   help="image classifier metadata for apps (MediaPipe ImageClassifier, TFLite "
                        "Task Library): name, version, author, licence, input 0-255 RGB, "
                        "probabilities out (softmax in the graph) and a labels file (the "
                        "model's class names, ImageNet's for --weights imagenet); implies "
                        "--include-preprocessing (needs pip install mediapipe)")
    p.add_argument("--calibration", default="builtin",
                   help="a data source: builtin (default: real photographs shipped by "
                        "scikit-image and matplotlib), folder:DIR, tfds:NAME[:SPLIT] or "
                        "synthetic (shapes and textures generated in code)")
    p.add_argument("--num-calibration", type=positive_int, default=256)
    p.add_argument("--num-check", type=positive_int, default=32,
                   help="held-out images for the check")
    p.add_argument("--output", help="output .tflite (default swiftformer_<variant>_<mode>.tflite)")
    p.add_argument("--report", help="also write the summary as JSON here")
    p.add_argument("--no-check", action="store_true", help="skip the fidelity check and timing")
    p.add_argument("--reference", metavar="MODEL",
                   help="the Keras model (or checkpoint) the check compares against "
                        "(default: the converted model; for a QAT model, its float form), "
                        "e.g. the float model a QAT model was fine-tuned from")
    p.add_argument("--debug-csv", help="write the QuantizationDebugger per-layer errors (CSV)")
    p.add_argument("--selective", type=number(above=0, maximum=1), metavar="COSINE",
                   help="keep the worst layers in float until the logit cosine on the "
                        "check images reaches COSINE (int8 / int16x8)")
    p.add_argument("--gpu-check", choices=["auto", "on", "off"], default="auto",
                   help="report LiteRT GPU delegation (fully delegated, or the rejected ops "
                        "and why); auto: when a GPU accelerator exists here, a software one "
                        "included (swiftformer-setup-gpu); on: also say when none does")
    p.add_argument("--check-arm", metavar="CPU[,CPU]",
                   help="also run the check images through the phone's CPU kernels (LiteRT's "
                        "aarch64 build under QEMU, after swiftformer-setup-arm) on "
                        "these emulated CPUs: cortex-a53, cortex-a76, i8mm, sme; a :fp16 "
                        "suffix forces fp16 arithmetic (e.g. cortex-a76:fp16)")
    npu.add_arguments(p)
    p.add_argument("--threads", type=positive_int, nargs="+", default=[1], help="latency threads")
    p.add_argument("--runs", type=positive_int, default=30, help="latency runs per thread count")
    args = p.parse_args(argv)
    try:
        parts = [int(n) for n in args.input_size.lower().split("x")]
        args.input_size = (parts[0], parts[-1]) if len(parts) in (1, 2) else None
    except ValueError:
        args.input_size = None
    if not args.input_size or min(args.input_size) < 16:
        p.error(f"--input-size must be N or HxW with sizes >= 16, got {args.input_size!r}")
    if args.int8_io and args.quantize != "int8":
        p.error("--int8-io needs --quantize int8")
    if (args.debug_csv or args.selective) and args.quantize not in ("int8", "int16x8"):
        p.error("--debug-csv and --selective need --quantize int8 or int16x8")
    if args.selective and args.no_check:
        p.error("--selective measures fidelity on the check images; drop --no-check")
    if args.reference and args.no_check:
        p.error("--reference is what the check compares against; drop --no-check")
    if args.metadata:
        if args.int8_io:
            p.error("--metadata describes a float (0-255) input; drop --int8-io")
        if args.dynamic_size:
            p.error("--metadata needs a fixed --input-size (apps resize to it); drop "
                    "--dynamic-size")
        args.include_preprocessing = True  # MediaPipe takes one mean and std for all channels
    if args.check_arm:
        from swiftformer_tf.runtime.arm import parse_cpus
        if args.no_check:
            p.error("--check-arm runs the check images; drop --no-check")
        try:
            args.check_arm = parse_cpus(args.check_arm)
        except ValueError as err:
            p.error(f"--check-arm: {err}")
    return args


def load_model(args):
    from swiftformer_tf import SwiftFormer, load
    options = dict(include_preprocessing=args.include_preprocessing,
                   input_shape=(None, None, 3), attention=args.attention)
    if args.weights is None:
        print(RANDOM_WEIGHTS_WARNING.format(variant=args.variant or "XS"), file=sys.stderr)
        return SwiftFormer(args.variant or "XS", **options), "random init"
    variant = args.variant or ("XS" if args.weights == "imagenet" else None)
    return load(args.weights, variant=variant, **options), args.weights


def export(args):
    if args.list_npu:
        print(npu.format_targets())
        return 0
    from swiftformer_tf.io_utils import import_tensorflow_quietly
    import_tensorflow_quietly()
    from swiftformer_tf.export.pipeline import ExportOptions, check_prerequisites, export_and_check
    from swiftformer_tf.export.report import format_summary
    from swiftformer_tf.io_utils import check_writable, write_json
    fields = {f.name for f in dataclasses.fields(ExportOptions)}
    options = ExportOptions(output=args.output or "",
                            **{k: v for k, v in vars(args).items()
                               if k in fields and k != "output" and v is not None})
    npu_targets = check_prerequisites(options)  # before the model is loaded
    model, weights = load_model(args)
    name = model.config.name.lower()
    options.output = args.output or f"swiftformer_{name}_{args.quantize}.tflite"
    check_writable(options.output)
    if args.report:
        check_writable(args.report)
    report = export_and_check(model, weights, options, npu_targets)
    print(format_summary(report))
    if args.report:
        write_json(args.report, report)
    return 0


def main(argv=None):
    from swiftformer_tf.io_utils import run_command
    return run_command("swiftformer-export", lambda a: export(parse_args(a)), argv)


if __name__ == "__main__":
    sys.exit(main())
