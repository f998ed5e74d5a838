#!/usr/bin/env python3
"""Train SwiftFormer with the official recipe (AdamW, cosine schedule with warm-up, AGC,
label smoothing, EMA, RandAugment / colour jitter, random erasing, mixup / cutmix, hard
distillation) on tf.distribute, with resumable step checkpoints.

    swiftformer-train --variant XS --data tfds:imagenet2012 --data-dir ~/tensorflow_datasets
    swiftformer-train --variant XS --data folder:/data/my_classes --init SwiftFormer_XS.pth
    swiftformer-train --variant XS --data synthetic --epochs 10 --image-size 64 --output runs/demo

Quantization-aware fine-tuning of a trained model for the int8 export (then
``swiftformer-export --weights DIR/model.keras --quantize int8``):

    swiftformer-train --init runs/demo/model.keras --qat --data synthetic --image-size 64 --output runs/demo_qat
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

if "--deterministic" in sys.argv:  # must precede TensorFlow's import: oneDNN's fused
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"  # kernels are outside its determinism switch

from swiftformer_tf.io_utils import number
from swiftformer_tf.training.cluster import STRATEGIES
from swiftformer_tf.training.recipe import Recipe, qat_recipe, recipe_for
from swiftformer_tf.variants import MAX_CLASSES, VARIANTS, get_config


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="swiftformer-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="XS", help="XS, S, L1, L3 or a JSON config "
                   "('{\"depths\": [...], \"widths\": [...]}')")
    p.add_argument("--data", required=True,
                   help="tfds:NAME[:SPLIT], folder:DIR (class subfolders, or train/ and val/) "
                        "or synthetic[:COUNT] (shapes and textures generated in code)")
    p.add_argument("--data-dir", help="TFDS data dir")
    p.add_argument("--val-split", type=number(minimum=0, below=1), default=0.1,
                   help="validation fraction for a folder without train/ and val/")
    p.add_argument("--strategy", default="auto", choices=STRATEGIES,
                   help="auto: all local GPUs (mirrored) or one device; multiworker: one "
                        "process per machine, the cluster in TF_CONFIG (--batch-size is per "
                        "replica); tpu: a TPU VM or pod")
    p.add_argument("--cluster-timeout", type=number(above=0), default=300.0,
                   help="seconds to wait for every TF_CONFIG worker to join (multiworker)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "mixed_bfloat16", "mixed_float16"])
    p.add_argument("--jit", action="store_true", help="XLA-compile the train step")
    p.add_argument("--teacher", default="none",
                   help="regnety160 (needs --teacher-weights), PATH.keras, or none")
    p.add_argument("--teacher-weights", help="weights file for --teacher regnety160")
    p.add_argument("--init", help="imagenet (the official ImageNet-1k weights of --variant, "
                                  "downloaded once and verified), a checkpoint the converter "
                                  "reads, or .keras; heads are dropped when the class count "
                                  "differs")
    p.add_argument("--qat", action="store_true",
                   help="quantization-aware fine-tuning of the --init model's int8 export "
                        "form, distilled from the --init model's logits; its own defaults: 1 "
                        "epoch at lr 5e-5, no warm-up, AGC or mixing (flags still override)")
    p.add_argument("--qat-calibration", type=number(minimum=1, whole=True), default=256,
                   metavar="N",
                   help="training images (eval transform) that calibrate the QAT ranges")
    p.add_argument("--num-classes", type=number(minimum=1, maximum=MAX_CLASSES, whole=True),
                   help="default: the dataset's")
    p.add_argument("--output", default="runs/swiftformer")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in an --output that holds another run (deletes its files)")
    p.add_argument("--save-every", type=number(minimum=0, whole=True), default=500,
                   help="checkpoint every N steps (0: none between the epochs' ends)")
    p.add_argument("--seed", type=number(minimum=0, whole=True), default=0)
    p.add_argument("--no-augment", action="store_true", help="eval transform only (debugging)")
    p.add_argument("--sync-bn", action="store_true",
                   help="BatchNorm statistics over all replicas (official: per replica)")
    p.add_argument("--deterministic", action="store_true", help="deterministic TF ops")
    p.add_argument("--max-steps", type=number(minimum=1, whole=True),
                   help="stop after this many steps in total")
    p.add_argument("--bad-images", choices=["stop", "skip"], default="stop",
                   help="an image file of a folder dataset that cannot be decoded: stop naming "
                        "it (default), or check every file first and leave such files out "
                        "(named)")
    defaults = Recipe()
    for field in dataclasses.fields(Recipe):
        flag = "--" + field.name.replace("_", "-")
        if field.type in ("bool", bool):
            p.add_argument(flag, type=lambda v: v.lower() in ("1", "true", "yes"), default=None,
                           metavar="true|false", help="(official default per variant)")
        else:
            whole = isinstance(getattr(defaults, field.name), int)
            p.add_argument(flag, type=number(whole=whole), default=None,
                           help="(official default per variant)")
    args = p.parse_args(argv)
    if args.variant.strip().startswith("{"):
        try:
            args.variant = json.loads(args.variant)
            get_config(args.variant)
        except (ValueError, TypeError) as err:
            p.error(f"--variant: not a valid JSON config ({' '.join(str(err).split())[:200]})")
    elif args.variant.upper() not in VARIANTS:
        p.error(f"--variant must be one of {', '.join(VARIANTS)} or a JSON config")
    else:
        args.variant = args.variant.upper()
    name = args.variant if isinstance(args.variant, str) else "custom"
    recipe = qat_recipe(name) if args.qat else recipe_for(name)
    if args.qat and not args.init:
        p.error("--qat fine-tunes a trained model: give it with --init MODEL.keras (or a "
                "checkpoint)")
    if args.qat and args.teacher != "none":
        p.error("--qat distils from the --init model; leave --teacher out")
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)
                 if getattr(args, f.name) is not None}
    args.recipe = dataclasses.replace(recipe, **overrides)
    if args.recipe.epochs < 1 or args.recipe.batch_size < 1 or args.recipe.image_size < 16:
        p.error("--epochs and --batch-size must be positive, --image-size at least 16")
    return args


def main(argv=None):
    from swiftformer_tf.training import run
    from swiftformer_tf.io_utils import run_command
    return run_command("swiftformer-train", lambda a: run.train(parse_args(a)), argv)


if __name__ == "__main__":
    sys.exit(main())
