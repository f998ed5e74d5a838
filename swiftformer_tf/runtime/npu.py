"""Ahead-of-time compilation of a .tflite model for a phone's NPU with LiteRT's vendor
compiler plugins (``ai_edge_litert.aot``), the path that replaces NNAPI.

The vendors and SoCs are read from the installed LiteRT (one ``target.SocModel`` per vendor
package under ``ai_edge_litert.aot.vendors``), never from a list of ours. Each vendor's
compiler comes from its SDK package (``ai-edge-litert-sdk-<vendor>``); the Qualcomm, MediaTek
and Google Tensor ones download the vendor's SDK while installing, so they need a machine
that reaches the vendor's site. Intel OpenVINO's compiles on any x86-64 host with
``intel_openvino_graph_backends=cpu``, which is how the tests check delegation and numerics
here. Imports no TensorFlow.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import importlib
import importlib.util
import io
import os
import pkgutil
import re
import shutil
import subprocess
import tempfile
import types
from typing import Dict, List, Optional

from swiftformer_tf.errors import NpuError
from swiftformer_tf.io_utils import atomic_output

# What the compiler plugin prints when it leaves an op out (OpenVINO: "op type 89 is not
# supported"), or when it cannot run at all (a vendor library that is not there).
_TOOL_COMPLAINT = re.compile(r"not supported|unsupported|cannot open shared object|"
                             r"failed to load|error:", re.IGNORECASE)
_LOG_PREFIX = re.compile(r"^(?:INFO|WARNING|ERROR): \[[^\]]*\] ?")
DISPATCH_OP = "DISPATCH_OP"  # the custom op that holds one compiled NPU partition


@dataclasses.dataclass(frozen=True)
class NpuTarget:
    vendor: str  # the package name under ai_edge_litert.aot.vendors, e.g. "qualcomm"
    soc: str  # as the vendor's SocModel spells it, e.g. "SM8650"

    @property
    def name(self) -> str:
        return f"{self.vendor}:{self.soc}"

    def file_suffix(self) -> str:
        return f"{self.vendor}_{self.soc}"


@dataclasses.dataclass
class NpuCompilation:
    target: str
    output: Optional[str]
    status: str  # full | partial | failed
    ops_on_npu: Optional[int] = None
    ops_total: Optional[int] = None
    partitions: Optional[int] = None
    left_on_cpu: Dict[str, int] = dataclasses.field(default_factory=dict)  # op -> count
    tool_said: List[str] = dataclasses.field(default_factory=list)  # "line (xN)"
    reason: str = ""

    def summary(self) -> str:
        if self.status == "failed":
            return f"{self.target}: failed: {self.reason}"
        how = "fully compiled" if self.status == "full" else "partially compiled"
        text = (f"{self.target}: {how}, {self.ops_on_npu} / {self.ops_total} ops on the NPU "
                f"in {self.partitions} partition(s) -> {self.output}")
        if self.left_on_cpu:
            text += "; left for the CPU: " + ", ".join(
                f"{op} x{n}" for op, n in sorted(self.left_on_cpu.items()))
        if self.tool_said:
            text += "; the compiler said: " + "; ".join(self.tool_said)
        return text

    def to_dict(self) -> dict:
        return dict(dataclasses.asdict(self), summary=self.summary())


def _vendor_module(vendor: str, leaf: str):
    return importlib.import_module(f"ai_edge_litert.aot.vendors.{vendor}.{leaf}")


def available_targets() -> Dict[str, List[str]]:
    """Vendor -> SoC names, as the installed ai_edge_litert defines them."""
    try:
        vendors = importlib.import_module("ai_edge_litert.aot.vendors")
    except ImportError as err:
        raise NpuError(f"NPU compilation needs ai-edge-litert with its aot package ({err}); "
                       f"pip install 'ai-edge-litert==2.3.0'") from None
    targets = {}
    for info in pkgutil.iter_modules(vendors.__path__):
        if not info.ispkg or importlib.util.find_spec(
                f"{vendors.__name__}.{info.name}.target") is None:
            continue
        socs = [m.value for m in _vendor_module(info.name, "target").SocModel if m.name != "ALL"]
        if socs:
            targets[info.name] = socs
    return targets


def parse_target(text: str) -> NpuTarget:
    """``VENDOR:SOC`` (case-insensitive) checked against the installed LiteRT's list."""
    targets = available_targets()
    vendor, _, soc = text.strip().partition(":")
    vendor = vendor.lower().replace("-", "_")
    if vendor not in targets:
        raise NpuError(f"--npu {text!r}: unknown vendor {vendor!r}; this LiteRT knows "
                       f"{', '.join(sorted(targets))} (list the SoCs with --list-npu)")
    match = [s for s in targets[vendor] if s.lower() == soc.lower()]
    if not match:
        raise NpuError(f"--npu {text!r}: unknown {vendor} SoC {soc!r}; this LiteRT knows "
                       f"{', '.join(targets[vendor])}")
    return NpuTarget(vendor, match[0])


def sdk_module(vendor: str) -> Optional[str]:
    """The SDK module the vendor's backend imports for its compiler libraries, read from
    the backend's own source (e.g. ``ai_edge_litert_sdk_qualcomm``)."""
    spec = importlib.util.find_spec(
        f"ai_edge_litert.aot.vendors.{vendor}.{vendor}_backend")
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        return None
    with open(spec.origin, encoding="utf-8") as f:
        match = re.search(r"import (ai_edge_litert_sdk_\w+)", f.read())
    return match.group(1) if match else None


def _missing_sdk_message(target: NpuTarget, module: str) -> str:
    package = module.replace("_", "-")
    return (f"no compiler for {target.name} here: its SDK package {package} is not "
            f"installed (pip install '{package}==2.3.0'; for Qualcomm, MediaTek and Google "
            f"Tensor it downloads the vendor's SDK while installing, so it needs a machine "
            f"that reaches the vendor's site)")


def check_compiler(target: NpuTarget) -> Optional[str]:
    """Raises NpuError naming the SDK package when the target's compiler is not installed;
    returns the SDK module's name."""
    module = sdk_module(target.vendor)
    if module and importlib.util.find_spec(module) is None:
        raise NpuError(_missing_sdk_message(target, module))
    return module


def _target_object(target: NpuTarget):
    module = _vendor_module(target.vendor, "target")
    return module.Target(module.SocModel(target.soc))


def op_histogram(flatbuffer: bytes) -> collections.Counter:
    """Op names of a (compiled) .tflite model's main subgraph; custom ops by their code."""
    from ai_edge_litert import schema_py_generated as schema
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAs(flatbuffer, 0)
    graph = model.Subgraphs(0)
    counts = collections.Counter()
    for i in range(graph.OperatorsLength()):
        code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            counts[(code.CustomCode() or b"?").decode()] += 1
        else:
            counts[names.get(builtin, str(builtin))] += 1
    return counts


def _complaints(log: str, limit=6) -> List[str]:
    """The compiler's own lines about what it could not do, counted, in order."""
    counts = collections.Counter()
    for line in log.splitlines():
        if _TOOL_COMPLAINT.search(line) and "NPU accelerator could not be loaded" not in line:
            counts[_LOG_PREFIX.sub("", line.strip())[:240]] += 1
    return [line + (f" (x{n})" if n > 1 else "") for line, n in list(counts.items())[:limit]]


def _compile_capturing_log(model_path, workdir, target, options):
    """``aot_compile`` keeping the compiler's output: LiteRT reads it for the partition
    counts and drops it unless the compile fails, and it is the only place that says why an
    op stayed off the NPU."""
    from ai_edge_litert.aot import aot_compile
    from ai_edge_litert.aot.core import apply_plugin
    logs = []

    def run(*args, **kwargs):
        result = subprocess.run(*args, **kwargs)
        logs.append(result.stdout or "")
        return result

    original = apply_plugin.subprocess
    apply_plugin.subprocess = types.SimpleNamespace(run=run, PIPE=subprocess.PIPE,
                                                    STDOUT=subprocess.STDOUT)
    try:
        # LiteRT prints its own "Skipping failed compilation" line and progress bars that
        # reach 100 % on failure too; the caller logs one line and gets one error.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            result = aot_compile.aot_compile(model_path, output_dir=workdir,
                                             target=_target_object(target), keep_going=True,
                                             **options)
    finally:
        apply_plugin.subprocess = original
    return result, "\n".join(logs)


def _failure_reason(target, module, log, result, options) -> str:
    for _, error in result.failed_backends:  # LiteRT keeps the log in a file it names
        match = re.search(r"See (\S+\.error) for details", str(error))
        if match and os.path.dirname(match.group(1)) == tempfile.gettempdir():
            with contextlib.suppress(OSError):
                os.remove(match.group(1))
    missing = sorted(set(re.findall(r"([\w.+-]+\.so[\w.]*): cannot open shared object", log)))
    if missing:
        reason = f"the compiler cannot load {', '.join(missing)}"
        if target.vendor == "intel_openvino" and "intel_openvino_graph_backends" not in options:
            reason += (" (Intel's NPU compiler, not in the openvino wheel; "
                       "--npu-option intel_openvino_graph_backends=cpu compiles for "
                       "OpenVINO's CPU graph backend instead)")
        elif module:
            reason += (f" ({module.replace('_', '-')} installs the vendor's libraries only "
                       f"where it reached the vendor's site while installing)")
        return reason
    said = _complaints(log) or [str(e) for _, e in result.failed_backends] or \
        ["no compiled model came back"]
    return "; ".join(said)[:600]


def compile_for_npu(model_path: str, target: NpuTarget, output: Optional[str] = None,
                    options: Optional[dict] = None) -> NpuCompilation:
    """Compiles ``model_path`` for ``target`` into ``output`` (default: beside it, named
    ``<stem>_<vendor>_<SOC>.tflite``). ``options``: the vendor's compiler flags, e.g.
    ``{"intel_openvino_graph_backends": "cpu"}``. Raises NpuError when no compiler exists
    for the target here or the compile fails; a partial compile is a result."""
    stem, _ = os.path.splitext(model_path)
    output = output or f"{stem}_{target.file_suffix()}.tflite"
    module = check_compiler(target)
    workdir = tempfile.mkdtemp(prefix="swiftformer_npu_")
    try:
        result, log = _compile_capturing_log(model_path, workdir, target, dict(options or {}))
        if result.failed_backends or not result.models_with_backend:
            raise NpuError(f"compiling {model_path} for {target.name} failed: "
                           + _failure_reason(target, module, log, result, options or {}))
        compiled = result.models_with_backend[0][1]
        flatbuffer = compiled.model_bytes if compiled.in_memory else \
            open(compiled.path, "rb").read()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    with atomic_output(output) as tmp, open(tmp, "wb") as f:
        f.write(flatbuffer)
    stats = compiled.partition_stats.subgraph_stats[0] if compiled.partition_stats and \
        compiled.partition_stats.subgraph_stats else None
    left = {op: n for op, n in op_histogram(flatbuffer).items() if op != DISPATCH_OP}
    if stats is None:
        status = "partial" if left else "full"
    else:
        status = "full" if stats.num_ops_offloaded == stats.num_total_ops else "partial"
    return NpuCompilation(
        target=target.name, output=output, status=status,
        ops_on_npu=stats.num_ops_offloaded if stats else None,
        ops_total=stats.num_total_ops if stats else None,
        partitions=stats.num_partitions_offloaded if stats else None,
        left_on_cpu=left, tool_said=_complaints(log) if status != "full" else [])


def parse_options(pairs: List[str]) -> dict:
    """``NAME=VALUE`` vendor compiler flags (``--npu-option``)."""
    options = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z]\w*", name):
            raise NpuError(f"--npu-option {pair!r}: expected NAME=VALUE, e.g. "
                           f"intel_openvino_graph_backends=cpu")
        options[name] = value
    return options


def format_targets() -> str:
    """``--list-npu``: vendors, their SoCs and whether their SDK package is installed."""
    lines = []
    for vendor, socs in sorted(available_targets().items()):
        module = sdk_module(vendor)
        state = "" if not module else (
            f"  [{module.replace('_', '-')}: "
            + ("installed" if importlib.util.find_spec(module) else "not installed") + "]")
        lines.append(f"{vendor}:{state}\n  " + " ".join(socs))
    return "\n".join(lines)


@dataclasses.dataclass
class NpuRun:
    status: str  # full | partial | unknown (a model not compiled ahead of time) | failed
    ops: Dict[str, int] = dataclasses.field(default_factory=dict)  # the model file's ops
    timings: dict = dataclasses.field(default_factory=dict)  # ms: first, avg, median, ...
    outputs: Optional[list] = None
    reason: str = ""
    log: str = ""


def npu_status(ops: Dict[str, int]) -> str:
    """From a model file's ops: ``full`` when only compiled partitions are left, ``partial``
    when other ops run beside them, ``unknown`` when it was not compiled ahead of time
    (LiteRT may then compile it when loading, if the compiler is there)."""
    if DISPATCH_OP not in ops:
        return "unknown"
    return "full" if set(ops) == {DISPATCH_OP} else "partial"


def run_on_npu(model: str, runs=0, warmup=0, inputs=None, keep_outputs=False,
               openvino_backend="cpu", timeout=1800.0) -> NpuRun:
    """Runs ``model`` with LiteRT's NPU accelerator (plus the CPU for what the compile left
    out) in a child process. On an x86-64 host that is Intel OpenVINO's dispatch library,
    here on its CPU graph backend: it checks what the compiled model computes, and its
    latency is never a phone's."""
    from swiftformer_tf.runtime import compiled_model_worker
    with open(model, "rb") as f:
        ops = dict(op_histogram(f.read()))
    try:
        worker = compiled_model_worker.launch(
            model, ["--accelerator", "npu", "--openvino-backend", openvino_backend], runs,
            warmup, inputs, keep_outputs, timeout=timeout)
    except subprocess.TimeoutExpired:
        return NpuRun("failed", ops, reason=f"NPU run timed out after {timeout:.0f} s")
    report = worker.report
    if report is None or report.get("status") == "failed":
        reason = (report or {}).get("reason") or \
            (worker.log.strip().splitlines() or ["no output"])[-1][:300]
        return NpuRun("failed", ops, reason=f"the NPU accelerator could not run it: {reason}",
                      log=worker.log)
    timings = {k: report[k] for k in ("first_ms", "avg_ms", "median_ms", "min_ms", "max_ms",
                                      "std_ms", "runs") if k in report}
    return NpuRun(npu_status(ops), ops, timings, worker.outputs, log=worker.log)


def add_arguments(parser):
    """The NPU flags of ``swiftformer-export`` and ``swiftformer-compile-npu``."""
    parser.add_argument("--npu", action="append", default=[], metavar="VENDOR:SOC",
                        help="also compile ahead of time for this NPU (repeatable), e.g. "
                             "qualcomm:SM8650, mediatek:MT6989, google_tensor:Tensor_G4, "
                             "intel_openvino:LNL; --list-npu shows what this LiteRT knows")
    parser.add_argument("--npu-option", action="append", default=[], metavar="NAME=VALUE",
                        help="a vendor compiler flag of LiteRT's aot_compile (repeatable), "
                             "e.g. intel_openvino_graph_backends=cpu")
    parser.add_argument("--list-npu", action="store_true",
                        help="list the NPU vendors and SoCs of the installed LiteRT and exit")


def targets_from_args(args) -> List[NpuTarget]:
    """The checked ``--npu`` targets and options, before any work starts."""
    parse_options(args.npu_option)
    targets = [parse_target(text) for text in args.npu]
    for target in targets:
        check_compiler(target)
    return targets


def compile_targets(model_path: str, targets: List[NpuTarget], option_pairs: List[str],
                    log=print) -> List[NpuCompilation]:
    options = parse_options(option_pairs)
    results = []
    for target in targets:
        log(f"compiling {model_path} for {target.name} ...")
        results.append(compile_for_npu(model_path, target, options=options))
    return results
