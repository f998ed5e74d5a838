#!/usr/bin/env python3
"""Top-1 / top-5 with the official evaluation protocol (bicubic resize of the shorter side
to 256, centre crop 224, ImageNet mean / std) for a .keras model, a PyTorch checkpoint or a
.tflite model, on the same data path, so the TFLite accuracy drop is measured fairly.

    swiftformer-evaluate --model swiftformer_xs.keras --data tfds:imagenet2012:validation
    swiftformer-evaluate --model swiftformer_xs_int8.tflite --data folder:/data/val
    swiftformer-evaluate --model imagenet:L1 --data tfds:imagenet2012:validation
"""

from __future__ import annotations

import argparse
import sys


from swiftformer_tf.io_utils import positive_int


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="swiftformer-evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help=".keras, checkpoint (.pth/.bin/.safetensors), .tflite, or imagenet:VARIANT "
                        "(the official ImageNet-1k weights, downloaded once and verified)")
    p.add_argument("--data", required=True,
                   help="a data source: folder:DIR (its val/ if it has one, else all of it), "
                        "tfds:NAME[:SPLIT] (default split: validation) or synthetic[:N]")
    p.add_argument("--data-dir", help="TFDS data dir")
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument("--image-size", type=positive_int, default=224)
    p.add_argument("--limit", type=positive_int, help="evaluate only the first N images")
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--bad-images", choices=["stop", "skip"], default="stop",
                   help="an image file that cannot be decoded: stop naming it (default), or "
                        "check every file first and leave such files out (named)")
    return p.parse_args(argv)


def evaluate(args):
    from swiftformer_tf.io_utils import import_tensorflow_quietly
    import_tensorflow_quietly()
    from tqdm import tqdm

    from swiftformer_tf.io_utils import check_writable, write_json
    from swiftformer_tf.training.evaluation import evaluate as evaluate_model

    if args.json:
        check_writable(args.json)  # before the evaluation, not after it
    result = evaluate_model(
        args.model, args.data, data_dir=args.data_dir, batch_size=args.batch_size,
        image_size=args.image_size, limit=args.limit, bad_images=args.bad_images,
        progress=lambda it, total, desc: tqdm(
            it, total=total, desc=desc, unit="batch" if desc == "evaluating" else "img"))
    print(f"{args.model}: top-1 {100 * result['top1']:.2f}%, top-5 {100 * result['top5']:.2f}% "
          f"on {result['images']} images ({args.data})")
    if args.json:
        write_json(args.json, result)
    return 0


def main(argv=None):
    from swiftformer_tf.io_utils import run_command
    return run_command("swiftformer-evaluate", lambda a: evaluate(parse_args(a)), argv)


if __name__ == "__main__":
    sys.exit(main())
