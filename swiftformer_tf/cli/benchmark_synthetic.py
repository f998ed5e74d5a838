#!/usr/bin/env python3
"""Proof run: SwiftFormer-XS learns the built-in synthetic shapes-and-textures dataset
(10 classes, generated in code) on this machine. Writes the learning curve, the final
accuracy and the wall time; the trained model is what the TFLite int8 fidelity check uses.

    swiftformer-benchmark-synthetic --output runs/synthetic_xs
"""

import argparse
import json
import os
import subprocess
import sys
import time

# The official XS recipe (no RandAugment, colour jitter 0.4, random erasing 0.25, label
# smoothing 0.1, AdamW 2e-3, AGC 0.01, no mixup), shortened to a 14-epoch schedule, with crops
# that keep most of each 80 px image and an EMA horizon (~100 steps) that suits ~1,300 steps.
RECIPE = ["--variant", "XS", "--data", "synthetic:6000", "--epochs", "14", "--batch-size", "64",
          "--image-size", "64", "--warmup-epochs", "1", "--crop-scale-min", "0.35",
          "--ema-decay", "0.99", "--seed", "0", "--save-every", "0"]


def main(argv=None):
    from swiftformer_tf.io_utils import run_command
    return run_command("swiftformer-benchmark-synthetic", benchmark, argv)


def benchmark(argv):
    p = argparse.ArgumentParser(prog="swiftformer-benchmark-synthetic", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="runs/synthetic_xs")
    p.add_argument("--jit", action="store_true")
    args = p.parse_args(argv)
    command = [sys.executable, "-m", "swiftformer_tf.cli.train", *RECIPE,
               "--output", args.output] + (["--jit"] if args.jit else [])
    print("swiftformer-train " + " ".join(command[3:]))
    start = time.time()
    subprocess.run(command, check=True)
    wall = time.time() - start
    import csv

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from swiftformer_tf.io_utils import save_figure, write_json
    with open(os.path.join(args.output, "log.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["val_top1"]]
    with open(os.path.join(args.output, "summary.json")) as f:
        summary = json.load(f)
    epochs = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [100 * float(r["val_top1"]) for r in rows], "o-", label="val top-1 (%)")
    ax2 = ax.twinx()
    ax2.plot(epochs, [float(r["train_loss"]) for r in rows], "s--", color="tab:red",
             label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation top-1 (%)")
    ax2.set_ylabel("training loss")
    ax.set_title(f"SwiftFormer-XS on synthetic shapes: {100 * summary['val_top1']:.1f}% "
                 f"in {wall / 60:.1f} min")
    fig.legend(loc="center right")
    save_figure(fig, os.path.join(args.output, "curve.png"))
    result = {"val_top1": summary["val_top1"], "ema_val_top1": summary["ema_val_top1"],
              "wall_minutes": round(wall / 60, 2), "train_images_per_second":
              summary["images_per_second"], "curve": [
                  {"epoch": e, "val_top1": float(r["val_top1"]), "train_loss": float(r["train_loss"])}
                  for e, r in zip(epochs, rows)], "command": "swiftformer-train " + " ".join(command[3:])}
    write_json(os.path.join(args.output, "benchmark.json"), result)
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}, indent=2))
    return 0 if summary["val_top1"] >= 0.9 and wall <= 20 * 60 else 1


if __name__ == "__main__":
    sys.exit(main())
