"""Runs a .tflite model with LiteRT's CompiledModel on its GPU or NPU accelerator and
prints one JSON line.

Run it as a script in its own process (``swiftformer_tf.runtime.gpu`` and ``.npu`` do, through
:func:`launch`): it imports only numpy and ai_edge_litert, because creating the GPU model in
a process that has imported TensorFlow segfaults inside the Vulkan driver. The GPU accelerator names the ops it
rejects on stderr; the parent reads them from there. On an x86-64 host the only NPU is Intel
OpenVINO's, run on its CPU graph backend unless ``--openvino-backend npu``.

    python compiled_model_worker.py MODEL [--accelerator gpu|npu] [--precision fp32|fp16]
        [--runs N] [--warmup N] [--inputs IN.npz] [--outputs OUT.npz]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def _options(precision, with_cpu):
    from ai_edge_litert.options import GpuOptions, HardwareAccelerator, Options
    accelerators = HardwareAccelerator.GPU | HardwareAccelerator.CPU if with_cpu else \
        HardwareAccelerator.GPU
    return Options(hardware_accelerators=accelerators,
                   gpu_options=GpuOptions(enforce_f32=precision == "fp32"))


OPENVINO_PRECISION_KEY = "INFERENCE_PRECISION_HINT"  # ov::hint::inference_precision


def _npu_options(openvino_backend):
    from ai_edge_litert.intel_openvino_options import (IntelOpenVinoGraphBackend,
                                                       IntelOpenVinoOptions)
    from ai_edge_litert.options import HardwareAccelerator, Options
    backend = getattr(IntelOpenVinoGraphBackend, openvino_backend.upper())
    # OpenVINO's CPU plugin computes float graphs in bf16 on CPUs with native bf16 (AVX512
    # BF16, AMX) unless asked otherwise: a host check of an "fp32" model must be fp32.
    configs = {OPENVINO_PRECISION_KEY: "f32"} if openvino_backend == "cpu" else {}
    # The CPU is there for the ops a partial compile left out (DISPATCH_OP runs on the NPU).
    return Options(hardware_accelerators=HardwareAccelerator.NPU | HardwareAccelerator.CPU,
                   intel_openvino_options=IntelOpenVinoOptions(graph_backend=backend,
                                                               configs_map=configs))


def _first_line(err):
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def compile_model(path, precision):
    """(compiled model or None, report). GPU alone first: it builds only when the
    accelerator takes every op. Otherwise GPU with the CPU as fallback, which builds when
    the GPU takes some ops and also when there is no usable GPU at all."""
    from ai_edge_litert.compiled_model import CompiledModel
    report = {}
    try:
        return CompiledModel.from_file(path, options=_options(precision, False)), \
            {"status": "full"}
    except Exception as err:  # the bindings raise RuntimeError / ValueError with the cause
        report["gpu_only_error"] = _first_line(err)
    try:
        compiled = CompiledModel.from_file(path, options=_options(precision, True))
    except Exception as err:
        report.update(status="failed", reason=_first_line(err))
        return None, report
    # The parent decides between "partial" and "no GPU" from the accelerator's log.
    report["status"] = "full" if compiled.is_fully_accelerated() else "not-full"
    return compiled, report


def compile_for_npu_run(path, openvino_backend):
    """(compiled model or None, report) with the NPU accelerator. Whether every op went to
    the NPU is read from the model itself by the parent (``is_fully_accelerated`` counts
    the CPU as an accelerator too)."""
    from ai_edge_litert.compiled_model import CompiledModel
    try:
        return CompiledModel.from_file(path, options=_npu_options(openvino_backend)), \
            {"status": "built"}
    except Exception as err:  # the bindings raise RuntimeError / ValueError with the cause
        return None, {"status": "failed", "reason": _first_line(err)}


class WorkerResult:
    """What :func:`launch` got back: ``report`` (the JSON line, None when the worker died),
    ``returncode``, ``log`` (its stderr), ``outputs`` (arrays, when asked for)."""

    def __init__(self, report, returncode, log, outputs=None):
        self.report, self.returncode, self.log, self.outputs = report, returncode, log, outputs


def launch(model, worker_args, runs=0, warmup=0, inputs=None, keep_outputs=False, env=None,
           timeout=1800.0) -> WorkerResult:
    """Runs this file on ``model`` in a child process (the parent's side). Raises
    subprocess.TimeoutExpired after ``timeout`` seconds."""
    with tempfile.TemporaryDirectory(prefix="swiftformer-compiled-") as tmp:
        command = [sys.executable, os.path.abspath(__file__), os.fspath(model), *worker_args,
                   "--runs", str(runs), "--warmup", str(warmup)]
        if inputs is not None:
            np.savez(os.path.join(tmp, "in.npz"), *inputs)
            command += ["--inputs", os.path.join(tmp, "in.npz")]
        if keep_outputs:
            command += ["--outputs", os.path.join(tmp, "out.npz")]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                env=env)
        line = next((line for line in reversed((result.stdout or "").splitlines())
                     if line.startswith("{")), None)
        outputs = None
        if keep_outputs and os.path.isfile(os.path.join(tmp, "out.npz")):
            with np.load(os.path.join(tmp, "out.npz")) as data:
                outputs = [data[f"arr_{i}"] for i in range(len(data.files))]
    report = json.loads(line) if result.returncode == 0 and line else None
    return WorkerResult(report, result.returncode, result.stderr or "", outputs)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--accelerator", choices=["gpu", "npu"], default="gpu")
    p.add_argument("--openvino-backend", choices=["cpu", "npu"], default="cpu")
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    p.add_argument("--runs", type=int, default=0, help="timed runs")
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--inputs", help=".npz with the inputs in signature order (arr_0, ...); "
                                    "random when absent")
    p.add_argument("--outputs", help="write the last run's outputs here (.npz, arr_0, ...)")
    args = p.parse_args(argv)
    report = {"model": args.model, "precision": args.precision,
              "accelerator": args.accelerator}
    try:
        compiled, compiled_report = (
            compile_model(args.model, args.precision) if args.accelerator == "gpu" else
            compile_for_npu_run(args.model, args.openvino_backend))
    except ImportError as err:
        compiled, compiled_report = None, {"status": "failed",
                                           "reason": f"ai_edge_litert is not installed ({err})"}
    report.update(compiled_report)
    if compiled is None:
        print(json.dumps(report))
        return 0
    key = compiled.get_signature_by_index(0)["key"]
    input_details = list(compiled.get_input_tensor_details(key).values())
    output_details = list(compiled.get_output_tensor_details(key).values())
    inputs, outputs = compiled.create_input_buffers(0), compiled.create_output_buffers(0)
    given = np.load(args.inputs) if args.inputs else None
    rng = np.random.default_rng(0)
    for i, (buffer, detail) in enumerate(zip(inputs, input_details)):
        x = given[f"arr_{i}"] if given is not None else \
            rng.standard_normal(detail["shape"]).astype(detail["dtype"])
        buffer.write(np.ascontiguousarray(x, dtype=detail["dtype"]))

    def run():
        compiled.run_by_index(0, inputs, outputs)
        # Reading the outputs waits for the accelerator's queue: without it a run only
        # enqueues work.
        return [buffer.read(int(np.prod(d["shape"])), d["dtype"]).reshape(d["shape"])
                for buffer, d in zip(outputs, output_details)]

    times, results = [], None
    for _ in range(max(args.warmup + args.runs, 1 if args.outputs else 0)):
        t = time.perf_counter()
        results = run()
        times.append((time.perf_counter() - t) * 1e3)
    if times:
        timed = times[args.warmup:] or times
        report.update(first_ms=times[0], avg_ms=statistics.fmean(timed),
                      median_ms=statistics.median(timed), min_ms=min(timed), max_ms=max(timed),
                      std_ms=statistics.pstdev(timed), runs=len(timed))
    if args.outputs:
        np.savez(args.outputs, *results)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
