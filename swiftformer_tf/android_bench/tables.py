"""results.json -> results.csv, results.md and PNG plots (for swiftformer-android-bench and
swiftformer-android-report)."""

from __future__ import annotations

import csv
import io
import json
import os
import re

CSV_FIELDS = ["model", "config", "status", "reason", "device_model", "soc", "android_sdk", "abi",
              "model_size_mb", "init_ms", "first_ms", "warmup_avg_ms", "avg_ms", "min_ms",
              "max_ms", "std_ms", "runs", "peak_memory_mb", "delegate", "delegate_status",
              "partitions", "nodes_delegated", "nodes_total", "fallback_ops", "marks", "tool",
              "command", "delegate_note", "guest_instructions", "cosine_vs_host",
              "max_rel_diff_vs_host", "top1_agreement_vs_host"]


ROW_KEYS = ("model", "config", "status")
EMULATED = "emulated-arm"  # rows of the ARM emulator: instruction counts, no latency


def is_emulated(row) -> bool:
    return EMULATED in (row.get("marks") or [])


def load_results(folder) -> dict:
    """results.json of ``folder``, checked: a damaged file or an incomplete row is a
    ``ValueError`` naming it, not a traceback in the middle of a table."""
    path = os.path.join(folder, "results.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no results here")
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: damaged ({err})") from None
    if not isinstance(results, dict) or not isinstance(results.get("rows"), list):
        raise ValueError(f"{path}: not a results file (no list of rows)")
    if not isinstance(results.get("device") or {}, dict):
        raise ValueError(f"{path}: 'device' is not an object")
    for index, row in enumerate(results["rows"]):
        missing = [k for k in ROW_KEYS if not isinstance(row, dict) or k not in row]
        if not missing and row["status"] == "ok" and not is_emulated(row) and not isinstance(
                row.get("median_ms", row.get("avg_ms")), (int, float)):
            missing = ["median_ms"]
        if missing:
            raise ValueError(f"{path}: row {index} lacks {', '.join(missing)}")
    return results


def save_results(folder, results: dict):
    """Writes results.json, results.csv and results.md, each atomically."""
    from swiftformer_tf.io_utils import write_file
    os.makedirs(folder, exist_ok=True)
    write_file(os.path.join(folder, "results.json"), json.dumps(results, indent=2))
    rows = results["rows"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        flat = dict(row)
        flat["fallback_ops"] = " ".join(row.get("fallback_ops") or [])
        flat["marks"] = " ".join(row.get("marks") or [])
        writer.writerow(flat)
    write_file(os.path.join(folder, "results.csv"), buffer.getvalue())
    write_file(os.path.join(folder, "results.md"), markdown_table(results))


def cell(row) -> str:
    """A table cell: the median in ms, with the marks that qualify it."""
    if row["status"] != "ok":
        return f"failed: {row.get('reason', '')[:40]}"
    text = f"{row['median_ms']:.2f}" if row.get("median_ms") is not None else f"{row['avg_ms']:.2f}"
    marks = row.get("marks") or []
    return text + (f" ({', '.join(marks)})" if marks else "")


def markdown_table(results: dict) -> str:
    emulated = [r for r in results["rows"] if is_emulated(r)]
    rows = [r for r in results["rows"] if not is_emulated(r)]
    text = _latency_table(results, rows) if rows or not emulated else ""
    if emulated:
        text += ("\n" if text else "") + _instruction_table(emulated)
    return text


def _instruction_table(rows) -> str:
    """The emulated ARM rows: guest instructions per inference and the answer against the
    x86 interpreter's on the same file and input."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    configs = list(dict.fromkeys(r["config"] for r in rows))
    by_key = {(r["model"], r["config"]): r for r in rows}

    def arm_cell(row):
        if row["status"] != "ok":
            return f"failed: {row.get('reason', '')[:60]}"
        count = row.get("guest_instructions")
        text = f"{count / 1e6:.2f} M" if count is not None else "not counted"
        text += f", cos {row['cosine_vs_host']:.5f}"
        return text + (" **MISMATCH**" if "mismatch" in row.get("marks", []) else "")

    lines = ["# Phone CPU kernels, emulated: guest instructions per inference, cosine vs x86",
             "", "| model | " + " | ".join(configs) + " |", "|---|" + "---|" * len(configs)]
    for model in models:
        lines.append(f"| {model} | " + " | ".join(
            arm_cell(by_key[(model, c)]) if (model, c) in by_key else "" for c in configs) + " |")
    lines += ["", "`emulated-arm`: LiteRT's aarch64 runtime (XNNPACK's ARM kernels) under QEMU "
              "user mode on this machine. Instructions are not time: compare counts only on "
              "the same CPU (int8 against fp32, one export against another). `cos` is the "
              "cosine of the output against the x86 interpreter's on the same file and input; "
              "`MISMATCH`: the emulated answer disagrees with it (emulator or kernels wrong)."]
    return "\n".join(lines) + "\n"


def _latency_table(results: dict, rows) -> str:
    models = list(dict.fromkeys(r["model"] for r in rows))
    configs = list(dict.fromkeys(r["config"] for r in rows))
    by_key = {(r["model"], r["config"]): r for r in rows}
    device = results.get("device") or {}
    title = ("host: " + device.get("device_model", "this machine")) if results.get("host") else \
        f"{device.get('device_model', '?')} ({device.get('soc', '?')}, Android SDK " \
        f"{device.get('android_sdk', '?')}, {device.get('abi', '?')})"
    lines = [f"# Latency, median ms: {title}", "",
             "| model | " + " | ".join(configs) + " |", "|---|" + "---|" * len(configs)]
    for model in models:
        cells = [cell(by_key[(model, c)]) if (model, c) in by_key else "" for c in configs]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "Marks: `partial` = the delegate ran only part of the graph (the rest on the "
              "CPU; the ops it rejected are in results.csv); `cpu-fallback` = the delegate ran "
              "none of it, or the log shows no sign it ran, so the number is a CPU number; "
              "`nnapi-deprecated` = NNAPI on Android 15+; `npu-full` / `npu-partial` = the NPU "
              "ran all / part of the graph (on a phone, proved by a run that forbids the CPU; on "
              "the host, read from the compiled model); "
              "`not-precompiled` = the model was not compiled ahead of time for an NPU."]
    if any("software-gpu" in (r.get("marks") or []) for r in rows):
        lines += ["", "`software-gpu`: LiteRT's GPU accelerator on a software Vulkan driver "
                  "(Mesa lavapipe, on this machine's CPU). Its delegation and numerics are "
                  "real; its latency means nothing for any GPU, a phone's least of all."]
    if any("host-openvino-cpu" in (r.get("marks") or []) for r in rows):
        lines += ["", "`host-openvino-cpu`: LiteRT's NPU path on this machine, Intel OpenVINO's "
                  "dispatch library on its CPU graph backend. What the NPU compiler took is "
                  "real; the latency is a CPU's, not an NPU's."]
    return "\n".join(lines) + "\n"


def _variant_of(model_name):
    match = re.search(r"swiftformer[_-]?(xs|s|l1|l3)(?![a-z0-9])", model_name.lower())
    return match.group(1).upper() if match else None


def make_plots(folder, results: dict) -> list:
    """latency_per_config.png and latency_vs_top1.png; returns the written paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from swiftformer_tf.io_utils import save_figure
    from swiftformer_tf.variants import VARIANTS
    # The latency of a software GPU or of the host's NPU path (a CPU) means nothing, and
    # emulated ARM rows have none: such rows stay in the tables, marked, but are not plotted.
    rows = [r for r in results["rows"] if r["status"] == "ok"
            and not {"software-gpu", "host-openvino-cpu", EMULATED} & set(r.get("marks") or [])]
    if not rows:
        return []
    models = list(dict.fromkeys(r["model"] for r in rows))
    configs = list(dict.fromkeys(r["config"] for r in rows))
    written = []
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(models) * max(1, len(configs)) / 2), 4.5))
    width = 0.8 / max(1, len(configs))
    for j, config in enumerate(configs):
        values = []
        for model in models:
            row = next((r for r in rows if r["model"] == model and r["config"] == config), None)
            values.append(row["median_ms"] if row else np.nan)
        bars = ax.bar(np.arange(len(models)) + j * width, values, width, label=config)
        for bar, model in zip(bars, models):
            row = next((r for r in rows if r["model"] == model and r["config"] == config), None)
            if row and set(row.get("marks") or []) - {"npu-full"}:
                ax.annotate("*", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom")
    ax.set_xticks(np.arange(len(models)) + 0.4 - width / 2)
    ax.set_xticklabels(models, rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("median latency (ms)")
    ax.set_title("Latency per configuration\n(* = partial, cpu-fallback, not-precompiled or "
                 "nnapi-deprecated; software-GPU and host NPU rows not plotted)", fontsize=10)
    ax.legend(fontsize=8)
    written.append(save_figure(fig, os.path.join(folder, "latency_per_config.png")))

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    plotted = False
    for config in configs:
        points = []
        for r in rows:
            variant = _variant_of(r["model"])
            if r["config"] == config and variant and VARIANTS[variant].top1:
                points.append((r["median_ms"], VARIANTS[variant].top1, r["model"]))
        if points:
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=config)
            for x, y, name in points:
                ax.annotate(os.path.basename(name).replace(".tflite", ""), (x, y), fontsize=7,
                            textcoords="offset points", xytext=(4, 4))
            plotted = True
    if plotted:
        ax.set_xlabel("median latency (ms)")
        ax.set_ylabel("ImageNet top-1 (%), paper")
        ax.set_title("Latency against accuracy (paper's top-1)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        written.append(save_figure(fig, os.path.join(folder, "latency_vs_top1.png")))
    else:
        plt.close(fig)
    return written
