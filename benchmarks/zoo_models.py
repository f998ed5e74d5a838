#!/usr/bin/env python3
"""Rival models for the side-by-side benchmark, as fp32 (and int8) .tflite files with
random weights: MobileNetV2 1.0 from keras.applications (Keras 3), and EfficientFormer-L1
and MobileViT-v2 1.0 from keras_cv_attention_models (kecam), which needs Keras 2: run that
part in its own process with TF_USE_LEGACY_KERAS=1 (benchmarks/run.py does).

    python benchmarks/zoo_models.py mobilenet_v2 --out out/zoo [--int8]
    TF_USE_LEGACY_KERAS=1 python benchmarks/zoo_models.py kecam --out out/zoo
"""

import argparse
import json
import os
import sys


# name -> (kecam module, constructor, input size, paper top-1)
KECAM_MODELS = {
    "efficientformer_l1": ("efficientformer", "EfficientFormerL1", 224, 79.2),
    "mobilevit_v2_1.0": ("mobilevit", "MobileViT_V2_100", 256, 78.1),
}


def convert_concrete(tf, fn, size, path, representative=None):
    spec = tf.TensorSpec((1, size, size, 3), tf.float32)
    concrete = tf.function(fn, input_signature=[spec]).get_concrete_function()
    from swiftformer_tf.io_utils import write_file
    from swiftformer_tf.export.converter import configure
    converter = configure(tf.lite.TFLiteConverter.from_concrete_functions([concrete]),
                          "none" if representative is None else "int8", representative)
    write_file(path, converter.convert())


def mobilenet_v2(out, int8, calibration):
    import keras
    import numpy as np
    import tensorflow as tf
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    written = {}
    path = os.path.join(out, "mobilenet_v2_1.0_fp32.tflite")
    convert_concrete(tf, lambda x: model(x, training=False), 224, path)
    written["mobilenet_v2_1.0_fp32"] = path
    if int8:
        from swiftformer_tf.export.calibration import ImageSource
        images = [x / 127.5 - 1.0 for x in ImageSource("builtin", (224, 224)).calibration(calibration)]

        def representative():
            for x in images:
                yield [np.asarray(x, np.float32)[None]]
        path = os.path.join(out, "mobilenet_v2_1.0_int8.tflite")
        convert_concrete(tf, lambda x: model(x, training=False), 224, path, representative)
        written["mobilenet_v2_1.0_int8"] = path
    return written


def kecam(out):
    import importlib

    import tensorflow as tf
    written, failed = {}, {}
    for name, (module, constructor, size, _) in KECAM_MODELS.items():
        try:
            family = importlib.import_module(f"keras_cv_attention_models.{module}")
            model = getattr(family, constructor)(pretrained=None, input_shape=(size, size, 3))
            path = os.path.join(out, f"{name}_fp32.tflite")
            convert_concrete(tf, lambda x, m=model: m(x, training=False), size, path)
            written[f"{name}_fp32"] = path
        except Exception as err:  # report, do not hide: the caller writes it in the report
            failed[name] = f"{type(err).__name__}: {str(err)[:200]}"
    return written, failed


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", choices=["mobilenet_v2", "kecam"])
    p.add_argument("--out", required=True)
    p.add_argument("--int8", action="store_true")
    p.add_argument("--calibration", type=int, default=128)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.which == "mobilenet_v2":
        result = {"written": mobilenet_v2(args.out, args.int8, args.calibration), "failed": {}}
    else:
        written, failed = kecam(args.out)
        result = {"written": written, "failed": failed}
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
