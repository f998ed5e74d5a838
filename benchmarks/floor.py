"""The compute floor: a graph's multiply-accumulates over the best single-thread GEMM rate
XNNPACK reaches on this machine.

A floor that a model beats is no floor: the rate is the best of several GEMM shapes, among
them the models' own largest convolutions as matrix products, and if a model still runs
faster than its MACs allow at that rate, the rate is raised to the model's (and the report
says so) rather than printing an "achieved" above 100 %.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Dict, Iterable, List, Tuple

# a square-ish probe that fills the caches the usual way, besides the models' own shapes
STANDARD_SHAPES = [(256, 1024, 1024)]
MODEL_SHAPES = 4  # the largest distinct (M, K, N) of the models' graphs that are probed


def _graph_ops(path):
    from swiftformer_tf.runtime.interpreter import load_interpreter
    interpreter = load_interpreter(path, use_xnnpack=False)
    # Python ints: numpy's int32 products overflow past 2**31 MACs (L3 came out negative)
    shapes = {t["index"]: [int(d) for d in t["shape"]] for t in interpreter.get_tensor_details()}
    for op in interpreter._get_ops_details():
        outputs = list(op["outputs"])
        if outputs and outputs[0] >= 0:
            yield op["op_name"], [shapes[i] for i in op["inputs"] if i >= 0], shapes[outputs[0]]


def matmul_shapes(path) -> List[Tuple[int, int, int, int]]:
    """(M, K, N, count) of the graph's convolutions and matrix products seen as GEMMs:
    M output positions, K inputs per output, N output channels. Depthwise convolutions
    are no GEMM (K = kernel size per channel) and count MACs only."""
    import numpy as np
    gemms = []
    for name, inputs, out in _graph_ops(path):
        if name == "CONV_2D":
            o, kh, kw, i = inputs[1]
            gemms.append((out[1] * out[2], kh * kw * i, o))
        elif name == "FULLY_CONNECTED":
            o, i = inputs[1]
            gemms.append((int(np.prod(inputs[0])) // i, i, o))
        elif name == "BATCH_MATMUL":
            a = inputs[0]
            gemms.append((int(np.prod(out)) // out[-1], a[-1], out[-1]))
    counted: Dict[tuple, int] = {}
    for shape in gemms:
        counted[shape] = counted.get(shape, 0) + 1
    return [(m, k, n, c) for (m, k, n), c in counted.items()]


def count_macs(path) -> int:
    """Multiply-accumulates of the convolutions and matrix products in a .tflite graph."""
    macs = sum(m * k * n * c for m, k, n, c in matmul_shapes(path))
    for name, inputs, out in _graph_ops(path):
        if name == "DEPTHWISE_CONV_2D":
            _, kh, kw, c = inputs[1]
            macs += out[1] * out[2] * c * kh * kw
    return macs


def probe_shapes(paths: Iterable[str], count=MODEL_SHAPES) -> List[Tuple[int, int, int]]:
    """The standard probe and the ``count`` GEMM shapes with the most MACs per call over
    ``paths`` (one shape's MACs, not its repeats: each probe times one such product)."""
    shapes = {}
    for path in paths:
        for m, k, n, _ in matmul_shapes(path):
            if k >= 16 and n >= 16:  # a 3-channel stem is bound by memory, not by the GEMM
                shapes[(m, k, n)] = m * k * n
    largest = sorted(shapes, key=lambda s: -shapes[s])[:count]
    return STANDARD_SHAPES + [s for s in largest if s not in STANDARD_SHAPES]


def numpy_rate() -> float:
    """numpy float32 1024^3 GEMM on one thread, GMAC/s (in a child: BLAS threads are set
    at load time)."""
    code = ("import numpy as np, time\n"
            "a=np.random.rand(1024,1024).astype('float32'); b=a.copy(); a@b\n"
            "t=time.perf_counter(); n=10\n"
            "for _ in range(n): a@b\n"
            "print(1024**3*n/(time.perf_counter()-t)/1e9)")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=env, check=True).stdout.strip())


def xnnpack_rate(shape, mode, runs=20) -> float:
    """GMAC/s of one (M, K, N) product with constant weights (a FULLY_CONNECTED, as the
    converter makes of a 1x1 convolution), single thread, fp32 or int8."""
    import numpy as np
    import tensorflow as tf

    from swiftformer_tf.export.converter import configure
    from swiftformer_tf.runtime.interpreter import measure_latency
    m, k, n = shape
    weights = tf.constant(np.random.default_rng(0).normal(size=(k, n)).astype(np.float32) * 0.03)
    fn = tf.function(lambda x: tf.matmul(x, weights), input_signature=[tf.TensorSpec((m, k), tf.float32)])
    converter = configure(
        tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()]),
        "none" if mode == "fp32" else "int8", lambda: (
            [np.random.default_rng(i).normal(size=(m, k)).astype(np.float32)] for i in range(4)))
    timing = measure_latency(converter.convert(), 1, runs=runs, warmup=3)
    return m * k * n / (timing.min_ms / 1e3) / 1e9


def gemm_rates(shapes) -> dict:
    """Single-thread GEMM rates, GMAC/s: numpy fp32, and XNNPACK fp32 / int8 as the best
    over ``shapes`` (each shape's fastest run), with every shape's figure kept."""
    rates = {"numpy_fp32_gmacs": numpy_rate(), "probes": []}
    for mode in ("fp32", "int8"):
        best = 0.0
        for shape in shapes:
            rate = xnnpack_rate(shape, mode)
            rates["probes"].append({"shape": list(shape), "mode": mode, "gmacs": rate})
            best = max(best, rate)
        rates[f"xnnpack_{mode}_gmacs"] = best
    return rates


def apply_floor(models: dict, rates: dict, threads: str) -> List[str]:
    """Sets each model's ``floor_ms`` and ``floor_fraction`` (<= 1); returns notes. A model
    faster than the probed rate raises the floor of its precision to its own rate."""
    notes = []
    for mode in ("fp32", "int8"):
        key = f"xnnpack_{mode}_gmacs"
        rows = {name: row for name, row in models.items()
                if (row["mode"] == "int8") == (mode == "int8") and row["gmacs"] > 0}
        achieved = {name: row["gmacs"] / (row["latency"][threads]["median_ms"] / 1e3)
                    for name, row in rows.items()}
        if achieved and max(achieved.values()) > rates[key]:
            fastest = max(achieved, key=achieved.get)
            notes.append(f"{fastest} ran its MACs at {achieved[fastest]:.1f} GMAC/s, faster than "
                         f"the best {mode} GEMM probe ({rates[key]:.1f}); the {mode} floor uses "
                         f"its rate instead, so no model shows above 100 %")
            rates[f"probed_{key}"] = rates[key]
            rates[key] = achieved[fastest]
        for name, row in rows.items():
            row["floor_ms"] = row["gmacs"] / rates[key] * 1e3
            row["floor_fraction"] = min(1.0, achieved[name] / rates[key])
    return notes
