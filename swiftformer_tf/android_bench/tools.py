"""The two benchmark tools a user may hand us, and the flags each configuration means for
each. Only flags the binary defines are passed: its ``--help`` lists them.

- TFLite's Interpreter tool, ``benchmark_model`` (the nightly ``android_aarch64_benchmark_model``):
  ``--use_xnnpack``, ``--use_gpu`` with ``--gpu_precision_loss_allowed`` (default true, i.e.
  fp16), ``--use_nnapi``, ``--enable_op_profiling``, ``--report_peak_memory_footprint``.
- LiteRT's CompiledModel tool, ``benchmark_litert_model`` (LiteRT's prebuilt binaries are also
  called ``benchmark_model``; source ``litert/tools/benchmark_litert_model.*``):
  ``--use_cpu``, ``--use_gpu``, ``--use_npu`` with ``--dispatch_library_dir``,
  ``--require_full_delegation`` (refused together with ``--use_cpu=true``), ``--allow_fp16``
  (default true: its GPU runs in fp16 unless told), ``--use_profiler``; no NNAPI. Its output
  says nothing about delegation, so a GPU or NPU row is proved full by a run with
  ``--use_cpu=false --require_full_delegation=true``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import FrozenSet, List, Optional

from swiftformer_tf.android_bench.configs import Config
from swiftformer_tf.errors import UnsupportedConfig

CLASSIC = "benchmark_model"
LITERT = "benchmark_litert_model"


def flags_in_help(text: str) -> FrozenSet[str]:
    """Flag names from a TFLite-style usage text (``--num_runs=50	int32	optional	...``)."""
    return frozenset(name.replace("-", "_")
                     for name in re.findall(r"(?:^|\s)--([A-Za-z][\w\-]*)=", text))


@dataclasses.dataclass(frozen=True)
class BenchmarkTool:
    kind: str  # CLASSIC or LITERT
    flags: Optional[FrozenSet[str]] = None  # from --help; None when it listed none

    def supports(self, flag: str) -> bool:
        return self.flags is None or flag in self.flags

    def _optional(self, name, value) -> List[str]:
        return [f"--{name}={value}"] if self.flags is not None and name in self.flags else []

    def _required(self, name, value, why) -> List[str]:
        if not self.supports(name):
            raise UnsupportedConfig(f"this {self.kind} has no --{name} ({why})")
        return [f"--{name}={value}"]

    def command_flags(self, config: Config, runs: int, warmup: int, op_profiling=False,
                      strict=True, dispatch_dir: Optional[str] = None) -> List[str]:
        """Flags for one run (without --graph). ``strict``: for LiteRT's GPU and NPU
        rows, the run that fails unless every op goes to the accelerator.
        ``dispatch_dir``: the device folder holding the NPU dispatch library."""
        if config.backend == "arm":
            raise UnsupportedConfig(f"{config.name}: emulated ARM CPUs run on the host "
                                    f"(--host); on a phone, cpu:N runs its own ARM kernels")
        common = [f"--num_runs={runs}", f"--warmup_runs={warmup}"]
        common += self._optional("report_peak_memory_footprint", "true")
        if self.kind == CLASSIC:
            return self._classic(config) + common + \
                (self._required("enable_op_profiling", "true", "op profiling")
                 if op_profiling else [])
        return self._litert(config, strict, dispatch_dir) + common + \
            (self._required("use_profiler", "true", "op profiling") if op_profiling else [])

    def _classic(self, config: Config) -> List[str]:
        if config.backend == "cpu":
            return [f"--num_threads={config.threads}"] + \
                self._required("use_xnnpack", "true", "XNNPACK CPU runs")
        if config.backend == "npu":
            raise UnsupportedConfig("benchmark_model has no NPU path: npu rows need LiteRT's "
                                    "benchmark_litert_model (--benchmark-binary) and a model "
                                    "compiled by swiftformer-compile-npu")
        if config.backend == "gpu":
            # The tool's default is true (fp16): fp32 must be asked for.
            return self._required("use_gpu", "true", "GPU runs") + \
                self._required("gpu_precision_loss_allowed", "true" if config.fp16 else "false",
                               "GPU precision")
        return self._required("use_nnapi", "true", "NNAPI runs") + \
            [f"--num_threads={config.threads}"]

    def _litert(self, config: Config, strict: bool, dispatch_dir=None) -> List[str]:
        if config.backend == "nnapi":
            raise UnsupportedConfig("benchmark_litert_model has no NNAPI: NNAPI rows need TFLite's "
                                    "benchmark_model (NNAPI is deprecated since Android 15; "
                                    "LiteRT's NPU path replaces it)")
        if config.backend == "cpu":
            return ["--use_cpu=true", "--use_gpu=false", f"--num_threads={config.threads}"]
        if config.backend == "npu":
            flags = self._required("use_npu", "true", "NPU runs") + ["--use_gpu=false"]
            if dispatch_dir:
                flags += self._required("dispatch_library_dir", dispatch_dir,
                                        "the NPU dispatch library's folder")
        else:
            flags = self._required("use_gpu", "true", "GPU runs") + self._precision(config.fp16)
        if strict:
            return flags + ["--use_cpu=false"] + \
                self._required("require_full_delegation", "true",
                               f"proving a full {config.delegate} run")
        return flags + ["--use_cpu=true"]

    def _precision(self, fp16: bool) -> List[str]:
        # allow_fp16 in LiteRT's source; a gpu_precision flag in builds that list one instead.
        if self.flags is not None and "allow_fp16" not in self.flags and \
                "gpu_precision" in self.flags:
            return ["--gpu_precision=" + ("fp16" if fp16 else "fp32")]
        return self._required("allow_fp16", "true" if fp16 else "false", "GPU precision")


def detect_tool(help_text: str, binary_path: str) -> BenchmarkTool:
    """Which tool a binary is, from its ``--help`` (flags only LiteRT's tool has), or from
    its name when the help listed no flags."""
    flags = flags_in_help(help_text or "")
    if flags:
        kind = LITERT if {"use_npu", "use_cpu"} & flags else CLASSIC
        return BenchmarkTool(kind, flags)
    name = os.path.basename(binary_path).lower()
    return BenchmarkTool(LITERT if "litert" in name else CLASSIC, None)
