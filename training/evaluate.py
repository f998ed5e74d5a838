#!/usr/bin/env python3
"""Top-1 / top-5 with the official evaluation protocol (bicubic resize of the shorter side
to 256, centre crop 224, ImageNet mean / std) for a .keras model, a PyTorch checkpoint or a
.tflite model, on the same data path, so the TFLite accuracy drop is measured fairly.

    python training/evaluate.py --model swiftformer_xs.keras --data tfds:imagenet2012:validation
    python training/evaluate.py --model swiftformer_xs_int8.tflite --data folder:/data/val
    python training/evaluate.py --model imagenet:L1 --data tfds:imagenet2012:validation
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from swiftformer_tf.io_utils import positive_int  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="evaluate.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help=".keras, checkpoint (.pth/.bin/.safetensors), .tflite, or imagenet:VARIANT "
                        "(the official ImageNet-1k weights, downloaded once and verified)")
    p.add_argument("--data", required=True,
                   help="tfds:NAME[:SPLIT] (default split: validation), folder:DIR or synthetic[:N]")
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
    import numpy as np
    from tqdm import tqdm

    from swiftformer_tf import load
    from swiftformer_tf.io_utils import check_writable, write_json
    from swiftformer_tf.training import data as data_lib
    from swiftformer_tf.training.trainer import evaluate_model

    if args.json:
        check_writable(args.json)  # before the evaluation, not after it
    if args.model.endswith(".tflite"):
        if not os.path.isfile(args.model):
            raise ValueError(f"{args.model}: no such file")
        from swiftformer_tf.lite.runtime import TFLiteRunner
        runner = TFLiteRunner(args.model)
        preprocess_in_graph = False
        model_classes = int(runner.output["shape"][-1])

        def predict(images):
            return np.concatenate([runner(image[None]) for image in np.asarray(images)])
    else:
        model = load(args.model)
        preprocess_in_graph = getattr(model, "include_preprocessing", False)
        model_classes = model.num_classes if model.include_top else None

        def predict(images):
            return model(images, training=False)
    kind, _, rest = args.data.partition(":")
    if kind == "tfds":
        name, _, split = rest.partition(":")
        evaluation = data_lib.tfds_split(name, split or "validation", args.data_dir)
    elif kind == "folder":  # all of it (its val/ if it has one), not a training split
        evaluation = data_lib.folder_eval_split(os.path.expanduser(rest))
    else:
        evaluation = data_lib.resolve(args.data, args.data_dir)[1]
    if model_classes != evaluation.num_classes:
        raise ValueError(f"{args.model} has {model_classes or 'no'} output classes, "
                         f"{args.data} has {evaluation.num_classes}: the labels would not "
                         f"match, so the score would mean nothing")
    checking = lambda it: tqdm(it, total=len(evaluation.paths or ()),  # noqa: E731
                               desc="checking image files", unit="img")
    if args.bad_images == "skip":
        evaluation = data_lib.without_unreadable(evaluation, checking)
    dataset = data_lib.eval_dataset(evaluation, args.batch_size, args.image_size,
                                    normalize=not preprocess_in_graph)
    if args.limit:
        dataset = dataset.unbatch().take(args.limit).batch(args.batch_size)
    total = -(-min(evaluation.size, args.limit or evaluation.size) // args.batch_size)
    with data_lib.naming_unreadable(evaluation, progress=checking):
        result = evaluate_model(predict, dataset,
                                progress=lambda d: tqdm(d, total=total, desc="evaluating",
                                                        unit="batch"))
    result.update(model=args.model, data=args.data)
    print(f"{args.model}: top-1 {100 * result['top1']:.2f}%, top-5 {100 * result['top5']:.2f}% "
          f"on {result['images']} images ({args.data})")
    if args.json:
        write_json(args.json, result)
    return 0


def main(argv=None):
    from swiftformer_tf.io_utils import run_command
    return run_command("evaluate.py", lambda a: evaluate(parse_args(a)), argv)


if __name__ == "__main__":
    sys.exit(main())
