#!/usr/bin/env python3
"""Host latency of .tflite models with the LiteRT interpreter (XNNPACK), interleaved.

    swiftformer-benchmark model_a.tflite model_b.tflite --threads 1 2 --runs 50

Runs are interleaved A B A B so that both models see the same machine; the table gives
min / median / max per model and thread count, and each model's median ratio to the first.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys


from swiftformer_tf.io_utils import number, positive_int


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="swiftformer-benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help=".tflite files; ratios are to the first")
    p.add_argument("--threads", type=positive_int, nargs="+", default=[1, 2])
    p.add_argument("--runs", type=positive_int, default=50,
                   help="timed runs per model and thread count")
    p.add_argument("--warmup", type=number(minimum=0, whole=True), default=5)
    p.add_argument("--csv", help="also write the table as CSV")
    args = p.parse_args(argv)
    return args


def benchmark(args):
    from tqdm import tqdm

    from swiftformer_tf.io_utils import atomic_output, check_writable
    from swiftformer_tf.runtime.interpreter import interleaved_latency, interpreter_class
    if args.csv:
        check_writable(args.csv)
    for path in args.models:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
    times = interleaved_latency(args.models, args.threads, args.runs, args.warmup,
                                progress=lambda r: tqdm(r, desc="rounds", unit="round"))
    rows = []
    for count in args.threads:
        base = statistics.median(times[(args.models[0], count)])
        for path in args.models:
            t = times[(path, count)]
            rows.append({"model": path, "threads": count, "runs": len(t),
                         "min_ms": round(min(t), 3), "median_ms": round(statistics.median(t), 3),
                         "max_ms": round(max(t), 3),
                         "ratio_to_first": round(statistics.median(t) / base, 3)})
    print(f"runtime: {interpreter_class()[1]} (XNNPACK), {args.runs} runs each, interleaved")
    width = max(len(r["model"]) for r in rows)
    print(f"{'model':<{width}}  threads  min ms  median ms  max ms  ratio")
    for r in rows:
        print(f"{r['model']:<{width}}  {r['threads']:>7}  {r['min_ms']:>6.2f}  "
              f"{r['median_ms']:>9.2f}  {r['max_ms']:>6.2f}  {r['ratio_to_first']:>5.3f}")
    if args.csv:
        with atomic_output(args.csv) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


def main(argv=None):
    from swiftformer_tf.io_utils import run_command
    return run_command("swiftformer-benchmark", lambda a: benchmark(parse_args(a)), argv)


if __name__ == "__main__":
    sys.exit(main())
