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
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="evaluate.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help=".keras, checkpoint (.pth/.bin/.safetensors), .tflite, or imagenet:VARIANT "
                        "(the official ImageNet-1k weights, downloaded once and verified)")
    p.add_argument("--data", required=True,
                   help="tfds:NAME[:SPLIT] (default split: validation), folder:DIR or synthetic[:N]")
    p.add_argument("--data-dir", help="TFDS data dir")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--json", help="also write the result here")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from swiftformer_tf.io_utils import import_tensorflow_quietly
    import_tensorflow_quietly()
    import keras
    import numpy as np
    from tqdm import tqdm

    from swiftformer_tf import CheckpointError, build_from_checkpoint, pretrained
    from swiftformer_tf.training import data as data_lib
    from swiftformer_tf.training.trainer import TrainingError, evaluate_model

    def fail(message):
        print(f"evaluate.py: error: {message}", file=sys.stderr)
        return 2

    try:
        model_path = pretrained.resolve(args.model)
        if not os.path.exists(model_path):
            raise ValueError(f"{model_path}: no such file")
        kind, _, rest = args.data.partition(":")
        if kind == "tfds":
            name, _, split = rest.partition(":")
            evaluation = data_lib.tfds_split(name, split or "validation", args.data_dir)
        else:
            evaluation = data_lib.resolve(args.data, args.data_dir)[1]
        if model_path.endswith(".tflite"):
            from swiftformer_tf.lite.runtime import TFLiteRunner
            runner = TFLiteRunner(model_path)
            preprocess_in_graph = False

            def predict(images):
                return np.concatenate([runner(image[None]) for image in np.asarray(images)])
        else:
            if model_path.endswith(".keras"):
                model = keras.models.load_model(model_path, compile=False)
            else:
                model = build_from_checkpoint(model_path)[0]
            preprocess_in_graph = getattr(model, "include_preprocessing", False)

            def predict(images):
                return model(images, training=False)
        dataset = data_lib.eval_dataset(evaluation, args.batch_size, args.image_size,
                                        normalize=not preprocess_in_graph)
        if args.limit:
            dataset = dataset.unbatch().take(args.limit).batch(args.batch_size)
        total = -(-min(evaluation.size, args.limit or evaluation.size) // args.batch_size)
        result = evaluate_model(predict, dataset,
                                progress=lambda d: tqdm(d, total=total, desc="evaluating",
                                                        unit="batch"))
    except (CheckpointError, data_lib.DataError, TrainingError, ValueError) as err:
        return fail(str(err))
    result.update(model=args.model, data=args.data)
    print(f"{args.model}: top-1 {100 * result['top1']:.2f}%, top-5 {100 * result['top5']:.2f}% "
          f"on {result['images']} images ({args.data})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
