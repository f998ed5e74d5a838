#!/usr/bin/env python3
"""Proof run: post-training int8 against quantization-aware fine-tuning (QAT) on the trained
synthetic SwiftFormer-XS (``swiftformer-benchmark-synthetic``), both checked against that
float model on the same 1,000 held-out images (the synthetic validation split).

    swiftformer-benchmark-qat --model runs/synthetic_xs/model.keras --output runs/synthetic_xs_qat

Runs, as a user would: ``swiftformer-train --init MODEL --qat``, then
``swiftformer-export --quantize int8``
for the float model (PTQ) and the QAT model, then times both int8 models A B A B on one
thread. Targets: int8 top-1 agreement with float >= 99.5 %, int8 accuracy
within 0.2 points of float, QAT fine-tuning under 10 minutes, QAT latency within 3 % of
PTQ's, one XNNPACK partition and no float tensor.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from swiftformer_tf.errors import SwiftFormerError
from swiftformer_tf.io_utils import number

# The data and crops of the float model's run (benchmark_synthetic.RECIPE); QAT's own
# defaults otherwise (1 epoch, lr 5e-5, distilled from the float model's logits).
QAT_RECIPE = ["--qat", "--variant", "XS", "--data", "synthetic:6000", "--batch-size", "64",
              "--image-size", "64", "--crop-scale-min", "0.35", "--seed", "0",
              "--save-every", "0"]
CHECK = ["--quantize", "int8", "--input-size", "64", "--calibration", "synthetic",
         "--num-check", "1000", "--gpu-check", "off", "--runs", "10"]
TARGETS = {"agreement": 0.995, "accuracy_drop_points": 0.2, "qat_minutes": 10.0,
           "latency_ratio": 1.03}


def run(command):
    print("$ " + " ".join(command[3:]), flush=True)
    subprocess.run(command, check=True)


def main(argv=None):
    from swiftformer_tf.io_utils import run_command
    return run_command("swiftformer-benchmark-qat", benchmark, argv)


def benchmark(argv):
    p = argparse.ArgumentParser(prog="swiftformer-benchmark-qat", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="runs/synthetic_xs/model.keras",
                   help="the float model of swiftformer-benchmark-synthetic")
    p.add_argument("--output", default="runs/synthetic_xs_qat")
    p.add_argument("--runs", type=number(minimum=1, whole=True), default=300,
                   help="timed runs per int8 model")
    args = p.parse_args(argv)
    if not os.path.isfile(args.model):
        raise SwiftFormerError(f"{args.model}: no such model; train it first with "
                               f"swiftformer-benchmark-synthetic (about 45 minutes on 2 cores)")
    os.makedirs(args.output, exist_ok=True)
    python = sys.executable
    qat_dir = os.path.join(args.output, "qat")
    start = time.time()
    run([python, "-m", "swiftformer_tf.cli.train", "--init", args.model, *QAT_RECIPE,
         "--output", qat_dir, "--overwrite"])
    qat_minutes = (time.time() - start) / 60
    paths = {}
    for name, weights in (("ptq", args.model), ("qat", os.path.join(qat_dir, "model.keras"))):
        paths[name] = os.path.join(args.output, f"{name}_int8.tflite")
        run([python, "-m", "swiftformer_tf.cli.export", "--weights", weights, *CHECK,
             "--reference", args.model, "--output", paths[name],
             "--report", os.path.join(args.output, f"{name}.json")])

    from swiftformer_tf.io_utils import write_json
    from swiftformer_tf.runtime.interpreter import interleaved_latency
    reports = {}
    for name in paths:
        with open(os.path.join(args.output, f"{name}.json")) as f:
            reports[name] = json.load(f)
    with open(paths["ptq"], "rb") as f:
        ptq_model = f.read()
    with open(paths["qat"], "rb") as f:
        qat_model = f.read()
    times = interleaved_latency([ptq_model, qat_model], threads=(1,), runs=args.runs)
    import numpy as np
    median = {name: float(np.median(times[(model, 1)]))
              for name, model in (("ptq", ptq_model), ("qat", qat_model))}

    floor = runtime_floor(args.model, paths)
    rows = {}
    for name, report in reports.items():
        check, graph = report["fidelity"], report["graph"]
        rows[name] = {"agreement": check["top1_agreement"], "cosine_mean": check["cosine_mean"],
                      "cosine_min": check["cosine_min"], "float_top1": check["reference_top1"],
                      "int8_top1": check["candidate_top1"], "partitions": graph["partitions"],
                      "float_tensors": len(graph["float_tensors"]),
                      "ops": sum(graph["op_histogram"].values()),
                      "latency_ms": median[name], **floor[name]}
    qat = rows["qat"]
    result = {
        "rows": rows, "qat_minutes": round(qat_minutes, 2),
        "latency_ratio": median["qat"] / median["ptq"],
        "targets": TARGETS,
        "met": {
            "agreement": qat["agreement"] >= TARGETS["agreement"],
            "accuracy": 100 * (qat["float_top1"] - qat["int8_top1"])
            <= TARGETS["accuracy_drop_points"],
            "qat_minutes": qat_minutes < TARGETS["qat_minutes"],
            "latency": median["qat"] / median["ptq"] <= TARGETS["latency_ratio"],
            "one_integer_partition": qat["partitions"] == 1 and qat["float_tensors"] == 0},
        "commands": {"qat": "swiftformer-train --init MODEL " + " ".join(QAT_RECIPE),
                     "convert": "swiftformer-export --weights W " + " ".join(CHECK)}}
    write_json(os.path.join(args.output, "benchmark.json"), result)
    print(format_table(rows, result))
    return 0 if all(result["met"].values()) else 1


def runtime_floor(model_path, paths, size=None, count=None):
    """How far two correct int8 runtimes of one model disagree: each int8 model on XNNPACK
    and on TFLite's built-in kernels (same file, same 1,000 check images as the report).
    An agreement target with the float model tighter than this is within run-time noise."""
    import numpy as np

    from swiftformer_tf import load
    from swiftformer_tf.imagenet import normalize
    from swiftformer_tf.export.calibration import ImageSource
    from swiftformer_tf.export.report import compare_logits
    from swiftformer_tf.runtime.interpreter import TFLiteRunner
    size = size or int(CHECK[CHECK.index("--input-size") + 1])
    count = count or int(CHECK[CHECK.index("--num-check") + 1])
    images = np.stack([normalize(x) for x in ImageSource("synthetic", (size, size)).check(count)])
    float_model = load(model_path)
    float_logits = np.concatenate([np.asarray(float_model(images[i:i + 100]))
                                   for i in range(0, len(images), 100)])
    floor = {}
    for name, path in paths.items():
        with open(path, "rb") as f:
            flatbuffer = f.read()
        logits = {}
        for runtime, xnnpack in (("xnnpack", True), ("builtin", False)):
            runner = TFLiteRunner(flatbuffer, use_xnnpack=xnnpack)
            logits[runtime] = np.concatenate([runner(x[None]) for x in images])
        floor[name] = {
            "agreement_builtin_kernels": compare_logits(float_logits, logits["builtin"])[
                "top1_agreement"],
            "xnnpack_vs_builtin_agreement": compare_logits(logits["builtin"], logits["xnnpack"])[
                "top1_agreement"]}
    return floor


def format_table(rows, result):
    lines = ["| int8 path | agreement with float | cosine mean / min | float top-1 | "
             "int8 top-1 | partitions | float tensors | ops | latency (1 thread) | "
             "agreement on built-in kernels | XNNPACK vs built-in |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name.upper()} | {100 * row['agreement']:.1f} % | "
                     f"{row['cosine_mean']:.5f} / {row['cosine_min']:.5f} | "
                     f"{100 * row['float_top1']:.1f} % | {100 * row['int8_top1']:.1f} % | "
                     f"{row['partitions']} | {row['float_tensors']} | {row['ops']} | "
                     f"{row['latency_ms']:.2f} ms | "
                     f"{100 * row['agreement_builtin_kernels']:.1f} % | "
                     f"{100 * row['xnnpack_vs_builtin_agreement']:.1f} % |")
    lines.append(f"QAT fine-tuning: {result['qat_minutes']:.1f} min; QAT / PTQ latency "
                 f"{result['latency_ratio']:.3f}; targets met: "
                 + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in result["met"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
