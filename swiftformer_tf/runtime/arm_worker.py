"""Runs a .tflite model once on LiteRT's CPU path (XNNPACK) and prints one JSON line; meant
to run as ARM code, under the arm64 Python of ``arm_emulator`` (``swiftformer_tf.runtime.arm``
launches it). Imports only numpy and ai_edge_litert: the guest has nothing else.

The model runs on TFLite's Interpreter with its XNNPACK delegate, one thread, as
``benchmark_model`` and most apps do; ``--fp16`` builds it with LiteRT's CompiledModel and
XNNPACK's force-fp16 flag instead (what ``--xnnpack_force_fp16`` does on a phone). One warm-up inference on the first sample, then the
counted one between two ``os.getppid()`` calls, which the instruction-count plugin takes as
marks, then the other samples.

    python arm_worker.py MODEL --inputs IN.npz --outputs OUT.npz [--fp16]

IN.npz: ``arr_0``, ``arr_1``, ... one per model input in signature order, each with a leading
sample axis; OUT.npz the same for the outputs.
"""

import argparse
import ctypes
import json
import os
import sys

import numpy as np

# XNNPACK delegate flags (tensorflow/lite/delegates/xnnpack/xnnpack_delegate.h).
XNNPACK_FLAG_QS8, XNNPACK_FLAG_QU8, XNNPACK_FLAG_FORCE_FP16 = 0x1, 0x2, 0x4

# Linux aarch64 hwcaps (arch/arm64/include/uapi/asm/hwcap.h) that decide XNNPACK's kernels.
AT_HWCAP, AT_HWCAP2 = 16, 26
HWCAP = {"fphp": 9, "asimdhp": 10, "asimddp": 20, "sve": 22}
HWCAP2 = {"sve2": 1, "i8mm": 13, "bf16": 14, "sme": 23, "sme2": 37}


def cpu_features():
    libc = ctypes.CDLL(None)
    libc.getauxval.restype = ctypes.c_ulong
    libc.getauxval.argtypes = [ctypes.c_ulong]
    words = {AT_HWCAP: libc.getauxval(AT_HWCAP), AT_HWCAP2: libc.getauxval(AT_HWCAP2)}
    return sorted([name for name, bit in HWCAP.items() if words[AT_HWCAP] >> bit & 1]
                  + [name for name, bit in HWCAP2.items() if words[AT_HWCAP2] >> bit & 1])


def code_mappings():
    """[start, end, file offset, path] of the executable file mappings (QEMU shows the
    guest's own): the parent names the functions an instruction profile ran in."""
    found = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and "x" in parts[1] and parts[5].startswith("/"):
                start, end = (int(v, 16) for v in parts[0].split("-"))
                found.append([start, end, int(parts[2], 16), parts[5].strip()])
    return found


def interpreter(model):
    """TFLite's Interpreter with its default XNNPACK delegate, one thread: what
    ``benchmark_model`` and most apps run."""
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=model, num_threads=1)
    it.allocate_tensors()
    inputs, outputs = it.get_input_details(), it.get_output_details()
    return (it.invoke, inputs, outputs, lambda i, x: it.set_tensor(inputs[i]["index"], x),
            lambda i: it.get_tensor(outputs[i]["index"]).copy())


def compiled_model(model):
    """LiteRT's CompiledModel on the CPU with XNNPACK's force-fp16 flag (the Interpreter has
    no way to pass it). Only here: importing it costs ~12 s of emulation (ml_dtypes)."""
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.options import CpuOptions, HardwareAccelerator, Options
    flags = XNNPACK_FLAG_QS8 | XNNPACK_FLAG_QU8 | XNNPACK_FLAG_FORCE_FP16
    compiled = CompiledModel.from_file(model, options=Options(
        hardware_accelerators=HardwareAccelerator.CPU,
        cpu_options=CpuOptions(num_threads=1, xnnpack_flags=flags)))
    key = compiled.get_signature_by_index(0)["key"]
    inputs = list(compiled.get_input_tensor_details(key).values())
    outputs = list(compiled.get_output_tensor_details(key).values())
    in_buffers, out_buffers = compiled.create_input_buffers(0), compiled.create_output_buffers(0)
    return (lambda: compiled.run_by_index(0, in_buffers, out_buffers), inputs, outputs,
            lambda i, x: in_buffers[i].write(x),
            lambda i: out_buffers[i].read(int(np.prod(outputs[i]["shape"])),
                                          outputs[i]["dtype"]).reshape(outputs[i]["shape"]))


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--inputs", required=True, help=".npz: one array per input (arr_0, ...), "
                                                   "each with a leading sample axis")
    p.add_argument("--outputs", required=True, help=".npz: the outputs, stacked the same way")
    p.add_argument("--fp16", action="store_true", help="XNNPACK's force-fp16 flag")
    args = p.parse_args(argv)
    report = {"machine": os.uname().machine, "cpu_features": cpu_features()}
    if args.fp16:
        run, input_details, output_details, write, read = compiled_model(args.model)
        report["runtime"] = "CompiledModel (XNNPACK, force fp16)"
    else:
        run, input_details, output_details, write, read = interpreter(args.model)
        report["runtime"] = "Interpreter (XNNPACK)"
    with np.load(args.inputs) as given:
        samples = [given[f"arr_{i}"] for i in range(len(input_details))]

    def set_sample(n):
        for i, (detail, values) in enumerate(zip(input_details, samples)):
            write(i, np.ascontiguousarray(values[n], dtype=detail["dtype"]))

    def read_outputs():
        return [read(i) for i in range(len(output_details))]

    set_sample(0)
    run()  # warm-up: packing weights, first-touch pages
    os.getppid()  # mark: the counted inference starts
    run()
    os.getppid()  # mark: it ended
    results = [read_outputs()]
    for n in range(1, len(samples[0])):
        set_sample(n)
        run()
        results.append(read_outputs())
    np.savez(args.outputs, *[np.stack(values) for values in zip(*results)])
    report["code_mappings"] = code_mappings()
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
