"""LiteRT's GPU accelerator on this machine: is the model fully delegated, which ops does
it reject and why, and what does it compute.

Every GPU call runs ``compiled_model_worker.py`` in a child process that imports no TensorFlow
(creating the GPU model in a process that has imported TensorFlow segfaults inside the
Vulkan driver). With no GPU driver here, ``swiftformer-setup-gpu`` sets up Mesa's
lavapipe, a Vulkan driver on the CPU, and the child is pointed at it
(``software_gpu.environment``). A software GPU checks delegation and numerics; its latency
says nothing about a phone.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from typing import Dict, List, Optional

import numpy as np

from swiftformer_tf.runtime import compiled_model_worker, software_gpu
from swiftformer_tf.runtime.delegate_log import parse_delegation

SETUP_HINT = "swiftformer-setup-gpu sets up a software one (Mesa lavapipe)"


@dataclasses.dataclass
class GpuCheck:
    status: str  # full | partial | unavailable | failed
    precision: str  # fp32 | fp16, as asked of the accelerator
    adapter: Optional[str] = None  # what Dawn selected, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"
    software: bool = False  # a CPU implementation of the GPU API: latency is meaningless
    rejected_ops: Dict[str, str] = dataclasses.field(default_factory=dict)  # op -> reason
    gpu_ops: Optional[int] = None
    cpu_ops: Optional[int] = None
    reason: str = ""  # why unavailable / failed
    timings: dict = dataclasses.field(default_factory=dict)  # ms: first, avg, median, min, ...
    outputs: Optional[List[np.ndarray]] = None
    log: str = ""  # the accelerator's stderr

    def summary(self) -> str:
        where = f" on {self.adapter}" + (" (software GPU)" if self.software else "") \
            if self.adapter else ""
        if self.status == "full":
            return f"fully delegated to the GPU{where}, {self.precision}"
        if self.status == "partial":
            counts = f"{self.gpu_ops} ops on the GPU, {self.cpu_ops} on the CPU; " \
                if self.gpu_ops is not None else ""
            ops = "; ".join(f"{op}: {why}" if why else op for op, why in self.rejected_ops.items())
            return f"partially delegated{where}, {self.precision}: {counts}rejected: " \
                + (ops or "(ops not named)")
        return f"{self.status}: {self.reason}"

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("outputs")
        data["log"] = self.log[-4000:]
        return data


def _adapter(log: str):
    match = re.search(r"Selected adapter: ([^\n]+)", log)
    if not match:
        return None, False
    text = match.group(1).strip()
    return text.split(", arch=")[0], "CPU / Software" in text or "arch=software" in text


def _unavailable(check: GpuCheck):
    check.status = "unavailable"
    check.reason = _unavailable_reason(check.log)
    if not software_gpu.is_ready():
        check.reason += f" ({SETUP_HINT})"


def _unavailable_reason(log: str) -> str:
    for pattern in (r"Failed to initialize WebGPU environment[^\n]*",
                    r"Couldn't load Vulkan[^\n]*", r"No adapters? found[^\n]*",
                    r"[^\n]*Vulkan[^\n]*required[^\n]*", r"[^\n]*GPU accelerator[^\n]*not[^\n]*"):
        match = re.search(pattern, log)
        if match:
            return match.group(0).strip()[:200]
    return "no GPU accelerator could be created"


def check_gpu(model: str, precision: str = "fp32", runs: int = 0, warmup: int = 0,
              inputs: Optional[List[np.ndarray]] = None, keep_outputs: bool = False,
              timeout: float = 1800.0) -> GpuCheck:
    """Builds ``model`` (a .tflite path) for the GPU in a child process; with ``runs`` or
    ``keep_outputs`` also runs it (``inputs`` in signature order, random when None). The
    first run on a software GPU compiles every shader: about 90 s for SwiftFormer-XS, cached
    by Mesa for later processes."""
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be fp32 or fp16, got {precision!r}")
    try:
        worker = compiled_model_worker.launch(
            model, ["--accelerator", "gpu", "--precision", precision], runs, warmup, inputs,
            keep_outputs, env=software_gpu.environment(), timeout=timeout)
    except subprocess.TimeoutExpired:
        return GpuCheck("failed", precision, reason=f"GPU run timed out after {timeout:.0f} s")
    log, report, outputs = worker.log, worker.report, worker.outputs
    if report is None:
        signal = " (segmentation fault in the GPU driver)" if worker.returncode == -11 else ""
        tail = (log.strip().splitlines() or ["no output"])[-1][:200]
        return GpuCheck("failed", precision, reason=f"GPU worker exited with code "
                        f"{worker.returncode}{signal}: {tail}", log=log)
    adapter, software = _adapter(log)
    gpu_record = parse_delegation(log).get("GPU", {})
    check = GpuCheck(report["status"], precision, adapter=adapter, software=software,
                     rejected_ops=dict(gpu_record.get("fallback_reasons") or {}),
                     gpu_ops=gpu_record.get("nodes_delegated"), log=log, outputs=outputs,
                     timings={k: report[k] for k in ("first_ms", "avg_ms", "median_ms", "min_ms",
                                                     "max_ms", "std_ms", "runs") if k in report})
    if gpu_record.get("nodes_total") is not None:
        check.cpu_ops = gpu_record["nodes_total"] - gpu_record["nodes_delegated"]
    if report["status"] == "failed" and adapter is None and "WebGPU environment" in log:
        _unavailable(check)  # no adapter: not even the CPU-fallback build was made
    elif report["status"] == "failed":
        check.reason = report.get("reason", "")
    elif report["status"] == "not-full":
        # Built with the CPU as fallback: partial when the GPU took some ops, else no GPU.
        if adapter and (check.rejected_ops or (check.gpu_ops or 0) > 0):
            check.status = "partial"
        else:
            _unavailable(check)
    return check
