#!/usr/bin/env python3
"""Convert SwiftFormer to TFLite (optionally quantized), check it against the Keras model
on held-out images and report size, ops, XNNPACK partitions, fidelity and host latency.

    python tflite/convert.py --variant L1 --weights imagenet --quantize int8
    python tflite/convert.py --weights SwiftFormer_XS_ckpt.pth --quantize int8
    python tflite/convert.py --weights imagenet --quantize int8 --npu qualcomm:SM8650
    python tflite/convert.py --weights imagenet --quantize int8 --check-arm cortex-a76,i8mm
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from swiftformer_tf.io_utils import number, positive_int  # noqa: E402
from swiftformer_tf.lite import npu  # noqa: E402
from swiftformer_tf.lite.converter import QUANTIZE_MODES  # noqa: E402
from swiftformer_tf.variants import VARIANTS  # noqa: E402

RANDOM_WEIGHTS_WARNING = """\
##########################################################################################
# WARNING: no --weights given: converting a RANDOMLY INITIALISED SwiftFormer-{variant}.
# Its predictions are meaningless; sizes, ops and latency are still representative.
# For the official ImageNet weights: --weights imagenet (downloaded once, verified).
##########################################################################################"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="convert.py", description=__doc__,
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
                   help="DIR, tfds:NAME[:SPLIT], builtin (default: real photographs "
                        "shipped by scikit-image and matplotlib) or synthetic (the training "
                        "proof run's shapes and textures)")
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
                        "included (tflite/setup_software_gpu.py); on: also say when none does")
    p.add_argument("--check-arm", metavar="CPU[,CPU]",
                   help="also run the check images through the phone's CPU kernels (LiteRT's "
                        "aarch64 build under QEMU, after tflite/setup_arm_emulator.py) on "
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
        from swiftformer_tf.lite.arm import parse_cpus
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


def convert_and_report(args):
    if args.list_npu:
        print(npu.format_targets())
        return 0
    from swiftformer_tf.io_utils import import_tensorflow_quietly
    import_tensorflow_quietly()
    import keras
    import numpy as np
    from tqdm import tqdm

    from swiftformer_tf.imagenet import normalize
    from swiftformer_tf.io_utils import check_writable, write_file, write_json
    from swiftformer_tf.lite.calibration import ImageSource
    from swiftformer_tf.lite import qat
    from swiftformer_tf.lite.converter import convert
    from swiftformer_tf.lite.report import fidelity, format_summary
    from swiftformer_tf.lite.runtime import (TFLiteRunner, interpreter_class, measure_latency,
                                             summarize_graph)

    npu_targets = npu.targets_from_args(args)  # a wrong SoC fails before any work
    if args.check_arm:
        from swiftformer_tf.io_utils import CommandError
        from swiftformer_tf.lite import arm
        if not arm.is_ready():
            raise CommandError(f"--check-arm: no ARM emulator set up ({arm.SETUP_HINT})")
    if args.metadata:
        from swiftformer_tf.lite.metadata import _writer
        _writer()  # no writer installed: fail before any work
    model, weights = load_model(args)
    output = args.output or f"swiftformer_{model.config.name.lower()}_{args.quantize}.tflite"
    check_writable(output)
    if args.report:
        check_writable(args.report)
    needs_images = args.quantize in ("int8", "int16x8") or not args.no_check
    source = ImageSource(args.calibration, args.input_size) if needs_images else None
    prepare = (lambda x: x) if args.include_preprocessing else normalize
    calibration = []
    if args.quantize in ("int8", "int16x8"):
        bar = tqdm(source.calibration(args.num_calibration), total=args.num_calibration,
                   desc="calibration images", unit="img")
        calibration = [prepare(x) for x in bar]
    check_images, check_labels = [], []
    if not args.no_check:
        for image, label in source.labelled_check(args.num_check, skip=args.num_calibration):
            check_images.append(prepare(image))
            check_labels.append(label)
    reference_model, reference_name = model, "the Keras model"
    if args.reference:
        from swiftformer_tf import load
        reference_model = load(args.reference, include_preprocessing=args.include_preprocessing,
                               input_shape=(None, None, 3))
        reference_name = args.reference
    elif qat.is_qat_model(model):
        reference_name = "the float form of the QAT model"

    def keras_logits(x):
        if qat.is_qat_model(reference_model):
            with reference_model.quantizer.using("off"):
                return reference_model(x, training=False)
        return reference_model(x, training=False)

    def keras_reference(x):  # what the exported graph outputs: probabilities with --metadata
        logits = keras_logits(x)
        return keras.ops.softmax(logits, axis=-1) if args.metadata else logits

    def cosine_of(flatbuffer):
        return fidelity(keras_reference, TFLiteRunner(flatbuffer), check_images)["cosine_mean"]

    # a SIGTERM or Ctrl-C here unwinds through convert()'s cleanup: no SavedModel folder
    # and no partial output are left (run_command)
    result = convert(model, args.quantize, args.input_size, args.dynamic_size, args.int8_io,
                     calibration, debug_csv=args.debug_csv, selective_target=args.selective,
                     fidelity_fn=cosine_of,
                     progress=lambda xs: tqdm(xs, desc="quantizing", unit="img"),
                     softmax=args.metadata)
    flatbuffer, metadata = result.flatbuffer, None
    if args.metadata:
        from swiftformer_tf.lite import metadata as md
        labels, labels_source, warning = md.labels_for(model, weights)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        flatbuffer = md.add_classifier_metadata(
            flatbuffer, labels, md.model_info(model, weights, len(labels)))
        metadata = {"labels": labels_source, "classes": len(labels),
                    "bytes_added": len(flatbuffer) - len(result.flatbuffer),
                    "input": "RGB 0-255, normalised inside the graph (mean 0 / std 1 in the "
                             "metadata: MediaPipe takes one value for all channels)",
                    "output": "probabilities (softmax in the graph)"}
    write_file(output, flatbuffer)

    report = {"output": output, "variant": model.config.name, "weights": weights,
              "quantize": args.quantize, "int8_io": args.int8_io,
              "input_size": list(args.input_size), "dynamic_size": args.dynamic_size,
              "include_preprocessing": args.include_preprocessing,
              "size_bytes": len(flatbuffer), "runtime": interpreter_class()[1],
              "graph": summarize_graph(flatbuffer).to_dict(),
              "approximations": result.approximations, "kept_float": result.kept_float,
              "norm_references": result.norm_references,
              "calibration": source.description if calibration else None}
    if metadata is not None:
        report["metadata"] = metadata
    if not args.no_check:
        report["fidelity"] = dict(
            fidelity(keras_reference, TFLiteRunner(flatbuffer),
                     tqdm(check_images, desc="fidelity check", unit="img"), labels=check_labels),
            reference=reference_name)
        report["latency"] = [dict(measure_latency(flatbuffer, t, args.runs).to_dict(),
                                  threads=t) for t in args.threads]
    if metadata is not None and not args.no_check:
        from swiftformer_tf.lite.metadata import mediapipe_agreement
        pixels = [np.clip(np.round(x), 0, 255).astype(np.uint8) for x in check_images]
        runner = TFLiteRunner(flatbuffer)
        ours = [runner(x[None].astype(np.float32)) for x in pixels]
        agreement = mediapipe_agreement(output, pixels, ours)
        if agreement is not None:
            metadata["mediapipe"] = agreement
    if args.check_arm:
        from swiftformer_tf.lite.arm import fidelity_on_arm, format_fidelity
        reference = np.stack([np.asarray(keras_reference(np.asarray(x, np.float32)[None]))
                              .reshape(-1) for x in check_images])
        report["arm"] = []
        for cpu in tqdm(args.check_arm, desc="ARM kernels (emulated)", unit="cpu"):
            entry = fidelity_on_arm(output, cpu, check_images, reference)
            report["arm"].append(dict(entry, summary=format_fidelity(entry)))
    if args.gpu_check != "off":
        from swiftformer_tf.lite.gpu import check_gpu
        gpu = check_gpu(output, "fp16" if args.quantize == "fp16" else "fp32")
        if gpu.status != "unavailable" or args.gpu_check == "on":
            report["gpu"] = dict(gpu.to_dict(), summary=gpu.summary())
    if npu_targets:
        report["npu"] = [c.to_dict() for c in npu.compile_targets(output, npu_targets,
                                                                  args.npu_option)]
    print(format_summary(report))
    if args.report:
        write_json(args.report, report)
    return 0


def main(argv=None):
    from swiftformer_tf.io_utils import run_command
    return run_command("convert.py", lambda a: convert_and_report(parse_args(a)), argv)


if __name__ == "__main__":
    sys.exit(main())
