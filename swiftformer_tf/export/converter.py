"""SwiftFormer to TFLite with post-training quantization.

The converted graph is the model's reparameterized form (:mod:`.reparameterize`): folded
BatchNorms and one merged head. Full-int8 export also swaps in the integer-friendly GELU
(``x * sigmoid(1.702 x)``) and Newton L2 normalisations, because XNNPACK has no integer
GELU, RSQRT, DIV or MAXIMUM kernel and each of them would split the graph
(:mod:`.export_form`).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import os
import re
import shutil
import tempfile
from typing import Callable, Iterable, List, Optional

import keras
import numpy as np

from swiftformer_tf.errors import ExportError
from swiftformer_tf.export import qat
from swiftformer_tf.export.reparameterize import reparameterize
from swiftformer_tf.forms import integer_form

QUANTIZE_MODES = ("none", "fp16", "dynamic", "int8", "int16x8")
APPROXIMATIONS = {
    "int8": ["GELU as x * sigmoid(1.702 x) (1.702 folded into the conv before it, 1 / 1.702 "
             "into the conv after it)",
             "L2 normalisations as 6 Newton steps for 1/sqrt (calibrated range, no eps); "
             "keys divided first by their max - min (Newton steps for 1/x)"],
}


@dataclasses.dataclass
class ConversionResult:
    flatbuffer: bytes
    quantize: str
    approximations: List[str]
    norm_references: Optional[list] = None
    kept_float: List[str] = dataclasses.field(default_factory=list)


def export_graph(model, quantize, calibration=None):
    """The Keras graph that gets converted for ``quantize``. A QAT model (already the
    int8 export form, :mod:`.qat`) is its own graph; see :func:`qat.export_mode`."""
    if qat.is_qat_model(model):
        return model, model.export_form.norm_references
    if model.reparameterized:
        raise ExportError(f"{model.name} is an export form already; convert the trainable "
                          f"model it was made from")
    if quantize == "int8":
        form = integer_form(model, (x[None] for x in calibration))
        return reparameterize(model, form), form.norm_references
    return reparameterize(model), None


@contextlib.contextmanager
def _quiet():
    """The converter prints MLIR diagnostics to stdout; keep them for error messages only."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield buffer


def saved_model_converter(graph, input_shape, workdir):
    import tensorflow as tf
    path = os.path.join(workdir, "saved_model")
    with _quiet():
        graph.export(path, format="tf_saved_model", verbose=False,
                     input_signature=[tf.TensorSpec(input_shape, tf.float32)])
    return tf.lite.TFLiteConverter.from_saved_model(path)


def configure(converter, quantize, representative: Optional[Callable], int8_io=False):
    import tensorflow as tf
    ops = tf.lite.OpsSet
    converter.target_spec.supported_ops = [ops.TFLITE_BUILTINS]  # never Flex ops
    if quantize == "none":
        return converter
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [ops.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    elif quantize == "int16x8":
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [
            ops.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return converter


def _run_converter(convert):
    try:
        with _quiet() as log:
            return convert()
    except Exception as err:  # the converter raises ConverterError and others
        text = str(err) + log.getvalue()
        if "flex op" in text.lower() or "select tf" in text.lower():
            names = sorted(set(re.findall(r"'(tf\.\w+)' op is neither", text))) or ["?"]
            raise ExportError(f"the model needs TensorFlow ops that are not TFLite builtins "
                              f"({', '.join(names)}); refusing to emit Flex ops") from None
        raise ExportError(f"TFLite conversion failed: {text.strip()[:600]}") from None


def convert(model, quantize="none", input_size=(224, 224), dynamic_size=False, int8_io=False,
            calibration: Optional[Iterable[np.ndarray]] = None, debug_csv=None,
            selective_target=None, fidelity_fn=None, progress=None,
            softmax=False) -> ConversionResult:
    """Converts ``model`` (a SwiftFormer) to a TFLite flatbuffer.

    ``softmax``: the graph ends with a softmax, so it outputs probabilities (what image
    classifier metadata declares, :mod:`.metadata`).

    ``calibration``: model-input images (H, W, 3) for int8 / int16x8. ``debug_csv`` writes
    the QuantizationDebugger's per-layer statistics; ``selective_target`` (a cosine
    similarity, with ``fidelity_fn(flatbuffer) -> cosine``) keeps the worst layers in
    float until it is met.
    """
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"unknown quantization mode {quantize!r}; choose one of {QUANTIZE_MODES}")
    if int8_io and quantize != "int8":
        raise ValueError("--int8-io applies only to --quantize int8")
    needs_data = quantize in ("int8", "int16x8")
    samples = list(calibration or []) if needs_data else []
    if needs_data and not samples:
        raise ValueError(f"--quantize {quantize} needs calibration images")
    graph, references = export_graph(model, quantize, samples)
    exported = _WithSoftmax(graph) if softmax else graph
    h, w = input_size
    shape = (1, None, None, 3) if dynamic_size else (1, h, w, 3)

    def representative():
        for x in (progress(samples) if progress else samples):
            yield [np.asarray(x, np.float32)[None]]

    workdir = tempfile.mkdtemp(prefix="swiftformer_tflite_")
    try:
        with qat.export_mode(graph, quantize):  # the SavedModel is traced in this mode
            converter = configure(saved_model_converter(exported, shape, workdir), quantize,
                                  representative, int8_io)
        kept = []
        if needs_data and (debug_csv or selective_target):
            flatbuffer, kept = _debugged(converter, representative, debug_csv, selective_target,
                                         fidelity_fn)
        else:
            flatbuffer = _run_converter(converter.convert)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if needs_data and not _has_integer_activations(flatbuffer):
        raise ExportError(f"--quantize {quantize} produced a model without integer activations")
    approximations = APPROXIMATIONS.get(quantize, [])
    if qat.is_qat_model(model):
        approximations = APPROXIMATIONS["int8"] + (
            ["activation ranges learned by quantization-aware training"]
            if quantize == "int8" else [])
    return ConversionResult(flatbuffer=flatbuffer, quantize=quantize,
                            approximations=approximations,
                            norm_references=references, kept_float=kept)


class _WithSoftmax(keras.Model):
    """The export graph followed by a softmax over the classes."""

    def __init__(self, graph):
        super().__init__(name=f"{graph.name}_softmax")
        self.graph = graph
        self.built = graph.built  # no variables of its own

    def call(self, x, training=False):
        return keras.ops.softmax(self.graph(x, training=False), axis=-1)


def _has_integer_activations(flatbuffer) -> bool:
    from swiftformer_tf.runtime.interpreter import load_interpreter
    details = load_interpreter(flatbuffer, use_xnnpack=False)._get_ops_details()
    return any(np.dtype(t).kind == "i" and np.dtype(t).itemsize <= 2 and d["op_name"] != "QUANTIZE"
               for d in details for t in d["result_types"])


def _debugged(converter, representative, debug_csv, selective_target, fidelity_fn, log=print):
    """QuantizationDebugger statistics, and the selective float fallback."""
    import tensorflow as tf
    debug = tf.lite.experimental
    debugger = _run_converter(lambda: debug.QuantizationDebugger(
        converter=converter, debug_dataset=representative))
    _run_converter(debugger.run)
    rows = _layer_rows(debugger)
    if debug_csv:
        from swiftformer_tf.io_utils import atomic_output
        with atomic_output(debug_csv) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["tensor_name"])
            writer.writeheader()
            writer.writerows(rows)
    # the debugger leaves the converter set up for calibration only: take its model
    flatbuffer = _run_converter(debugger.get_nondebug_quantized_model)
    if not selective_target:
        return flatbuffer, []
    ranked = [r["tensor_name"] for r in rows if r.get("tensor_name")]
    kept: List[str] = []
    step = 1
    while (cosine := fidelity_fn(flatbuffer)) < selective_target and len(kept) < len(ranked):
        if log:
            log(f"selective: cosine {cosine:.5f} with {len(kept)} layers in float")
        kept = ranked[:len(kept) + step]
        step *= 2  # 1, 2, 4, ... worst layers in float
        options = debug.QuantizationDebugOptions(denylisted_nodes=kept)
        selective = _run_converter(lambda: debug.QuantizationDebugger(
            converter=converter, debug_dataset=representative, debug_options=options))
        flatbuffer = _run_converter(selective.get_nondebug_quantized_model)
    return flatbuffer, kept


def _layer_rows(debugger):
    """The debugger's per-layer dump, with rmse / scale (its usual ranking) added."""
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = []
    for row in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(row.get("scale") or 0.0)
        mse = float(row.get("mean_squared_error") or 0.0)
        row["rmse_over_scale"] = float(np.sqrt(mse) / scale) if scale else 0.0
        rows.append(row)
    return sorted(rows, key=lambda r: -r["rmse_over_scale"])
