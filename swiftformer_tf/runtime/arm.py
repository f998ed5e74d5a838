"""A .tflite model on a phone's CPU kernels without a phone: LiteRT's aarch64 runtime under
QEMU (``arm_emulator``), on one emulated CPU, in a child process.

A run gives the model's outputs from XNNPACK's ARM kernels, the guest instructions of exactly
one inference and their mix (int8 dot product, i8mm, fp16 arithmetic, fp32 FMA, SVE, SME),
and a comparison with the x86 interpreter on the same file and inputs. Instructions are not
time: an emulated instruction costs nothing like a phone's. A ratio of counts on the same
kernels (int8 against fp32 on one CPU, two exports of one model) is deterministic and
comparable; wall time here is not reported as latency anywhere.

CPUs by name (``arm_emulator.CPUS``): ``cortex-a53``, ``cortex-a76``, ``i8mm``, ``sme`` (on
QEMU 10, without instruction counts), ``sme-qemu7`` (QEMU 7.2's wrong SME emulation); a
``:fp16`` suffix forces fp16 arithmetic (XNNPACK's force-fp16 flag), e.g. ``cortex-a76:fp16``.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import re
import subprocess
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from swiftformer_tf.runtime import arm_emulator

SETUP_HINT = "swiftformer-setup-arm sets it up (QEMU and LiteRT's aarch64 build)"
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "arm_worker.py")
CPUS = tuple(arm_emulator.CPUS)
# An emulated answer this far from the x86 interpreter's on the same file is not a rounding
# difference between kernels (int8: identical; fp32: ~1e-7; forced fp16: ~1e-3 relative).
MISMATCH_COSINE = 0.999
SIGNALS = {-4: "SIGILL", -6: "SIGABRT", -7: "SIGBUS", -11: "SIGSEGV"}


@dataclasses.dataclass(frozen=True)
class ArmCpu:
    cpu: str
    fp16: bool = False

    @property
    def name(self) -> str:
        return self.cpu + (":fp16" if self.fp16 else "")


def parse_cpu(text: str) -> ArmCpu:
    """``cortex-a76`` or ``cortex-a76:fp16``."""
    cpu, _, suffix = text.strip().lower().partition(":")
    if cpu not in arm_emulator.CPUS or suffix not in ("", "fp16"):
        raise ValueError(f"unknown emulated ARM CPU {text!r}: use one of {', '.join(CPUS)}, "
                         f"optionally with :fp16 (forced fp16 arithmetic), e.g. cortex-a76:fp16")
    return ArmCpu(cpu, suffix == "fp16")


def parse_cpus(text: str) -> List[ArmCpu]:
    cpus = [parse_cpu(part) for part in text.split(",") if part.strip()]
    if not cpus:
        raise ValueError("no ARM CPU given")
    return cpus


def is_ready() -> bool:
    return arm_emulator.is_ready()


@dataclasses.dataclass
class ArmRun:
    cpu: str  # e.g. cortex-a76:fp16
    status: str  # ok | mismatch (ran, but disagrees with x86) | failed | unavailable
    reason: str = ""
    outputs: Optional[List[np.ndarray]] = None  # per model output, a leading sample axis
    guest_instructions: Optional[int] = None  # exactly one inference (the second); None
    # where the emulator cannot count (sme: QEMU 10 without plugins)
    instruction_mix: Dict[str, int] = dataclasses.field(default_factory=dict)
    cpu_features: List[str] = dataclasses.field(default_factory=list)  # the guest's hwcaps
    qemu_cpu: str = ""
    runtime: str = ""  # the LiteRT API the guest ran (Interpreter, or CompiledModel for fp16)
    emulated_s: float = 0.0  # the whole child process; emulation speed, never latency
    vs_host: Dict[str, float] = dataclasses.field(default_factory=dict)
    # with profile=True: guest instructions of the counted inference per function (XNNPACK's
    # kernels by name; code of libraries without symbols under the library's name)
    by_function: Dict[str, int] = dataclasses.field(default_factory=dict)

    def by_kernel(self) -> Dict[str, int]:
        """:attr:`by_function` summed per XNNPACK microkernel family (``qs8_qc8w_gemm_minmax
        _fp32``, ``f32_vsigmoid``, ...); the runtime's other code as ``(runtime: library)``."""
        totals: Dict[str, int] = {}
        for function, count in self.by_function.items():
            family = kernel_of(function) or f"(runtime: {function if '.so' in function else 'other'})"
            totals[family] = totals.get(family, 0) + count
        return dict(sorted(totals.items(), key=lambda item: -item[1]))

    def by_op_type(self) -> Dict[str, int]:
        """:meth:`by_kernel` summed per kind of work (:data:`OP_TYPES`)."""
        totals: Dict[str, int] = {}
        for family, count in self.by_kernel().items():
            kind = op_type_of("" if family.startswith("(") else family)
            totals[kind] = totals.get(kind, 0) + count
        return totals

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("outputs")
        return data

    def summary(self) -> str:
        if self.status in ("failed", "unavailable"):
            return f"{self.cpu}: {self.status}: {self.reason}"
        host = self.vs_host
        text = (f"{self.cpu}: {self.guest_instructions / 1e6:.2f} M guest instructions per "
                f"inference" if self.guest_instructions is not None else
                f"{self.cpu}: ran (instructions not counted on this emulator)")
        if host:
            text += (f", cosine {host['cosine_vs_host']:.6f} and max |diff| "
                     f"{host['max_rel_diff_vs_host']:.2e} of the largest logit vs x86")
        return text + (" -- MISMATCH: " + self.reason if self.status == "mismatch" else "")


def _elf_load_segments(path: str) -> List[Tuple[int, int, int]]:
    """(p_offset, p_vaddr, p_filesz) of an ELF file's LOAD segments (readelf -lW)."""
    out = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True).stdout
    return [(int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16)) for m in
            re.finditer(r"^\s*LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)",
                        out, re.M)]


def _functions(path: str) -> Tuple[List[int], List[Tuple[int, str]]]:
    """The defined functions of an ELF file by address (nm -S, demangled): starts, and
    (end, name) beside each."""
    out = subprocess.run(["nm", "-S", "-C", "--defined-only", path], capture_output=True,
                         text=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2] in "tTwW" and parts[2]:
            start, size = int(parts[0], 16), int(parts[1], 16)
            rows.append((start, start + size, parts[3]))
    rows.sort()
    return [r[0] for r in rows], [(r[1], r[2]) for r in rows]


def kernel_of(function: str) -> str:
    """XNNPACK's microkernel family of a function name: ``xnn_qs8_qc8w_gemm_minmax_fp32_ukernel
    _4x16c4__neondot`` -> ``qs8_qc8w_gemm_minmax_fp32``; KleidiAI's ``kai_*`` alike."""
    match = re.match(r"(?:xnn|kai)_(?:kernel_)?(.+?)_ukernel", function) or \
        re.match(r"kai_kernel_(.+?)_\d", function)
    return match.group(1) if match else ""


# XNNPACK microkernel families by the work they do (the kernel names say the operator).
OP_TYPES = [("GEMM (1x1 convs, linear layers)", r"(?<!i)gemm|matmul"),
            ("IGEMM (3x3 and strided convs)", r"igemm"),
            ("depthwise conv", r"dwconv"),
            ("GELU / sigmoid", r"gelu|lut|sigmoid|tanh|erf"),
            ("elementwise (add, mul, clamp, rsqrt)", r"_v(add|sub|mul|div|max|min|clamp|sqr|rsqrt|sqrt)"),
            ("reductions (sums, max)", r"_r(sum|max|min|dsum|minmax)"),
            ("quantize / convert", r"vcvt|_cvt"),
            ("layout (transpose, pack, copy)", r"transpose|pack|copy|fill|pad")]


def op_type_of(family: str) -> str:
    """The kind of work an XNNPACK microkernel family (:func:`kernel_of`) does."""
    for name, pattern in OP_TYPES:
        if family and re.search(pattern, family):
            return name
    return "runtime (scheduling, the interpreter)"


def profile_by_function(blocks: Dict[int, int], mappings: List[list]) -> Dict[str, int]:
    """Guest instructions per function: ``blocks`` {guest address: instructions} of the
    counted inference, ``mappings`` the guest's executable mappings [start, end, file
    offset, path]. Code in a library without symbols counts as the library's name."""
    totals: Dict[str, int] = {}
    cache: Dict[str, tuple] = {}
    for address, count in blocks.items():
        where = next((m for m in mappings if m[0] <= address < m[1]), None)
        if where is None:
            name = "(unmapped)"
        else:
            start, _, offset, path = where
            if path not in cache:
                functions = _functions(path) if os.path.isfile(path) else ([], [])
                cache[path] = (_elf_load_segments(path) if functions[0] else [], functions)
            segments, (starts, ends) = cache[path]
            name = os.path.basename(path)
            file_offset = address - start + offset
            segment = next((s for s in segments if s[0] <= file_offset < s[0] + s[2]), None)
            if segment is not None:
                vaddr = file_offset - segment[0] + segment[1]
                i = bisect.bisect_right(starts, vaddr) - 1
                if i >= 0 and vaddr < ends[i][0]:
                    name = ends[i][1]
        totals[name] = totals.get(name, 0) + count
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def _parse_blocks(log: str) -> Dict[int, int]:
    """The plugin's per-block counts printed after the last mark: {guest address: count}."""
    lines = log.splitlines()
    last = max((i for i, line in enumerate(lines) if line.startswith("ICOUNT mark")), default=-1)
    blocks: Dict[int, int] = {}
    for line in lines[last + 1:]:
        if line.startswith("ICOUNT_TB "):
            _, address, count = line.split()
            blocks[int(address, 16)] = blocks.get(int(address, 16), 0) + int(count)
    return blocks


def _parse_counts(log: str) -> Tuple[Optional[int], Dict[str, int]]:
    """The counters between the worker's two marks: (total, {class: count})."""
    marks = [dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", line))
             for line in log.splitlines() if line.startswith("ICOUNT mark")]
    if len(marks) < 2:
        return None, {}
    before, after = marks[-2], marks[-1]
    mix = {k: after[k] - before.get(k, 0) for k in after}
    return mix.pop("total", None), mix


def _failure(cpu: ArmCpu, code: int, log: str) -> str:
    signal = SIGNALS.get(code)
    tail = [line for line in log.strip().splitlines() if not line.startswith("ICOUNT")]
    last = tail[-1][:200] if tail else "no output"
    if signal == "SIGILL":
        spec = arm_emulator.CPUS[cpu.cpu]
        what = ("forced fp16 needs ARMv8.2 fp16 arithmetic, which this CPU lacks, and XNNPACK "
                "does not fall back" if cpu.fp16 else "the kernels used an instruction this "
                "CPU lacks")
        return f"killed by SIGILL on {cpu.cpu} ({spec['about']}): {what}"
    if signal:
        return f"the ARM runtime died with {signal}: {last}"
    return f"the ARM runtime exited with code {code}: {last}"


def host_outputs(model: str, samples: Sequence[Sequence[np.ndarray]]) -> List[np.ndarray]:
    """The x86 interpreter (XNNPACK, 1 thread) on the same samples, stacked per output."""
    from swiftformer_tf.runtime.interpreter import load_interpreter
    interpreter = load_interpreter(model, 1)
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    results = []
    for sample in samples:
        for detail, value in zip(inputs, sample):
            interpreter.set_tensor(detail["index"], np.asarray(value, detail["dtype"]))
        interpreter.invoke()
        results.append([interpreter.get_tensor(d["index"]).copy() for d in outputs])
    return [np.stack(values) for values in zip(*results)]


def random_samples(model: str, count: int = 1, seed: int = 0) -> List[List[np.ndarray]]:
    from swiftformer_tf.runtime.interpreter import load_interpreter, random_input
    details = load_interpreter(model, 1).get_input_details()
    return [[random_input(d, seed + n) for d in details] for n in range(count)]


def compare_with_host(arm: Sequence[np.ndarray], host: Sequence[np.ndarray]) -> Dict[str, float]:
    """Cosine (worst sample), max |diff| relative to the largest host value and top-1
    agreement of the first output (:func:`report.compare_logits`), on its raw values: an
    integer output has the same scale on both sides."""
    from swiftformer_tf.export.report import compare_logits
    agreement = compare_logits(np.reshape(host[0], (len(host[0]), -1)),
                               np.reshape(arm[0], (len(arm[0]), -1)))
    return {"cosine_vs_host": agreement["cosine_min"],
            "max_rel_diff_vs_host": agreement["relative_max_diff"],
            "top1_agreement_vs_host": agreement["top1_agreement"]}


def run_on_arm(model: str, cpu, samples: Optional[Sequence[Sequence[np.ndarray]]] = None,
               compare: bool = True, count: bool = True, profile: bool = False,
               timeout: float = 1800.0) -> ArmRun:
    """Runs ``model`` (a .tflite path) on emulated ``cpu`` (a name or :class:`ArmCpu`) over
    ``samples`` (each a list of input arrays in signature order; one random sample when
    None). With ``compare`` the x86 interpreter runs the same samples and a disagreement
    marks the run ``mismatch``; with ``profile`` the counted inference's instructions are
    also attributed to functions (:attr:`ArmRun.by_function`)."""
    cpu = parse_cpu(cpu) if isinstance(cpu, str) else cpu
    qemu_cpu = arm_emulator.CPUS[cpu.cpu]["qemu"]
    if not arm_emulator.is_ready():
        return ArmRun(cpu.name, "unavailable", f"no ARM emulator set up ({SETUP_HINT})",
                      qemu_cpu=qemu_cpu)
    if not os.path.isfile(model):
        raise FileNotFoundError(f"{model}: no such file")
    samples = list(samples) if samples is not None else random_samples(model)
    with tempfile.TemporaryDirectory(prefix="swiftformer-arm-") as tmp:
        inputs, outputs = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(inputs, *[np.stack(values) for values in zip(*samples)])
        # The guest sees the host's files through QEMU's -L prefix only when they are not
        # under it: absolute paths outside the emulator folder work as they are.
        args = [os.path.abspath(model), "--inputs", inputs, "--outputs", outputs]
        argv, env = arm_emulator.command(cpu.cpu, WORKER, args + (["--fp16"] if cpu.fp16
                                                                  else []),
                                         count="profile" if profile else count)
        start = time.perf_counter()
        try:
            result = subprocess.run(argv, capture_output=True, text=True, env=env,
                                    timeout=timeout)
        except subprocess.TimeoutExpired:
            return ArmRun(cpu.name, "failed", f"timed out after {timeout:.0f} s of emulation",
                          qemu_cpu=qemu_cpu)
        elapsed = time.perf_counter() - start
        if result.returncode != 0 or not os.path.isfile(outputs):
            return ArmRun(cpu.name, "failed", _failure(cpu, result.returncode, result.stderr),
                          qemu_cpu=qemu_cpu, emulated_s=elapsed)
        with np.load(outputs) as data:
            arm_outputs = [data[f"arr_{i}"] for i in range(len(data.files))]
    report = _last_json(result.stdout)
    total, mix = _parse_counts(result.stderr)
    run = ArmRun(cpu.name, "ok", outputs=arm_outputs, guest_instructions=total,
                 instruction_mix=mix, cpu_features=report.get("cpu_features", []),
                 qemu_cpu=qemu_cpu, runtime=report.get("runtime", ""), emulated_s=elapsed)
    if profile:
        run.by_function = profile_by_function(_parse_blocks(result.stderr),
                                              report.get("code_mappings", []))
    if compare:
        run.vs_host = compare_with_host(arm_outputs, host_outputs(model, samples))
        if run.vs_host["cosine_vs_host"] < MISMATCH_COSINE:
            run.status = "mismatch"
            run.reason = (f"the emulated ARM kernels' answer disagrees with x86's on the same "
                          f"file (cosine {run.vs_host['cosine_vs_host']:.4f} < "
                          f"{MISMATCH_COSINE}): QEMU's emulation or the ARM kernels are wrong")
    return run


def fidelity_on_arm(model: str, cpu, images: Sequence[np.ndarray],
                    reference: np.ndarray) -> dict:
    """The check images through the ARM kernels on ``cpu``: the answer against the Keras
    model's ``reference`` logits (images, classes) and against x86's on the same file.
    ``images``: model-input images (H, W, 3), float (quantized here for int8 input)."""
    from swiftformer_tf.export.report import compare_logits
    from swiftformer_tf.runtime.interpreter import _dequantize, _quantize, load_interpreter
    interpreter = load_interpreter(model, 1)
    given, produced = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    samples = [[_quantize(np.asarray(image, np.float32)[None], given)] for image in images]
    run = run_on_arm(model, cpu, samples)
    entry = {"cpu": run.cpu, "status": run.status, "reason": run.reason,
             "guest_instructions": run.guest_instructions, "vs_host": run.vs_host,
             "cpu_features": run.cpu_features}
    if run.outputs is not None:
        logits = _dequantize(run.outputs[0], produced).reshape(len(images), -1)
        entry["vs_keras"] = compare_logits(np.asarray(reference).reshape(len(images), -1),
                                           logits)
    return entry


def format_fidelity(entry: dict) -> str:
    """One report line for :func:`fidelity_on_arm`'s result."""
    if "vs_keras" not in entry:
        return f"{entry['cpu']}: {entry['status']}: {entry['reason']}"
    keras, host = entry["vs_keras"], entry["vs_host"]
    same = "identical to x86" if host["max_rel_diff_vs_host"] == 0 else \
        f"max |diff| {host['max_rel_diff_vs_host']:.1e} of x86's largest"
    count = entry["guest_instructions"]
    return (f"{entry['cpu']}: {keras['images']} images, cosine mean {keras['cosine_mean']:.5f} / "
            f"min {keras['cosine_min']:.5f} and top-1 agreement "
            f"{100 * keras['top1_agreement']:.1f}% vs Keras; {same}"
            + (f"; {count / 1e6:.2f} M instructions per inference" if count else "")
            + (" -- MISMATCH: the ARM answer is not x86's" if entry["status"] == "mismatch"
               else ""))


def _last_json(stdout: str) -> dict:
    import json
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}
