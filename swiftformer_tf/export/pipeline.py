"""The export chain end to end: calibration images, conversion (with selective float
layers), metadata, the fidelity check against a Keras reference, host latency and the ARM,
GPU and NPU checks; returns the report ``swiftformer-export`` prints and writes.

    from swiftformer_tf.export.pipeline import ExportOptions, export_and_check
    report = export_and_check(load("imagenet:XS"), "imagenet:XS",
                              ExportOptions(quantize="int8", output="xs_int8.tflite"))
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Optional, Sequence, Tuple

from swiftformer_tf.errors import SwiftFormerError
from swiftformer_tf.runtime import npu


@dataclasses.dataclass
class ExportOptions:
    """What to export and check; the fields are ``swiftformer-export``'s flags."""

    output: str
    quantize: str = "none"  # converter.QUANTIZE_MODES
    input_size: Tuple[int, int] = (224, 224)
    dynamic_size: bool = False
    int8_io: bool = False
    include_preprocessing: bool = False
    metadata: bool = False
    calibration: str = "builtin"  # a data source (swiftformer_tf.data_sources)
    num_calibration: int = 256
    num_check: int = 32
    no_check: bool = False
    reference: Optional[str] = None  # a model to check against instead of the exported one
    debug_csv: Optional[str] = None
    selective: Optional[float] = None
    gpu_check: str = "auto"
    check_arm: Sequence = ()  # emulated CPUs: "cortex-a76,i8mm" or runtime.arm.ArmCpu
    npu: Sequence[str] = ()
    npu_option: Sequence[str] = ()
    threads: Sequence[int] = (1,)
    runs: int = 30


def check_prerequisites(options: ExportOptions):
    """What the options need and may lack here (an NPU compiler, the ARM emulator, the
    metadata writer), checked before any work; returns the NPU targets."""
    targets = npu.targets_from_args(options)  # a wrong SoC fails before any work
    if options.check_arm:
        from swiftformer_tf.runtime import arm
        if isinstance(options.check_arm, str):
            options.check_arm = arm.parse_cpus(options.check_arm)
        if not arm.is_ready():
            raise SwiftFormerError(f"--check-arm: no ARM emulator set up ({arm.SETUP_HINT})")
    if options.metadata:
        from swiftformer_tf.export.metadata import _writer
        _writer()  # no writer installed
    return targets


def export_and_check(model, weights, options: ExportOptions, npu_targets=None) -> dict:
    """Exports ``model`` (loaded from ``weights``, a name for the report) as ``options``
    say, writes the .tflite file, and returns the report. ``npu_targets``: what
    ``check_prerequisites(options)`` returned, when the caller checked before loading."""
    import keras
    import numpy as np
    from tqdm import tqdm

    from swiftformer_tf.export import qat
    from swiftformer_tf.export.calibration import ImageSource
    from swiftformer_tf.export.converter import convert
    from swiftformer_tf.export.report import fidelity
    from swiftformer_tf.imagenet import normalize
    from swiftformer_tf.io_utils import check_writable, write_file
    from swiftformer_tf.runtime.interpreter import (TFLiteRunner, interpreter_class,
                                                    measure_latency, summarize_graph)

    if npu_targets is None:
        npu_targets = check_prerequisites(options)
    output = options.output
    check_writable(output)
    needs_images = options.quantize in ("int8", "int16x8") or not options.no_check
    source = ImageSource(options.calibration, options.input_size) if needs_images else None
    prepare = (lambda x: x) if options.include_preprocessing else normalize
    calibration = []
    if options.quantize in ("int8", "int16x8"):
        bar = tqdm(source.calibration(options.num_calibration), total=options.num_calibration,
                   desc="calibration images", unit="img")
        calibration = [prepare(x) for x in bar]
    check_images, check_labels = [], []
    if not options.no_check:
        for image, label in source.labelled_check(options.num_check, skip=options.num_calibration):
            check_images.append(prepare(image))
            check_labels.append(label)
    reference_model, reference_name = model, "the Keras model"
    if options.reference:
        from swiftformer_tf import load
        reference_model = load(options.reference,
                               include_preprocessing=options.include_preprocessing,
                               input_shape=(None, None, 3))
        reference_name = options.reference
    elif qat.is_qat_model(model):
        reference_name = "the float form of the QAT model"

    def keras_logits(x):
        if qat.is_qat_model(reference_model):
            with reference_model.quantizer.using("off"):
                return reference_model(x, training=False)
        return reference_model(x, training=False)

    def keras_reference(x):  # what the exported graph outputs: probabilities with --metadata
        logits = keras_logits(x)
        return keras.ops.softmax(logits, axis=-1) if options.metadata else logits

    def cosine_of(flatbuffer):
        return fidelity(keras_reference, TFLiteRunner(flatbuffer), check_images)["cosine_mean"]

    # a SIGTERM or Ctrl-C here unwinds through convert()'s cleanup: no SavedModel folder
    # and no partial output are left (run_command)
    result = convert(model, options.quantize, options.input_size, options.dynamic_size,
                     options.int8_io,
                     calibration, debug_csv=options.debug_csv, selective_target=options.selective,
                     fidelity_fn=cosine_of,
                     progress=lambda xs: tqdm(xs, desc="quantizing", unit="img"),
                     softmax=options.metadata)
    flatbuffer, metadata = result.flatbuffer, None
    if options.metadata:
        from swiftformer_tf.export import metadata as md
        labels, labels_source, warning = md.labels_for(model, weights)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        flatbuffer = md.add_classifier_metadata(
            flatbuffer, labels, md.model_info(model, weights, len(labels)))
        metadata = {"labels": labels_source, "classes": len(labels),
                    "bytes_added": len(flatbuffer) - len(result.flatbuffer),
                    "input": "RGB 0-255, normalised inside the graph (mean 0 / std 1 in the "
                             "metadata: MediaPipe takes one value for all channels)",
                    "output": "probabilities (softmax in the graph)"}
    write_file(output, flatbuffer)

    report = {"output": output, "variant": model.config.name, "weights": weights,
              "quantize": options.quantize, "int8_io": options.int8_io,
              "input_size": list(options.input_size), "dynamic_size": options.dynamic_size,
              "include_preprocessing": options.include_preprocessing,
              "size_bytes": len(flatbuffer), "runtime": interpreter_class()[1],
              "graph": summarize_graph(flatbuffer).to_dict(),
              "approximations": result.approximations, "kept_float": result.kept_float,
              "norm_references": result.norm_references,
              "calibration": source.description if calibration else None}
    if metadata is not None:
        report["metadata"] = metadata
    if not options.no_check:
        report["fidelity"] = dict(
            fidelity(keras_reference, TFLiteRunner(flatbuffer),
                     tqdm(check_images, desc="fidelity check", unit="img"), labels=check_labels),
            reference=reference_name)
        report["latency"] = [dict(measure_latency(flatbuffer, t, options.runs).to_dict(),
                                  threads=t) for t in options.threads]
    if metadata is not None and not options.no_check:
        from swiftformer_tf.export.metadata import mediapipe_agreement
        pixels = [np.clip(np.round(x), 0, 255).astype(np.uint8) for x in check_images]
        runner = TFLiteRunner(flatbuffer)
        ours = [runner(x[None].astype(np.float32)) for x in pixels]
        agreement = mediapipe_agreement(output, pixels, ours)
        if agreement is not None:
            metadata["mediapipe"] = agreement
    if options.check_arm:
        from swiftformer_tf.runtime.arm import fidelity_on_arm, format_fidelity
        reference = np.stack([np.asarray(keras_reference(np.asarray(x, np.float32)[None]))
                              .reshape(-1) for x in check_images])
        report["arm"] = []
        for cpu in tqdm(options.check_arm, desc="ARM kernels (emulated)", unit="cpu"):
            entry = fidelity_on_arm(output, cpu, check_images, reference)
            report["arm"].append(dict(entry, summary=format_fidelity(entry)))
    if options.gpu_check != "off":
        from swiftformer_tf.runtime.gpu import check_gpu
        gpu = check_gpu(output, "fp16" if options.quantize == "fp16" else "fp32")
        if gpu.status != "unavailable" or options.gpu_check == "on":
            report["gpu"] = dict(gpu.to_dict(), summary=gpu.summary())
    if npu_targets:
        report["npu"] = [c.to_dict() for c in npu.compile_targets(output, npu_targets,
                                                                  options.npu_option)]
    return report


