#!/usr/bin/env python3
"""On-device latency of TFLite models over adb on CPU, GPU and NNAPI, with TFLite's
benchmark_model or LiteRT's benchmark_litert_model (told apart by their --help), or the
same matrix on this machine with --host (GPU rows on LiteRT's GPU accelerator, a software
one after swiftformer-setup-gpu), with tables and plots.

    swiftformer-android-bench --models out/*.tflite --configs cpu:1,cpu:4,gpu,gpu:fp16,nnapi \\
        --benchmark-binary android_aarch64_benchmark_model --out results/
    swiftformer-android-bench --host --models out/*.tflite --out results-host/
    swiftformer-android-bench --host --models out/*.tflite --configs arm:cortex-a76,arm:i8mm

arm:CPU rows run the phone's CPU kernels on an emulated ARM CPU (swiftformer-setup-arm):
guest instructions and the answer against x86's, in their own table, never as latency.
"""

from __future__ import annotations

import argparse
import os
import sys


from swiftformer_tf.android_bench.configs import parse_configs
from swiftformer_tf.io_utils import number


def cpu_mask(text):
    from swiftformer_tf.android_bench.runner import CPU_MASK_RULE, checked_cpu_mask
    try:
        return checked_cpu_mask(text)
    except ValueError:
        raise argparse.ArgumentTypeError(CPU_MASK_RULE) from None


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="swiftformer-android-bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", required=True, help=".tflite files")
    p.add_argument("--configs", default="cpu:1,cpu:4,gpu,gpu:fp16,nnapi",
                   help="comma-separated: cpu:N, gpu (fp32), gpu:fp16, npu (LiteRT's NPU "
                        "path: a model from swiftformer-compile-npu and benchmark_litert_model), "
                        "nnapi, arm:CPU[:fp16] (--host only: the phone's CPU kernels on an "
                        "emulated ARM CPU, cortex-a53, cortex-a76, i8mm or sme, after "
                        "swiftformer-setup-arm; instruction counts, never latency)")
    p.add_argument("--host", action="store_true", help="run on this machine (LiteRT)")
    p.add_argument("--serial", help="device serial when several are connected")
    p.add_argument("--benchmark-binary", default="android_aarch64_benchmark_model",
                   help="TFLite's benchmark_model or LiteRT's benchmark_litert_model binary "
                        "for the device")
    p.add_argument("--npu-libs", metavar="DIR",
                   help="folder of the NPU dispatch library and the vendor's runtime "
                        "libraries (.so) to push for npu rows (see README)")
    p.add_argument("--runs", type=number(minimum=1, whole=True), default=50)
    p.add_argument("--warmup", type=number(minimum=0, whole=True), default=5)
    p.add_argument("--repeats", type=number(minimum=1, whole=True), default=1,
                   help="tool invocations per row; the table gives the median of their averages")
    p.add_argument("--cpu-mask", type=cpu_mask,
                   help="taskset mask in hex, e.g. f0 for the big cores")
    p.add_argument("--cooldown", type=number(minimum=0), default=0.0,
                   help="seconds to rest between runs")
    p.add_argument("--timeout", type=number(above=0), default=600.0,
                   help="seconds per run before it is declared hung")
    p.add_argument("--op-profiling", action="store_true",
                   help="per-op profile (--enable_op_profiling, or --use_profiler for LiteRT)")
    p.add_argument("--out", default="results")
    p.add_argument("--resume", action="store_true", help="skip rows already in --out")
    args = p.parse_args(argv)
    try:
        args.configs = parse_configs(args.configs)
    except ValueError as err:
        p.error(str(err))
    if not args.host and any(c.backend == "arm" for c in args.configs):
        p.error("arm:CPU configs run on this machine's ARM emulator: add --host (on a phone, "
                "cpu:N runs its own ARM kernels)")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        p.error(f"--out {args.out}: is a file, not a folder")
    return args


def run(args):
    from swiftformer_tf.android_bench.device import Adb
    from swiftformer_tf.android_bench.runner import DeviceRunner, HostRunner, run_matrix
    from swiftformer_tf.android_bench.tables import load_results, make_plots, save_results

    missing = [m for m in args.models if not os.path.isfile(m)]
    if missing:
        raise FileNotFoundError(f"model not found: {', '.join(missing)}")
    if args.host:
        runner = HostRunner(args.runs, args.warmup)
    else:
        adb = Adb()
        adb.select(args.serial)
        runner = DeviceRunner(adb, args.benchmark_binary, args.runs, args.warmup,
                              args.cpu_mask, args.op_profiling, args.timeout, args.cooldown,
                              args.repeats, npu_libs=args.npu_libs)
    info = runner.prepare()
    results = {"host": args.host, "device": info, "rows": []}
    if args.resume and os.path.isfile(os.path.join(args.out, "results.json")):
        try:
            previous = load_results(args.out)
        except ValueError as err:
            raise ValueError(f"--resume: {err}") from None
        if (previous.get("device") or {}).get("serial") == info.get("serial"):
            results["rows"] = previous["rows"]
        else:
            print(f"note: {args.out} holds results of another device; starting afresh")
    run_matrix(runner, args.models, args.configs, results,
               save=lambda r: save_results(args.out, r), resume=args.resume)
    plots = make_plots(args.out, results)
    failed = sum(r["status"] != "ok" for r in results["rows"])
    print(f"wrote {args.out}/results.json, results.csv, results.md"
          + "".join(f", {os.path.basename(p)}" for p in plots)
          + (f"; {failed} row(s) failed" if failed else ""))
    return 0 if failed < len(results["rows"]) else 1


def main(argv=None):
    from swiftformer_tf.io_utils import run_command
    return run_command("swiftformer-android-bench", lambda a: run(parse_args(a)), argv)


if __name__ == "__main__":
    sys.exit(main())
