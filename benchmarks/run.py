#!/usr/bin/env python3
"""Side-by-side benchmarks on this machine, one run, every figure interleaved:

1. TFLite on the CPU (LiteRT, XNNPACK), 1 and 2 threads: each SwiftFormer variant in fp32,
   fp16, dynamic range and full int8, against the other paths a user could take with the
   same network: litert-torch (fp32, and int8 through its PT2E quantizer) from the official
   PyTorch model, and ai-edge-quantizer's static int8 of our fp32 graph; MobileNetV2 1.0
   (fp32, int8), EfficientFormer-L1 and MobileViT-v2 1.0; latency against the paper's top-1.
2. Each int8 path's XNNPACK partitions, float tensors and logit cosine against the float
   model on the same held-out photographs.
3. The compute floor: MACs counted from each graph over the best single-thread GEMM rate of
   several shapes, the models' own largest convolutions among them (benchmarks/floor.py).
4. Keras against PyTorch eager (benchmarks/keras_vs_pytorch.py), 2-thread scaling.
5. The phone's CPU kernels: guest instructions of one inference of ours and the peers' fp32
   and int8 files (XS and S) on emulated ARM CPUs (LiteRT's aarch64 build under QEMU,
   swiftformer-setup-arm): deterministic counts, the comparison to cite where the
   timings above are within the noise; never a latency.

    python benchmarks/run.py [--variants XS,S,L1,L3] [--threads 1,2] [--quick] [--no-peer]

The peers run in their own environment, .venv-peer, built here on first use (pinned
torch==2.13.0, litert-torch==0.10.0; benchmarks/peers.py); --no-peer leaves them out. The
machine is checked for other load before and during the run and every timing for its
spread (benchmarks/noise.py): a noisy run says so at the top of its report. The kecam
models need tf-keras (pip install tf-keras keras-cv-attention-models); whatever cannot be
built is named in the report with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

# Run by path (python benchmarks/run.py): the sibling scripts import by their own names,
# the package as installed.
import floor
import noise
import peers
from zoo_models import KECAM_MODELS

from swiftformer_tf.variants import VARIANTS

HERE = os.path.dirname(os.path.abspath(__file__))

MODES = ("none", "fp16", "dynamic", "int8")
# the paths to the same network: (colour, line style, legend prefix)
LINE_FAMILIES = {"swiftformer": (None, "-", "SwiftFormer (ours), "),
                 "litert-torch": ("tab:gray", "--", "SwiftFormer via litert-torch, "),
                 "ai-edge-quantizer": ("tab:brown", ":", "ours via ai-edge-quantizer, ")}
# our file of a precision against each peer's of the same variant: (precision, peer's model
# name pattern, label)
PEER_PAIRS = [("fp32", "litert_torch_{}_fp32", "litert-torch"),
              ("int8", "litert_torch_{}_pt2e_int8", "litert-torch PT2E"),
              ("int8", "aeq_{}_int8", "ai-edge-quantizer")]
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
    p.add_argument("--peer-python", default=os.path.join(os.path.dirname(HERE), ".venv-peer", "bin", "python"),
                   help="python of the peer environment (built there if missing)")
    p.add_argument("--no-peer", action="store_true",
                   help="leave out the litert-torch and ai-edge-quantizer paths")
    p.add_argument("--num-check", type=int, default=64,
                   help="held-out photographs for the int8 logit cosines (default 64)")
    p.add_argument("--arm-cpus", default="cortex-a76,i8mm",
                   help="emulated ARM CPUs for the instruction counts (default cortex-a76,i8mm)")
    p.add_argument("--arm-variants", default="XS,S",
                   help="variants whose fp32 and int8 files are counted on them (default XS,S)")
    p.add_argument("--skip", default="",
                   help="comma list of parts to skip: peer, zoo, kecam, torch, arm")
    args = p.parse_args(argv)
    args.variants = ["XS"] if args.quick else [v.strip().upper() for v in args.variants.split(",")]
    for variant in args.variants:
        if variant not in VARIANTS:
            p.error(f"unknown variant {variant}")
    args.threads = [int(t) for t in args.threads.split(",")]
    args.runs = args.runs or (20 if args.quick else 50)
    args.num_calibration = args.num_calibration or (32 if args.quick else 128)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    from swiftformer_tf.runtime.arm import parse_cpus
    try:
        args.arm_cpus = parse_cpus(args.arm_cpus)
    except ValueError as err:
        p.error(f"--arm-cpus: {err}")
    args.arm_variants = [v.strip().upper() for v in args.arm_variants.split(",")
                         if v.strip().upper() in args.variants]
    if args.no_peer:
        args.skip.add("peer")
    return args


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- models --------------------------------------------------------------------------------------
def build_swiftformer(args, folder, calibration):
    """Our four exports of each variant; returns (rows, {variant: Keras model})."""
    import swiftformer_tf as sf
    from swiftformer_tf.export.converter import convert
    size = (args.input_size, args.input_size)
    models, keras_models = {}, {}
    for variant in args.variants:
        model = keras_models[variant] = sf.SwiftFormer(variant)
        for mode in MODES:
            name = f"swiftformer_{variant.lower()}_{'fp32' if mode == 'none' else mode}"
            path = os.path.join(folder, name + ".tflite")
            log(f"converting {name}")
            result = convert(model, mode, size, calibration=calibration if mode == "int8" else None)
            with open(path, "wb") as f:
                f.write(result.flatbuffer)
            models[name] = {"path": path, "family": "swiftformer", "variant": variant, "mode": mode}
    return models, keras_models


def build_peers(args, folder, keras_models, calibration, ours, notes):
    if "peer" in args.skip:
        notes.append("litert-torch and ai-edge-quantizer peers: left out (--no-peer)")
        return {}
    python = peers.ensure_environment(args.peer_python, log)
    if python.startswith("!"):
        notes.append(f"litert-torch and ai-edge-quantizer peers: {python[1:]}")
        return {}
    ours_fp32 = {row["variant"]: row["path"] for row in ours.values() if row["mode"] == "none"}
    with tempfile.TemporaryDirectory(prefix="swiftformer_peer_inputs_") as inputs:
        calibration_path = peers.write_inputs(inputs, keras_models, calibration)
        return peers.build(python, args.variants, args.input_size, folder, inputs,
                           calibration_path, ours_fp32, notes, log)


def build_zoo(args, folder, notes):
    models = {}
    if "zoo" in args.skip:
        notes.append("MobileNetV2 / EfficientFormer / MobileViT-v2: skipped (--skip zoo)")
        return models
    script = os.path.join(HERE, "zoo_models.py")
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


# -- int8 paths: delegation and fidelity -----------------------------------------------------
def graph_facts(models, check_images):
    """Partitions and float tensors of every model; for the SwiftFormer paths, the logit
    cosine against our fp32 model of the same variant (the same weights on every path) on
    the held-out photographs: mean and worst image."""
    import numpy as np

    from swiftformer_tf.export.report import compare_logits
    from swiftformer_tf.runtime.interpreter import TFLiteRunner, summarize_graph
    references = {}
    for name, row in models.items():
        summary = summarize_graph(row["path"])
        row["partitions"], row["float_tensors"] = summary.partitions, len(summary.float_tensors)
        if row["variant"] is None:
            continue
        runner = TFLiteRunner(row["path"])
        channels_first = summary.input_shape[1] == 3 and summary.input_shape[3] != 3
        logits = np.stack([runner(x.transpose(2, 0, 1) if channels_first else x)[0]
                           for x in check_images])
        row["logits"] = logits
        if row["family"] == "swiftformer" and row["mode"] == "none":
            references[row["variant"]] = logits
    for row in models.values():
        logits = row.pop("logits", None)
        reference = references.get(row["variant"])
        if logits is None or reference is None:
            continue
        agreement = compare_logits(reference, logits)
        for key in ("cosine_mean", "cosine_min", "top1_agreement"):
            row[key] = agreement[key]


# -- the phone's CPU kernels, emulated --------------------------------------------------------
def arm_instructions(args, models, image, notes):
    """Guest instructions of exactly one inference of each fp32 and int8 file of the
    counted variants, every path, on each emulated CPU, on the same photograph; with the
    answer against the x86 interpreter's. {name: {cpu: ArmRun.to_dict()}}."""
    from swiftformer_tf.runtime import arm
    if "arm" in args.skip:
        notes.append("phone CPU kernels (emulated ARM): skipped (--skip arm)")
        return {}
    if not arm.is_ready():
        notes.append(f"phone CPU kernels (emulated ARM): no emulator here ({arm.SETUP_HINT})")
        return {}
    from swiftformer_tf.runtime.interpreter import _quantize, load_interpreter
    counted = {}
    for name, row in models.items():
        if row["variant"] not in args.arm_variants or row["mode"] not in ("none", "int8") \
                or row["family"] not in LINE_FAMILIES:
            continue
        detail = load_interpreter(row["path"]).get_input_details()[0]
        x = image.transpose(2, 0, 1) if detail["shape"][1] == 3 and detail["shape"][3] != 3 \
            else image
        sample = [_quantize(x[None].astype("float32"), detail)]
        counted[name] = {}
        for cpu in args.arm_cpus:
            log(f"counting {name} on emulated {cpu.name}")
            run = arm.run_on_arm(row["path"], cpu, [sample],
                                 profile=row["family"] == "swiftformer")
            counted[name][cpu.name] = dict(run.to_dict(), by_op_type=run.by_op_type(),
                                           by_kernel=run.by_kernel())
            if run.status != "ok":
                notes.append(f"{name} on emulated {cpu.name}: {run.status}: {run.reason}")
    return counted


def _mix_shares(run):
    """Where the instructions go, by kind: the GEMM's multiply instructions, other SIMD,
    scalar (control, addressing, the runtime)."""
    mix, total = run["instruction_mix"], run["guest_instructions"]
    gemm = sum(mix.get(k, 0) for k in ("int8_dot", "int8_mmla", "int8_widening", "fp32_fma",
                                       "fp16_arith"))
    simd = mix.get("simd_fp", 0) + mix.get("sve", 0) + mix.get("sme", 0)
    return gemm / total, (simd - gemm) / total, (total - simd) / total


def arm_report_lines(results):
    counted = results.get("arm_instructions") or {}
    if not counted:
        return []
    cpus = list(next(iter(counted.values())))
    models = results["models"]
    lines = ["", f"## Phone CPU kernels, emulated: guest instructions per inference "
             f"({results['input_size']} px)", "",
             "LiteRT's aarch64 build (XNNPACK's ARM kernels, 1 thread) under QEMU user mode, "
             "the second inference of one photograph, counted by a QEMU plugin: deterministic "
             "(two runs agree within 1e-5). Instructions are not time (a SIMD multiply and a "
             "branch count alike); compare them on one CPU. `x fp32`: against our fp32 file of "
             "the same variant on the same CPU. Mix (first CPU): multiply instructions of the "
             "GEMMs / other SIMD / scalar. `cos x86`: worst cosine of the output against the "
             "x86 interpreter on the same file.", "",
             "| model | " + " | ".join(f"{c} M | x fp32" for c in cpus)
             + " | mix (GEMM mul / other SIMD / scalar) | cos x86 |",
             "|---|" + "---|---|" * len(cpus) + "---|---|"]
    for name, runs in counted.items():
        row = models[name]
        fp32 = counted.get(f"swiftformer_{row['variant'].lower()}_fp32", {})
        cells = []
        for cpu in cpus:
            run, base = runs.get(cpu, {}), fp32.get(cpu, {})
            if run.get("guest_instructions") is None:
                cells += [run.get("status", "?"), ""]
                continue
            ratio = run["guest_instructions"] / base["guest_instructions"] \
                if base.get("guest_instructions") else float("nan")
            cells += [f"{run['guest_instructions'] / 1e6:.2f}", f"{ratio:.3f}"]
        first = runs[cpus[0]]
        mix = "/".join(f"{100 * v:.0f} %" for v in _mix_shares(first)) \
            if first.get("guest_instructions") else ""
        cosine = min((r["vs_host"] or {}).get("cosine_vs_host", float("nan"))
                     for r in runs.values())
        marks = " MISMATCH" if any(r["status"] == "mismatch" for r in runs.values()) else ""
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mix} | {cosine:.6f}{marks} |")
    lines += _where_instructions_go(counted, cpus)
    comparisons = results.get("arm_comparisons") or []
    if comparisons:
        lines += ["", "Ours against the other paths, same weights, same CPU (instruction "
                  "ratio; below 1: ours executes fewer):", "",
                  "| variant | precision | peer | CPU | ours M | peer M | ratio |",
                  "|---|---|---|---|---|---|---|"]
        for c in comparisons:
            lines.append(f"| {c['variant']} | {c['precision']} | {c['peer']} | {c['cpu']} | "
                         f"{c['ours'] / 1e6:.2f} | {c['peer_count'] / 1e6:.2f} | "
                         f"{c['ratio']:.3f}{' (we lose)' if c['ratio'] > 1 else ''} |")
    return lines


def _where_instructions_go(counted, cpus):
    """Per kind of work (XNNPACK's kernels, named from the runtime's symbols), our fp32 and
    int8 instructions of each counted variant and their ratio, on each CPU."""
    lines = []
    for name, runs in counted.items():
        if not (name.startswith("swiftformer_") and name.endswith("_int8")):
            continue
        fp32_runs = counted.get(name[:-len("int8")] + "fp32", {})
        for cpu in cpus:
            int8, fp32 = runs.get(cpu, {}), fp32_runs.get(cpu, {})
            if not (int8.get("by_op_type") and fp32.get("by_op_type")):
                continue
            kinds = list(dict.fromkeys(list(fp32["by_op_type"]) + list(int8["by_op_type"])))
            lines += ["", f"Where the instructions go: {name[:-5]} on {cpu} (M; the "
                      f"runtime's functions by name, XNNPACK's kernels grouped by the work "
                      f"they do; the parts sum to the totals above)", "",
                      "| work | fp32 M | int8 M | int8 / fp32 | share of int8 |",
                      "|---|---|---|---|---|"]
            for kind in kinds + ["total"]:
                a = fp32["guest_instructions"] if kind == "total" else \
                    fp32["by_op_type"].get(kind, 0)
                b = int8["guest_instructions"] if kind == "total" else \
                    int8["by_op_type"].get(kind, 0)
                ratio = f"{b / a:.3f}" if a else "-"
                lines.append(f"| {kind} | {a / 1e6:.2f} | {b / 1e6:.2f} | {ratio} | "
                             f"{100 * b / int8['guest_instructions']:.1f} % |")
            kernels = ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in
                                list(int8.get("by_kernel", {}).items())[:6])
            lines += ["", f"int8's largest kernels: {kernels}."]
    return lines


def compare_arm(counted, variants):
    """Our fp32 and int8 counts against each peer's of the same variant and precision."""
    comparisons = []
    for variant in variants:
        for precision, peer_name, label in PEER_PAIRS:
            ours = counted.get(f"swiftformer_{variant.lower()}_{precision}", {})
            peer = counted.get(peer_name.format(variant.lower()), {})
            for cpu, run in ours.items():
                a, b = run.get("guest_instructions"), peer.get(cpu, {}).get("guest_instructions")
                if a and b:
                    comparisons.append({"variant": variant, "precision": precision,
                                        "peer": label, "cpu": cpu, "ours": a, "peer_count": b,
                                        "ratio": a / b})
    return comparisons


# -- report --------------------------------------------------------------------------------------
def _cell(timing, noisy):
    return (f"{timing['median_ms']:.2f} ({timing['p10_ms']:.2f}-{timing['p90_ms']:.2f})"
            + (" ~" if noisy else ""))


def write_report(out, results):
    lines = [f"# Benchmarks: {results['machine']}", ""]
    if results["noise_warnings"]:
        lines += ["**Not a quiet machine: read the ratios below with care.**", ""]
        lines += [f"- {w}" for w in results["noise_warnings"]] + [""]
    lines += [f"Command: `{results['command']}`  ", f"Date: {results['date']}; runtime "
              f"{results['runtime']}; {results['runs']} timed runs per model and thread count, "
              f"interleaved across all models; times are medians (10th-90th percentile), "
              f"~ marks a spread above {100 * noise.SPREAD_LIMIT:.0f} % of the median.", ""]
    rates = results["gemm_rates"]
    probes = "; ".join(f"{p['mode']} {p['shape'][0]}x{p['shape'][1]}x{p['shape'][2]} "
                       f"{p['gmacs']:.1f}" for p in rates["probes"])
    lines += ["## Compute floor", "",
              f"Single-thread GEMM (M x K x N, GMAC/s): {probes}; numpy float32 "
              f"{rates['numpy_fp32_gmacs']:.1f}. Floor rates: XNNPACK float32 "
              f"{rates['xnnpack_fp32_gmacs']:.1f} GMAC/s, int8 {rates['xnnpack_int8_gmacs']:.1f} "
              f"GMAC/s (the best probe; int8 models against the int8 rate, the others against "
              f"float32).", ""]
    threads = results["threads"]
    head = "| model | mode | GMACs | " + " | ".join(f"{t} thr ms" for t in threads)
    head += " | floor ms (1 thr) | achieved | scaling | top-1 |"
    lines += ["## TFLite latency (XNNPACK)", "", head, "|" + "---|" * (7 + len(threads))]
    for name, row in results["models"].items():
        cells = [_cell(row["latency"][str(t)], row["latency"][str(t)]["noisy"]) for t in threads]
        lines.append(f"| {name} | {row['mode']} | {row['gmacs']:.3f} | " + " | ".join(cells) +
                     f" | {row['floor_ms']:.2f} | {100 * row['floor_fraction']:.0f} % | "
                     f"{row.get('scaling', float('nan')):.2f}x | {row['top1'] or ''} |")
    int8 = {n: r for n, r in results["models"].items() if r["mode"] == "int8" and "cosine_mean" in r}
    if int8:
        t = str(threads[0])
        lines += ["", f"## int8 paths (same network, {results['num_check']} held-out photographs)",
                  "", f"| model | {t} thr ms | x our fp32 | XNNPACK partitions | float tensors | "
                  "logit cosine mean (min) | top-1 agreement |", "|---|---|---|---|---|---|---|"]
        for name, row in int8.items():
            fp32 = results["models"].get(f"swiftformer_{row['variant'].lower()}_fp32")
            ratio = (f"{row['latency'][t]['median_ms'] / fp32['latency'][t]['median_ms']:.3f}"
                     if fp32 else "")
            lines.append(f"| {name} | {row['latency'][t]['median_ms']:.2f} | {ratio} | "
                         f"{row['partitions']} | {row['float_tensors']} | {row['cosine_mean']:.5f} "
                         f"({row['cosine_min']:.5f}) | {100 * row['top1_agreement']:.1f} % |")
    if results["comparisons"]:
        lines += ["", "## Against the other paths (median ratios, same run; ~ where the "
                  "10th-90th percentile ranges overlap, so the ratio is within the noise)", "",
                  "| variant | precision | peer | threads | ours ms | peer ms | ratio |",
                  "|---|---|---|---|---|---|---|"]
        for c in results["comparisons"]:
            verdict = " ~" if c["within_noise"] else (" (we lose)" if c["ratio"] > 1 else "")
            lines.append(f"| {c['variant']} | {c['precision']} | {c['peer']} | {c['threads']} | "
                         f"{c['ours_ms']:.2f} | {c['peer_ms']:.2f} | {c['ratio']:.3f}{verdict} |")
    if results.get("keras_vs_pytorch"):
        kvp = results["keras_vs_pytorch"]
        lines += ["", f"## Keras against PyTorch eager ({kvp['variant']}, {kvp['threads']} threads, "
                  f"each framework in turn, PyTorch's OpenMP threads set to sleep between calls)", ""]
        for key, table in kvp.items():
            if isinstance(table, dict):
                base = table["pytorch_eager"]["median"]
                lines.append(f"- {key}: " + "; ".join(
                    f"{name} {row['median']:.2f} {row['unit']} (x{row['median'] / base:.2f})"
                    + (" ~" if row["max"] > 1.3 * row["min"] else "")
                    for name, row in table.items()))
    lines += arm_report_lines(results)
    if results["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in results["notes"]]
    from swiftformer_tf.io_utils import write_file
    write_file(os.path.join(out, "report.md"), "\n".join(lines) + "\n")


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
        if row["family"] in LINE_FAMILIES and row["top1"] is not None:
            lines.setdefault((row["family"], row["mode"]), []).append((ms[name], row["top1"], row["variant"]))
    styles = {"none": ("o", "fp32"), "fp16": ("^", "fp16"), "dynamic": ("s", "dynamic range"),
              "int8": ("D", "full int8")}
    for (family, mode), points in sorted(lines.items()):
        points.sort(key=lambda p: p[1])
        marker, label = styles.get(mode, ("o", mode))
        colour, linestyle, prefix = LINE_FAMILIES[family]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, color=colour,
                linestyle=linestyle, label=prefix + label)
        if family == "swiftformer" and mode == "int8":
            for x, y, variant in points:
                ax.annotate(variant, (x, y), fontsize=8, textcoords="offset points",
                            xytext=(-6, 6), ha="right")
    others = {}
    for name, row in models.items():
        if row["family"] not in LINE_FAMILIES and row["top1"] is not None:
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


def compare(models, times, threads, variants):
    """Our fp32 and int8 against each peer path of the same variant and precision."""
    comparisons = []
    for variant in variants:
        for precision, peer_name, label in PEER_PAIRS:
            ours = models.get(f"swiftformer_{variant.lower()}_{precision}")
            peer = models.get(peer_name.format(variant.lower()))
            if not (ours and peer):
                continue
            for t in threads:
                a, b = times[(ours["path"], t)], times[(peer["path"], t)]
                comparisons.append({
                    "variant": variant, "precision": precision, "peer": label, "threads": t,
                    "ours_ms": statistics.median(a), "peer_ms": statistics.median(b),
                    "ratio": statistics.median(a) / statistics.median(b),
                    "within_noise": noise.overlaps(a, b)})
    return comparisons


def keras_against_pytorch(args, notes):
    if "torch" in args.skip:
        notes.append("Keras against PyTorch: skipped (--skip torch)")
        return None
    log("Keras against PyTorch eager")
    kvp_json = os.path.join(args.out, "keras_vs_pytorch.json")
    command = [sys.executable, os.path.join(HERE, "keras_vs_pytorch.py"),
               "--variant", args.variants[0], "--threads", str(max(args.threads)),
               "--rounds", "3" if args.quick else "5", "--json", kvp_json]
    # PyTorch's OpenMP workers otherwise spin after each call and take the cores from the
    # TensorFlow call that follows (and TensorFlow's from PyTorch's)
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        notes.append(f"Keras against PyTorch: failed ({result.stderr.strip()[-300:]})")
        return None
    with open(kvp_json) as f:
        return json.load(f)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    folder = os.path.join(args.out, "models")
    os.makedirs(folder, exist_ok=True)
    from swiftformer_tf.io_utils import import_tensorflow_quietly, write_json
    import_tensorflow_quietly()
    from swiftformer_tf.imagenet import normalize
    from swiftformer_tf.export.calibration import ImageSource
    from swiftformer_tf.runtime.interpreter import interleaved_latency, interpreter_class
    started = time.time()
    guard = noise.NoiseGuard()
    guard.sample("before the run")
    notes = []
    photos = ImageSource("builtin", (args.input_size, args.input_size))
    calibration = [normalize(x) for x in photos.calibration(args.num_calibration)]
    models, keras_models = build_swiftformer(args, folder, calibration)
    models.update(build_peers(args, folder, keras_models, calibration, models, notes))
    models.update(build_zoo(args, folder, notes))
    for row in models.values():
        if "top1" not in row:
            row["top1"] = VARIANTS[row["variant"]].top1 if row["variant"] else None
    log(f"delegation and logit cosines on {args.num_check} held-out photographs")
    check_images = [normalize(x) for x in photos.check(args.num_check)]
    graph_facts(models, check_images)
    counted = arm_instructions(args, models, check_images[0], notes)
    swiftformers = [row["path"] for row in models.values() if row["family"] == "swiftformer"]
    shapes = floor.probe_shapes(swiftformers)
    log(f"measuring GEMM rates ({len(shapes)} shapes, fp32 and int8)")
    rates = floor.gemm_rates(shapes)
    guard.sample("before timing")
    log(f"timing {len(models)} models x {len(args.threads)} thread counts, interleaved")
    paths = [m["path"] for m in models.values()]
    times = interleaved_latency(paths, args.threads, args.runs, warmup=5)
    guard.sample("after timing")
    noisy = guard.check_spreads(times, label=lambda key: f"{os.path.basename(key[0])} @{key[1]}")
    for name, row in models.items():
        row["latency"] = {}
        for t in args.threads:
            values = times[(row["path"], t)]
            p10, median, p90 = noise.quantiles(values)
            row["latency"][str(t)] = {"median_ms": median, "p10_ms": p10, "p90_ms": p90,
                                      "min_ms": min(values), "max_ms": max(values),
                                      "runs": len(values), "noisy": (row["path"], t) in noisy}
        row["gmacs"] = floor.count_macs(row["path"]) / 1e9
        if len(args.threads) > 1:
            row["scaling"] = (row["latency"][str(args.threads[0])]["median_ms"] /
                              row["latency"][str(args.threads[-1])]["median_ms"])
    notes += floor.apply_floor(models, rates, str(args.threads[0]))
    slower = [n for n, r in models.items() if r.get("scaling", 2) < 1]
    if slower:
        guard.warnings.append(f"{len(slower)} models ran slower on {args.threads[-1]} threads than "
                              f"on {args.threads[0]} ({', '.join(slower[:4])}"
                              f"{' ...' if len(slower) > 4 else ''}): other load took the cores")
    comparisons = compare(models, times, args.threads, args.variants)
    keras_vs_pytorch = keras_against_pytorch(args, notes)
    machine = f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores".strip()
    results = {"machine": machine, "date": time.strftime("%Y-%m-%d %H:%M"),
               "command": "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "runtime": interpreter_class()[1], "threads": args.threads, "runs": args.runs,
               "num_check": args.num_check, "gemm_rates": rates, "models": models,
               "comparisons": comparisons, "keras_vs_pytorch": keras_vs_pytorch,
               "input_size": args.input_size, "arm_instructions": counted,
               "arm_comparisons": compare_arm(counted, args.arm_variants),
               "noise_warnings": guard.warnings, "other_load": guard.samples, "notes": notes,
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
