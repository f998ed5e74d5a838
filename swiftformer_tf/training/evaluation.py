"""Top-1 / top-5 of a model on a data source with the official evaluation protocol: a Keras
model, checkpoint or pretrained name (through ``load``) or a ``.tflite`` file (through the
interpreter), as ``swiftformer-evaluate`` runs it."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from swiftformer_tf.errors import DataError
from swiftformer_tf.training import data as data_lib
from swiftformer_tf.training.trainer import evaluate_model


def evaluate(model_source: str, data: str, *, data_dir: Optional[str] = None,
             batch_size: int = 100, image_size: int = 224, limit: Optional[int] = None,
             bad_images: str = "stop", progress=None) -> dict:
    """{"top1", "top5", "images", ...} of ``model_source`` on the data source ``data``
    (its validation part: a folder's ``val/`` or all of it, a TFDS split, synthetic's
    validation images). ``progress(iterable, total, desc)`` wraps the long loops."""
    from swiftformer_tf import load
    progress = progress or (lambda it, total, desc: it)
    if model_source.endswith(".tflite"):
        if not os.path.isfile(model_source):
            raise ValueError(f"{model_source}: no such file")
        from swiftformer_tf.runtime.interpreter import TFLiteRunner
        runner = TFLiteRunner(model_source)
        preprocess_in_graph = False
        model_classes = int(runner.output["shape"][-1])

        def predict(images):
            return np.concatenate([runner(image[None]) for image in np.asarray(images)])
    else:
        model = load(model_source)
        preprocess_in_graph = getattr(model, "include_preprocessing", False)
        model_classes = model.num_classes if model.include_top else None

        def predict(images):
            return model(images, training=False)
    evaluation = data_lib.evaluation_split(data, data_dir)
    if model_classes != evaluation.num_classes:
        raise DataError(f"{model_source} has {model_classes or 'no'} output classes, "
                        f"{data} has {evaluation.num_classes}: the labels would not "
                        f"match, so the score would mean nothing")

    def checking(it):
        return progress(it, len(evaluation.paths or ()), "checking image files")
    if bad_images == "skip":
        evaluation = data_lib.without_unreadable(evaluation, checking)
    dataset = data_lib.eval_dataset(evaluation, batch_size, image_size,
                                    normalize=not preprocess_in_graph)
    if limit:
        dataset = dataset.unbatch().take(limit).batch(batch_size)
    total = -(-min(evaluation.size, limit or evaluation.size) // batch_size)
    with data_lib.naming_unreadable(evaluation, progress=checking):
        result = evaluate_model(predict, dataset,
                                progress=lambda d: progress(d, total, "evaluating"))
    result.update(model=model_source, data=data)
    return result
