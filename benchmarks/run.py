#!/usr/bin/env python3
"""Side-by-side benchmarks on this machine, one run, every figure interleaved:

1. TFLite on the CPU (LiteRT, XNNPACK), 1 and 2 threads: each SwiftFormer variant in fp32,
   fp16, dynamic range and full int8, against the same architecture converted from PyTorch
   by litert-torch, MobileNetV2 1.0 (fp32, int8), EfficientFormer-L1 and MobileViT-v2 1.0;
   latency against the paper's top-1 (the paper's Figure 1 on this CPU).
2. The compute floor: MACs counted from each graph over the measured single-thread GEMM
   rate (numpy float32; XNNPACK float32 and int8), and each model's achieved fraction.
3. Keras against PyTorch eager (benchmarks/keras_vs_pytorch.py).
4. 2-thread scaling of every TFLite model.

    python benchmarks/run.py [--variants XS,S,L1,L3] [--threads 1,2] [--quick] [--out benchmarks/results]

The litert-torch peer needs its own environment (.venv-peer, see litert_torch_peer.py) and
the kecam models need tf-keras (pip install tf-keras keras-cv-attention-models); whatever
cannot be built is named in the report with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.zoo_models import KECAM_MODELS  # noqa: E402
from swiftformer_tf.io_utils import write_json  # noqa: E402
from swiftformer_tf.variants import VARIANTS  # noqa: E402

MODES = ("none", "fp16", "dynamic", "int8")
PAPER_TOP1 = {"mobilenet_v2_1.0": 71.8, **{k: v[3] for k, v in KECAM_MODELS.items()}}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="run.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default="XS,S,L1,L3")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--quick", action="store_true", help="XS only, fewer runs (< 10 min)")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--runs", type=int, help="timed runs per model and thread count (default 50; "
                                            "quick 20)")
    p.add_argument("--num-calibration", type=int, help="int8 calibration images (default 128)")
    p.add_argument("--input-size", type=int, default=224, help="SwiftFormer input size")
    p.add_argument("--peer-python", default=os.path.join(ROOT, ".venv-peer", "bin", "python"),
                   help="python of an environment with litert-torch")
    p.add_argument("--skip", default="", help="comma list of parts to skip: peer, zoo, kecam, torch")
    args = p.parse_args(argv)
    args.variants = ["XS"] if args.quick else [v.strip().upper() for v in args.variants.split(",")]
    for variant in args.variants:
        if variant not in VARIANTS:
            p.error(f"unknown variant {variant}")
    args.threads = [int(t) for t in args.threads.split(",")]
    args.runs = args.runs or (20 if args.quick else 50)
    args.num_calibration = args.num_calibration or (32 if args.quick else 128)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    return args


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- models --------------------------------------------------------------------------------------
def build_swiftformer(args, folder):
    import swiftformer_tf as sf
    from swiftformer_tf.imagenet import normalize
    from swiftformer_tf.lite.calibration import ImageSource
    from swiftformer_tf.lite.converter import convert
    size = (args.input_size, args.input_size)
    calibration = [normalize(x) for x in ImageSource("builtin", size).calibration(args.num_calibration)]
    models = {}
    for variant in args.variants:
        model = sf.SwiftFormer(variant)
        for mode in MODES:
            name = f"swiftformer_{variant.lower()}_{'fp32' if mode == 'none' else mode}"
            path = os.path.join(folder, name + ".tflite")
            log(f"converting {name}")
            result = convert(model, mode, size, calibration=calibration if mode == "int8" else None)
            with open(path, "wb") as f:
                f.write(result.flatbuffer)
            models[name] = {"path": path, "family": "swiftformer", "variant": variant,
                            "mode": mode, "top1": VARIANTS[variant].top1}
    return models


def build_peer(args, folder, notes):
    if "peer" in args.skip:
        notes.append("litert-torch peer: skipped (--skip peer)")
        return {}
    if not os.path.isfile(args.peer_python):
        notes.append(f"litert-torch peer: not built, no environment at {args.peer_python} (create "
                     f"it as benchmarks/litert_torch_peer.py explains)")
        return {}
    log("converting the PyTorch peer with litert-torch")
    result = subprocess.run([args.peer_python, os.path.join(ROOT, "benchmarks", "litert_torch_peer.py"),
                             "--variants", *args.variants, "--size", str(args.input_size),
                             "--out", folder], capture_output=True, text=True)
    if result.returncode != 0:
        notes.append(f"litert-torch peer: conversion failed: {result.stderr.strip()[-300:]}")
        return {}
    return {f"litert_torch_{v.lower()}_fp32": {
        "path": os.path.join(folder, f"swiftformer_{v.lower()}_litert_torch.tflite"),
        "family": "litert-torch", "variant": v, "mode": "none", "top1": VARIANTS[v].top1}
        for v in args.variants}


def build_zoo(args, folder, notes):
    models = {}
    if "zoo" in args.skip:
        notes.append("MobileNetV2 / EfficientFormer / MobileViT-v2: skipped (--skip zoo)")
        return models
    script = os.path.join(ROOT, "benchmarks", "zoo_models.py")
    runs = [("mobilenet_v2", [sys.executable, script, "mobilenet_v2", "--out", folder, "--int8",
                              "--calibration", str(args.num_calibration)], {})]
    if "kecam" in args.skip:
        notes.append("EfficientFormer-L1 / MobileViT-v2: skipped (--skip kecam)")
    else:
        runs.append(("kecam", [sys.executable, script, "kecam", "--out", folder],
                     {"TF_USE_LEGACY_KERAS": "1"}))
    for label, command, env in runs:
        log(f"building {label} models")
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env})
        line = next((l for l in result.stdout.splitlines() if l.startswith("RESULT ")), None)
        if result.returncode != 0 or line is None:
            reason = (result.stderr.strip().splitlines() or ["no output"])[-1][:300]
            notes.append(f"{label}: not built ({reason}); for kecam: pip install tf-keras "
                         f"keras-cv-attention-models")
            continue
        outcome = json.loads(line[len("RESULT "):])
        for name, reason in outcome["failed"].items():
            notes.append(f"{name}: not built ({reason})")
        for name, path in outcome["written"].items():
            base = name.rsplit("_", 1)[0]
            models[name] = {"path": path, "family": base, "variant": None,
                            "mode": "int8" if name.endswith("int8") else "none",
                            "top1": PAPER_TOP1.get(base)}
    return models


# -- the compute floor -------------------------------------------------------------------------
def count_macs(path) -> int:
    """Multiply-accumulates of the convolutions and matrix products in a .tflite graph."""
    import numpy as np

    from swiftformer_tf.lite.runtime import load_interpreter
    interpreter = load_interpreter(path, use_xnnpack=False)
    # Python ints: numpy's int32 products overflow past 2**31 MACs (L3 came out negative)
    shapes = {t["index"]: [int(d) for d in t["shape"]] for t in interpreter.get_tensor_details()}
    macs = 0
    for op in interpreter._get_ops_details():
        name, inputs, outputs = op["op_name"], list(op["inputs"]), list(op["outputs"])
        if not outputs or outputs[0] < 0:
            continue
        out = shapes[outputs[0]]
        if name == "CONV_2D":
            o, kh, kw, i = shapes[inputs[1]]
            macs += out[1] * out[2] * o * kh * kw * i
        elif name == "DEPTHWISE_CONV_2D":
            _, kh, kw, c = shapes[inputs[1]]
            macs += out[1] * out[2] * c * kh * kw
        elif name == "FULLY_CONNECTED":
            o, i = shapes[inputs[1]]
            macs += int(np.prod(shapes[inputs[0]])) // i * o * i
        elif name == "BATCH_MATMUL":
            a = shapes[inputs[0]]
            macs += int(np.prod(out)) * a[-1]
    return macs


def gemm_rates():
    """Single-thread GEMM rates in GMAC/s: numpy float32, XNNPACK float32 and int8."""
    code = ("import numpy as np, time\n"
            "a=np.random.rand(1024,1024).astype('float32'); b=a.copy(); a@b\n"
            "t=time.perf_counter(); n=10\n"
            "for _ in range(n): a@b\n"
            "print(1024**3*n/(time.perf_counter()-t)/1e9)")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    numpy_rate = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      env=env, check=True).stdout.strip())
    import numpy as np
    import tensorflow as tf

    from swiftformer_tf.lite.converter import configure
    from swiftformer_tf.lite.runtime import measure_latency
    weights = tf.constant(np.random.default_rng(0).normal(size=(1024, 1024)).astype(np.float32) * 0.03)
    fn = tf.function(lambda x: tf.matmul(x, weights),
                     input_signature=[tf.TensorSpec((256, 1024), tf.float32)])
    rates = {"numpy_fp32_gmacs": numpy_rate}
    for mode in ("fp32", "int8"):
        converter = configure(
            tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()]),
            "none" if mode == "fp32" else "int8", lambda: (
                [np.random.default_rng(i).normal(size=(256, 1024)).astype(np.float32)]
                for i in range(8)))
        timing = measure_latency(converter.convert(), 1, runs=20, warmup=3)
        rates[f"xnnpack_{mode}_gmacs"] = 256 * 1024 * 1024 / (timing.median_ms / 1e3) / 1e9
    return rates


# -- report --------------------------------------------------------------------------------------
def write_report(out, results):
    lines = [f"# Benchmarks: {results['machine']}", "",
             f"Command: `{results['command']}`  ", f"Date: {results['date']}; runtime "
             f"{results['runtime']}; {results['runs']} timed runs per model and thread count, "
             f"interleaved across all models; times are medians (min-max).", ""]
    rates = results["gemm_rates"]
    lines += ["## Compute floor", "",
              f"Single-thread GEMM: numpy float32 {rates['numpy_fp32_gmacs']:.1f} GMAC/s "
              f"({2 * rates['numpy_fp32_gmacs']:.0f} GFLOP/s); XNNPACK float32 "
              f"{rates['xnnpack_fp32_gmacs']:.1f} GMAC/s, int8 {rates['xnnpack_int8_gmacs']:.1f} GMAC/s.", ""]
    threads = results["threads"]
    head = "| model | mode | GMACs | " + " | ".join(f"{t} thr ms" for t in threads)
    head += " | floor ms (1 thr) | achieved | scaling | top-1 |"
    lines += ["## TFLite latency (XNNPACK)", "", head, "|" + "---|" * (6 + len(threads))]
    for name, row in results["models"].items():
        cells = [f"{row['latency'][str(t)]['median_ms']:.2f} ({row['latency'][str(t)]['min_ms']:.2f}-"
                 f"{row['latency'][str(t)]['max_ms']:.2f})" for t in threads]
        lines.append(f"| {name} | {row['mode']} | {row['gmacs']:.3f} | " + " | ".join(cells) +
                     f" | {row['floor_ms']:.2f} | {100 * row['floor_fraction']:.0f} % | "
                     f"{row.get('scaling', float('nan')):.2f}x | {row['top1'] or ''} |")
    if results["comparisons"]:
        lines += ["", "## Against the PyTorch → litert-torch path (median ratios, same run)", "",
                  "| variant | threads | ours ms | litert-torch ms | ratio |", "|---|---|---|---|---|"]
        for c in results["comparisons"]:
            lines.append(f"| {c['variant']} | {c['threads']} | {c['ours_ms']:.2f} | {c['peer_ms']:.2f} | "
                         f"{c['ratio']:.3f}{' (we lose)' if c['ratio'] > 1 else ''} |")
    if results.get("keras_vs_pytorch"):
        kvp = results["keras_vs_pytorch"]
        lines += ["", f"## Keras against PyTorch eager ({kvp['variant']}, {kvp['threads']} threads)", ""]
        for key, table in kvp.items():
            if isinstance(table, dict):
                base = table["pytorch_eager"]["median"]
                lines.append(f"- {key}: " + "; ".join(
                    f"{name} {row['median']:.2f} {row['unit']} (x{row['median'] / base:.2f})"
                    for name, row in table.items()))
    if results["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in results["notes"]]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def plot(out, results):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from swiftformer_tf.io_utils import save_figure
    written = []
    t = str(results["threads"][0])
    models = results["models"]
    ms = {name: row["latency"][t]["median_ms"] for name, row in models.items()}
    fig, ax = plt.subplots(figsize=(8, 5.5))
    # SwiftFormer and its litert-torch twin: one line per mode through the variants, as in
    # the paper's Figure 1; the variant names once, beside the fastest line
    lines = {}
    for name, row in models.items():
        if row["family"] in ("swiftformer", "litert-torch") and row["top1"] is not None:
            lines.setdefault((row["family"], row["mode"]), []).append((ms[name], row["top1"], row["variant"]))
    styles = {"none": ("o", "fp32"), "fp16": ("^", "fp16"), "dynamic": ("s", "dynamic range"),
              "int8": ("D", "full int8")}
    for (family, mode), points in sorted(lines.items()):
        points.sort(key=lambda p: p[1])
        marker, label = styles.get(mode, ("o", mode))
        colour = "tab:gray" if family == "litert-torch" else None
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, color=colour,
                linestyle="--" if family == "litert-torch" else "-",
                label=("SwiftFormer via litert-torch, " if family == "litert-torch" else
                       "SwiftFormer (ours), ") + label)
        if family == "swiftformer" and mode == "int8":
            for x, y, variant in points:
                ax.annotate(variant, (x, y), fontsize=8, textcoords="offset points",
                            xytext=(-6, 6), ha="right")
    others = {}
    for name, row in models.items():
        if row["family"] not in ("swiftformer", "litert-torch") and row["top1"] is not None:
            others.setdefault(row["family"], []).append((ms[name], row["top1"], row["mode"]))
    for family, points in others.items():
        for x, y, mode in points:
            ax.scatter(x, y, marker=styles.get(mode, ("o", ""))[0], color="black", zorder=3)
            ax.annotate(f"{family} {styles.get(mode, ('', mode))[1]}", (x, y), fontsize=7,
                        textcoords="offset points", xytext=(5, -10))
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(f"median latency, {t} thread (ms, log scale), {results['machine']}")
    ax.set_ylabel("ImageNet top-1 (%), as published")
    ax.set_title("Latency against accuracy, TFLite on this CPU (XNNPACK)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    written.append(save_figure(fig, os.path.join(out, "latency_vs_top1.png")))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = list(results["models"])
    ax.barh(names, [100 * results["models"][n]["floor_fraction"] for n in names])
    ax.set_xlabel("achieved fraction of the single-thread GEMM floor (%)")
    ax.tick_params(axis="y", labelsize=7)
    written.append(save_figure(fig, os.path.join(out, "floor_fraction.png")))
    return written


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    folder = os.path.join(args.out, "models")
    os.makedirs(folder, exist_ok=True)
    from swiftformer_tf.io_utils import import_tensorflow_quietly
    import_tensorflow_quietly()
    from swiftformer_tf.lite.runtime import interleaved_latency, interpreter_class
    started = time.time()
    notes = []
    models = build_swiftformer(args, folder)
    models.update(build_peer(args, folder, notes))
    models.update(build_zoo(args, folder, notes))
    log("measuring GEMM rates")
    rates = gemm_rates()
    log(f"timing {len(models)} models x {len(args.threads)} thread counts, interleaved")
    paths = [m["path"] for m in models.values()]
    times = interleaved_latency(paths, args.threads, args.runs, warmup=5)
    for name, row in models.items():
        row["latency"] = {}
        for t in args.threads:
            values = times[(row["path"], t)]
            row["latency"][str(t)] = {"median_ms": statistics.median(values), "min_ms": min(values),
                                      "max_ms": max(values), "runs": len(values)}
        row["gmacs"] = count_macs(row["path"]) / 1e9
        rate = rates["xnnpack_int8_gmacs" if row["mode"] == "int8" else "xnnpack_fp32_gmacs"]
        row["floor_ms"] = row["gmacs"] / rate * 1e3
        one = row["latency"][str(args.threads[0])]["median_ms"]
        row["floor_fraction"] = row["floor_ms"] / one
        if len(args.threads) > 1:
            row["scaling"] = one / row["latency"][str(args.threads[-1])]["median_ms"]
    comparisons = []
    for variant in args.variants:
        ours, peer = models.get(f"swiftformer_{variant.lower()}_fp32"), models.get(f"litert_torch_{variant.lower()}_fp32")
        if ours and peer:
            for t in args.threads:
                a, b = times[(ours["path"], t)], times[(peer["path"], t)]
                comparisons.append({"variant": variant, "threads": t,
                                    "ours_ms": statistics.median(a), "peer_ms": statistics.median(b),
                                    "ratio": statistics.median(a) / statistics.median(b)})
    keras_vs_pytorch = None
    if "torch" in args.skip:
        notes.append("Keras against PyTorch: skipped (--skip torch)")
    else:
        log("Keras against PyTorch eager")
        kvp_json = os.path.join(args.out, "keras_vs_pytorch.json")
        command = [sys.executable, os.path.join(ROOT, "benchmarks", "keras_vs_pytorch.py"),
                   "--variant", args.variants[0], "--threads", str(max(args.threads)),
                   "--rounds", "3" if args.quick else "5", "--json", kvp_json]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0:
            with open(kvp_json) as f:
                keras_vs_pytorch = json.load(f)
        else:
            notes.append(f"Keras against PyTorch: failed ({result.stderr.strip()[-300:]})")
    machine = f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores".strip()
    results = {"machine": machine, "date": time.strftime("%Y-%m-%d %H:%M"),
               "command": "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "runtime": interpreter_class()[1], "threads": args.threads, "runs": args.runs,
               "gemm_rates": rates, "models": models, "comparisons": comparisons,
               "keras_vs_pytorch": keras_vs_pytorch, "notes": notes,
               "seconds": round(time.time() - started, 1)}
    write_json(os.path.join(args.out, "results.json"), results)
    write_report(args.out, results)
    plots = plot(args.out, results)
    log(f"wrote {args.out}/results.json, report.md, " + ", ".join(os.path.basename(p) for p in plots)
        + f" in {results['seconds'] / 60:.1f} min")
    print(open(os.path.join(args.out, "report.md")).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
