"""LiteRT interpreters, graph inspection (ops, delegate partitions, float tensors) and
host latency."""

from __future__ import annotations

import collections
import dataclasses
import os
import statistics
import time
import warnings
from typing import Dict, List

import numpy as np

from swiftformer_tf.errors import InputTooLarge

def interpreter_class():
    """(class, name): ai_edge_litert, else tflite_runtime, else tf.lite."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter, "tflite_runtime"
    except ImportError:
        pass
    import tensorflow as tf
    return tf.lite.Interpreter, "tensorflow"


def load_interpreter(model, num_threads=1, use_xnnpack=True):
    """An allocated interpreter for a .tflite path or flatbuffer bytes."""
    cls, _ = interpreter_class()
    kwargs = {"num_threads": int(num_threads)}
    if isinstance(model, (bytes, bytearray)):
        kwargs["model_content"] = bytes(model)
    else:
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
        kwargs["model_path"] = path
    if not use_xnnpack:
        resolver = _resolver_without_delegates(cls)
        if resolver is not None:
            kwargs["experimental_op_resolver_type"] = resolver
    name = "model bytes" if "model_content" in kwargs else kwargs["model_path"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tf.lite's deprecation notice
        try:
            interpreter = cls(**kwargs)
            _check_input_sizes(name, interpreter)  # before any tensor is allocated
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            if isinstance(err, InputTooLarge):
                raise
            raise ValueError(f"{name}: cannot be loaded by the TFLite interpreter ({err})") from None
        except MemoryError:
            raise InputTooLarge(f"{name}: out of memory allocating its tensors (inputs "
                                f"{_input_shapes(interpreter)})") from None
    return interpreter


# A file declares its input size; tensors are allocated from it. An image model's input is
# far below this (SwiftFormer at 1024x1024: 3.1 M values); its activations are larger still.
MAX_INPUT_VALUES = 3 * 4096 * 4096


def _input_shapes(interpreter) -> str:
    return ", ".join(str([int(n) for n in d["shape"]]) for d in interpreter.get_input_details())


def _check_input_sizes(name, interpreter):
    for detail in interpreter.get_input_details():
        values = int(np.prod([max(int(n), 1) for n in detail["shape"]], dtype=np.float64))
        if values > MAX_INPUT_VALUES:
            raise InputTooLarge(
                f"{name}: its input {detail['name']!r} declares shape "
                f"{[int(n) for n in detail['shape']]} ({values:,} values; at most "
                f"{MAX_INPUT_VALUES:,} are allocated)")


def _resolver_without_delegates(cls):
    module = __import__(cls.__module__, fromlist=["OpResolverType"])
    resolver = getattr(module, "OpResolverType", None)
    return None if resolver is None else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES


@dataclasses.dataclass
class GraphSummary:
    op_histogram: Dict[str, int]
    partitions: int  # XNNPACK delegate partitions
    cpu_ops: Dict[str, int]  # ops left to the TFLite CPU kernels, by type
    float_tensors: List[str]  # float32/16 activations between integer ops (quantized models)
    input_dtype: str
    output_dtype: str
    input_shape: List[int]

    def to_dict(self):
        return dataclasses.asdict(self)


def summarize_graph(model) -> GraphSummary:
    """Op histogram, XNNPACK partitions and float tensors of a .tflite model."""
    interpreter = load_interpreter(model)
    details = interpreter._get_ops_details()
    original = [d for d in details if d["op_name"] != "DELEGATE"]
    delegates = [d for d in details if d["op_name"] == "DELEGATE"]
    histogram = collections.Counter(d["op_name"] for d in original)
    graph_outputs = {o["index"] for o in interpreter.get_output_details()}
    delegate_in = {int(t) for d in delegates for t in d["inputs"]}
    delegate_out = {int(t) for d in delegates for t in d["outputs"]}
    consumers = collections.defaultdict(list)
    for d in original:
        for t in d["inputs"]:
            consumers[int(t)].append(d["index"])
    # An op runs on the CPU if one of its outputs leaves the delegates' reach: it feeds a
    # delegate, is a graph output no delegate produces, or feeds another CPU op.
    cpu = set()
    changed = True
    while changed:
        changed = False
        for d in original:
            if d["index"] in cpu:
                continue
            for t in map(int, d["outputs"]):
                if t in delegate_out:
                    continue
                if t in delegate_in or t in graph_outputs or not delegates or \
                        any(c in cpu for c in consumers[t]):
                    cpu.add(d["index"])
                    changed = True
                    break
    cpu_ops = collections.Counter(d["op_name"] for d in original if d["index"] in cpu)
    float_tensors = []
    quantized = any(np.dtype(t).kind == "i" and np.dtype(t).itemsize <= 2
                    for d in original for t in d["result_types"])
    if quantized:
        names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
        for d in original:
            if d["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
                continue  # the float/integer boundary itself
            for t, dtype in zip(d["outputs"], d["result_types"]):
                if np.dtype(dtype).kind == "f":
                    float_tensors.append(f"{d['op_name']}:{names.get(int(t), t)}")
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    return GraphSummary(op_histogram=dict(histogram.most_common()), partitions=len(delegates),
                        cpu_ops=dict(cpu_ops), float_tensors=float_tensors,
                        input_dtype=np.dtype(inp["dtype"]).name,
                        output_dtype=np.dtype(out["dtype"]).name,
                        input_shape=[int(n) for n in inp["shape_signature"]])


class TFLiteRunner:
    """Runs a .tflite classifier on float NHWC batches, quantizing int8 I/O if needed;
    ``use_xnnpack=False``: on TFLite's built-in kernels instead of the XNNPACK delegate."""

    def __init__(self, model, num_threads=1, use_xnnpack=True):
        self.interpreter = load_interpreter(model, num_threads, use_xnnpack=use_xnnpack)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def __call__(self, image):
        """One image (H, W, 3) or batch (1, H, W, 3), float; returns float logits."""
        x = np.asarray(image, np.float32)
        if x.ndim == 3:
            x = x[None]
        signature = list(self.input["shape_signature"])
        if any(n == -1 for n in signature) or list(self.input["shape"]) != list(x.shape):
            self.interpreter.resize_tensor_input(self.input["index"], x.shape, strict=False)
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
        self.interpreter.set_tensor(self.input["index"], _quantize(x, self.input))
        self.interpreter.invoke()
        return _dequantize(self.interpreter.get_tensor(self.output["index"]), self.output)


def _quantize(x, detail):
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _dequantize(y, detail):
    if np.dtype(detail["dtype"]).kind == "f":
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale


DYNAMIC_SIZE = 224  # where a dynamic height or width is measured (batch: 1)


def concrete_shape(detail) -> List[int]:
    """The input shape to run: the signature, dynamic height and width at DYNAMIC_SIZE."""
    signature = [int(n) for n in detail["shape_signature"]] or list(detail["shape"])
    return [n if n != -1 else (1 if i == 0 else DYNAMIC_SIZE) for i, n in enumerate(signature)]


def random_input(detail, seed=0):
    shape = concrete_shape(detail)
    rng = np.random.default_rng(seed)
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return rng.uniform(-1, 1, size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


@dataclasses.dataclass
class Timing:
    median_ms: float
    min_ms: float
    max_ms: float
    mean_ms: float
    runs: int
    input_shape: List[int] = dataclasses.field(default_factory=list)

    def to_dict(self):
        return dataclasses.asdict(self)


def timed_calls(call, count) -> List[float]:
    """Wall time in ms of each of ``count`` calls of ``call``: the one timing loop."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def set_random_inputs(interpreter) -> List[int]:
    """Fixed random inputs, dynamic dimensions resized first (a dynamic-size model would
    otherwise run on its 1x1 default). Returns the first input's shape."""
    details = interpreter.get_input_details()
    if any(list(d["shape"]) != concrete_shape(d) for d in details):
        for detail in details:
            interpreter.resize_tensor_input(detail["index"], concrete_shape(detail), strict=False)
        interpreter.allocate_tensors()
        details = interpreter.get_input_details()
    for detail in details:
        interpreter.set_tensor(detail["index"], random_input(detail))
    return [int(n) for n in details[0]["shape"]]


def time_invocations(interpreter, runs=50, warmup=5):
    """Wall time of ``runs`` invocations after ``warmup`` on a fixed random input."""
    shape = set_random_inputs(interpreter)
    timed_calls(interpreter.invoke, warmup)
    times = timed_calls(interpreter.invoke, runs)
    return Timing(median_ms=statistics.median(times), min_ms=min(times), max_ms=max(times),
                  mean_ms=statistics.fmean(times), runs=runs, input_shape=shape)


def measure_latency(model, num_threads=1, runs=50, warmup=5):
    return time_invocations(load_interpreter(model, num_threads), runs, warmup)


def interleaved_latency(models, threads=(1,), runs=50, warmup=5, rounds=10, progress=None):
    """Latency of several models measured A B A B: each of ``rounds`` rounds runs
    ``runs / rounds`` invocations of every model in turn, so that machine noise hits all of
    them alike. Returns {(model, threads): [per-invocation ms, ...]}."""
    per_round = max(1, -(-runs // rounds))
    results = {}
    for count in threads:
        interpreters = {}
        for model in models:
            interpreter = load_interpreter(model, count)
            set_random_inputs(interpreter)
            timed_calls(interpreter.invoke, warmup)
            interpreters[model] = interpreter
            results[(model, count)] = []
        for _ in (progress(range(rounds)) if progress else range(rounds)):
            for model, interpreter in interpreters.items():
                results[(model, count)] += timed_calls(interpreter.invoke, per_round)
    return results
