"""Runs the model x configuration matrix on a phone over adb, or on this machine."""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shlex
import statistics
import time
from typing import Callable, List, Optional

from swiftformer_tf.android_bench.configs import NNAPI_DEPRECATED_SDK, Config
from swiftformer_tf.android_bench.device import Adb
from swiftformer_tf.android_bench.parsing import failure_reason, parse_benchmark_output
from swiftformer_tf.android_bench.tools import LITERT, BenchmarkTool, detect_tool
from swiftformer_tf.errors import CommandTimeout, DeviceError, DeviceLost, UnsupportedConfig

REMOTE_DIR = "/data/local/tmp"
# The NPU dispatch library and the vendor's runtime libraries go here (--npu-libs).
REMOTE_NPU_DIR = f"{REMOTE_DIR}/swiftformer_npu"


def remote_path(local: str) -> str:
    """Where a local file goes on the phone: a name of safe characters only (a local name
    reaches the device shell's command line), kept apart from a file of the same name in
    another folder by a hash of its absolute path."""
    stem, ext = os.path.splitext(os.path.basename(local))
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", stem)[:60] or "model"
    digest = hashlib.sha1(os.path.abspath(local).encode()).hexdigest()[:8]
    return f"{REMOTE_DIR}/{safe}_{digest}{re.sub(r'[^A-Za-z0-9.]', '', ext)}"


CPU_MASK_RULE = "expected a non-zero hexadecimal CPU mask such as f0"


def checked_cpu_mask(text: str) -> str:
    """A taskset CPU mask: hexadecimal digits only (with an optional 0x), never zero. It
    reaches the device shell's command line, so nothing else may pass."""
    if not isinstance(text, str) or not re.fullmatch(r"(0[xX])?[0-9a-fA-F]{1,16}", text) \
            or int(text, 16) == 0:
        raise ValueError(f"--cpu-mask {text!r:.40}: {CPU_MASK_RULE}")
    return text


def model_labels(models: List[str]) -> dict:
    """A row label per model: its file name, or as many trailing folders as it takes to
    tell models of the same file name apart."""
    labels = {}
    for model in models:
        parts = os.path.abspath(model).split(os.sep)
        depth = 1
        while depth < len(parts) and any(
                other != model and os.path.abspath(other).split(os.sep)[-depth:] == parts[-depth:]
                for other in models):
            depth += 1
        labels[model] = "/".join(parts[-depth:])
    return labels
# LiteRT's strict GPU or NPU run fails this way when the accelerator cannot take every op,
# rather than because there is no such accelerator.
_NOT_FULLY_ACCELERATED = ("not accelerated", "not fully accelerated", "full delegation",
                          "fully delegated")


def _marks(config: Config, status: Optional[str], sdk: Optional[int],
           precompiled: Optional[bool] = None) -> List[str]:
    """``partial``: the delegate ran part of the graph; ``cpu-fallback``: it ran none of it
    (or the log shows no sign it ran), so the number is a CPU number. NPU rows say
    ``npu-full`` or ``npu-partial``, and ``not-precompiled`` for a model that was not
    compiled ahead of time (only a device with the vendor's compiler can compile it)."""
    marks = []
    if config.backend == "npu":
        # "unknown": a host run of a model not compiled ahead of time (LiteRT compiled it)
        mark = {"full": "npu-full", "partial": "npu-partial", "unknown": None}.get(
            status, "cpu-fallback")
        marks += [mark] if mark else []
        if precompiled is False:
            marks.append("not-precompiled")
    elif config.delegate:
        if status == "partial":
            marks.append("partial")
        elif status != "full":
            marks.append("cpu-fallback")
    if config.backend == "nnapi" and sdk is not None and sdk >= NNAPI_DEPRECATED_SDK:
        marks.append("nnapi-deprecated")
    return marks


def _row(model, config, **fields):
    row = {"model": os.path.basename(model), "model_path": model, "config": config.name,
           "status": "ok", "reason": "", "model_size_mb": round(os.path.getsize(model) / 1e6, 3)
           if os.path.isfile(model) else None}
    row.update(fields)
    return row


def _delegation_fields(delegates: dict, config: Config) -> dict:
    """The row's delegate columns: those of the delegate the configuration asked for."""
    record = delegates.get(config.delegate) if config.delegate else delegates.get("XNNPACK")
    record = record or {}
    return {"delegate": record.get("delegate") or config.delegate,
            "delegate_status": record.get("status"), "partitions": record.get("partitions"),
            "nodes_delegated": record.get("nodes_delegated"),
            "nodes_total": record.get("nodes_total"),
            "fallback_ops": list(record.get("fallback_ops") or []),
            "fallback_reasons": dict(record.get("fallback_reasons") or {}),
            "delegate_error": record.get("error"),
            "delegates": {name: {k: v for k, v in r.items() if k != "signs"}
                          for name, r in delegates.items()}}


def _precompiled(model: str, config: Config) -> Optional[bool]:
    """For NPU rows: does the model hold NPU partitions compiled ahead of time?"""
    if config.backend != "npu":
        return None
    from swiftformer_tf.runtime.npu import DISPATCH_OP, op_histogram
    try:
        with open(model, "rb") as f:
            return DISPATCH_OP in op_histogram(f.read())
    except Exception:  # not a flatbuffer we can read: say nothing rather than guess
        return None


class DeviceRunner:
    """A benchmark tool on a phone: pushes it and the models, runs each configuration with
    the flags that tool defines, and reads its output."""

    def __init__(self, adb: Adb, binary: str, runs: int, warmup: int, cpu_mask=None,
                 op_profiling=False, timeout=600.0, cooldown=0.0, repeats=1, log=print,
                 npu_libs: Optional[str] = None):
        self.adb, self.binary, self.runs, self.warmup = adb, binary, runs, warmup
        self.npu_libs = npu_libs
        self.cpu_mask = checked_cpu_mask(cpu_mask) if cpu_mask else None
        self.op_profiling = op_profiling
        self.timeout, self.cooldown, self.repeats, self.log = timeout, cooldown, repeats, log
        self.remote_binary = remote_path(binary)
        self.pushed = set()
        self.info = None
        self.tool: Optional[BenchmarkTool] = None

    def prepare(self):
        if not os.path.isfile(self.binary):
            raise DeviceError(f"{self.binary}: benchmark binary not found (download "
                              f"android_aarch64_benchmark_model, see README)")
        self.info = self.adb.device_info()
        self.adb.push(self.binary, self.remote_binary)
        binary = shlex.quote(self.remote_binary)
        result = self.adb.shell(f"chmod 755 {binary} && test -x {binary} && echo ok", timeout=60)
        if "ok" not in result.stdout:
            raise DeviceError(f"{self.remote_binary}: cannot be made executable on the device "
                              f"({(result.stdout + result.stderr).strip()[:200]})")
        if self.info.get("abi") and "arm64" in self.info["abi"] and "aarch64" not in \
                os.path.basename(self.binary) and "arm" in os.path.basename(self.binary):
            self.log(f"warning: {self.binary} may not match the device ABI {self.info['abi']}")
        if self.npu_libs:
            self._push_npu_libs()
        usage = self.adb.shell(f"{shlex.quote(self.remote_binary)} --help", timeout=60)
        self.tool = detect_tool(usage.stdout + usage.stderr, self.binary)
        how = f"{len(self.tool.flags)} flags from its --help" if self.tool.flags else \
            "its --help listed no flags, so chosen by its name; every flag is passed"
        self.log(f"benchmark tool: {self.tool.kind} ({how})")
        self.info["benchmark_tool"] = self.tool.kind
        return self.info

    def _push_npu_libs(self):
        """The dispatch library and the vendor runtime (e.g. Qualcomm's libQnnHtp.so,
        libQnnSystem.so, libQnnHtpV75Stub.so / Skel.so) from the --npu-libs folder."""
        if not os.path.isdir(self.npu_libs):
            raise DeviceError(f"--npu-libs {self.npu_libs}: not a folder")
        libraries = sorted(f for f in os.listdir(self.npu_libs) if ".so" in f)
        if not libraries:
            raise DeviceError(f"--npu-libs {self.npu_libs}: no .so files in it (the dispatch "
                              f"library and the vendor's runtime libraries, see README)")
        self.adb.shell(f"mkdir -p {REMOTE_NPU_DIR}", timeout=60)
        for name in libraries:
            if re.search(r"[^A-Za-z0-9._+-]", name):
                raise DeviceError(f"--npu-libs: {name!r}: unsafe file name for the device shell")
            self.adb.push(os.path.join(self.npu_libs, name), f"{REMOTE_NPU_DIR}/{name}")
        self.log(f"pushed {len(libraries)} NPU libraries to {REMOTE_NPU_DIR}")

    def command(self, remote_model, config: Config, strict=True) -> str:
        npu_dir = REMOTE_NPU_DIR if config.backend == "npu" and self.npu_libs else None
        flags = [f"--graph={shlex.quote(remote_model)}", *self.tool.command_flags(
            config, self.runs, self.warmup, self.op_profiling, strict, npu_dir)]
        prefix = f"taskset {self.cpu_mask} " if self.cpu_mask else ""
        if npu_dir:
            # the dispatch library loads the vendor runtime; Qualcomm's DSP side reads ADSP_*
            prefix = f"LD_LIBRARY_PATH={npu_dir}:$LD_LIBRARY_PATH ADSP_LIBRARY_PATH={npu_dir} " \
                + prefix
        return prefix + " ".join([shlex.quote(self.remote_binary)] + flags)

    def _invoke(self, command):
        result = self.adb.shell(command, timeout=self.timeout)
        output = result.stdout + result.stderr
        return output, parse_benchmark_output(output), result.returncode

    def _lost_or_failed(self, model, config, output, code):
        if not self.adb.is_connected():
            raise DeviceLost("device disconnected")
        return _row(model, config, status="failed", reason=failure_reason(output, code),
                    log=output, tool=self.tool.kind, **(self.info or {}))

    def run(self, model: str, config: Config) -> dict:
        sdk = (self.info or {}).get("android_sdk")
        if config.backend == "nnapi" and sdk is not None and sdk >= NNAPI_DEPRECATED_SDK:
            self.log(f"warning: NNAPI is deprecated on Android 15+ (this device: SDK {sdk}); "
                     f"running {model} on it as asked, the row is marked")
        remote = remote_path(model)
        try:
            command = self.command(remote, config)
        except UnsupportedConfig as err:
            return _row(model, config, status="failed", reason=str(err), tool=self.tool.kind,
                        **(self.info or {}))
        litert_accelerator = self.tool.kind == LITERT and config.backend in ("gpu", "npu")
        try:
            if model not in self.pushed:
                self.adb.push(model, remote)
                self.pushed.add(model)
            averages, outputs, parsed, note, proved = [], [], None, "", None
            for _ in range(self.repeats):
                output, parsed, code = self._invoke(command)
                outputs.append(output)
                if litert_accelerator and proved is None:
                    proved = parsed["avg_ms"] is not None and code == 0
                    if not proved:
                        # Not every op went to the accelerator, or there is none: run again
                        # with the CPU as fallback and say which from the strict run's log.
                        note = f"strict {config.delegate} run failed: " + \
                            failure_reason(output, code)
                        command = self.command(remote, config, strict=False)
                        output, parsed, code = self._invoke(command)
                        outputs.append(output)
                if code != 0 or parsed["avg_ms"] is None:
                    return self._lost_or_failed(model, config, output, code)
                averages.append(parsed["avg_ms"])
                if self.cooldown:
                    time.sleep(self.cooldown)
        except CommandTimeout as err:
            return _row(model, config, status="failed", reason=f"timed out: {err}",
                        tool=self.tool.kind, **(self.info or {}))
        fields = _delegation_fields(parsed.pop("delegates"), config)
        if litert_accelerator:
            # benchmark_litert_model prints nothing about delegation: the strict run is the
            # proof of a full GPU or NPU row.
            strict_log = outputs[0].lower()
            if proved:
                fields["delegate_status"] = "full"
            elif any(s in strict_log for s in _NOT_FULLY_ACCELERATED):
                fields["delegate_status"] = "partial"
            else:
                fields["delegate_status"] = "none"
            fields["delegate_note"] = note
        return _row(model, config, **(self.info or {}), **parsed, **fields,
                    median_ms=statistics.median(averages), repeat_avgs_ms=averages,
                    command=command, marks=_marks(config, fields["delegate_status"], sdk,
                                                  _precompiled(model, config)),
                    log="\n".join(outputs))


class HostRunner:
    """The same matrix on this machine with the LiteRT interpreter."""

    def __init__(self, runs: int, warmup: int, log=print):
        self.runs, self.warmup, self.log = runs, warmup, log
        import platform
        self.info = {"serial": "host", "device_model": platform.node() or "host",
                     "soc": platform.processor() or platform.machine(), "android_sdk": None,
                     "abi": platform.machine()}

    def prepare(self):
        return self.info

    def run(self, model: str, config: Config) -> dict:
        from swiftformer_tf.runtime.interpreter import (load_interpreter, set_random_inputs,
                                                 summarize_graph, timed_calls)
        if config.backend == "nnapi":
            return _row(model, config, status="failed", reason="NNAPI exists only on Android",
                        **self.info)
        if config.backend == "gpu":
            return self._run_gpu(model, config)
        if config.backend == "npu":
            return self._run_npu(model, config)
        if config.backend == "arm":
            return self._run_arm(model, config)
        try:
            start = time.perf_counter()
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            interpreter = load_interpreter(model, config.threads)
            init_ms = (time.perf_counter() - start) * 1e3
            set_random_inputs(interpreter)
            times = timed_calls(interpreter.invoke, self.warmup + self.runs)
            graph = summarize_graph(model)
        except (ValueError, RuntimeError, FileNotFoundError) as err:
            return _row(model, config, status="failed", reason=str(err)[:200], **self.info)
        except MemoryError:
            return _row(model, config, status="failed", reason="out of memory running this "
                        "model (its inputs or activations are too large)", **self.info)
        warm, timed = times[:self.warmup], times[self.warmup:]
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return _row(model, config, **self.info, tool="litert-interpreter", init_ms=init_ms,
                    first_ms=times[0], warmup_avg_ms=statistics.fmean(warm) if warm else None,
                    avg_ms=statistics.fmean(timed), median_ms=statistics.median(timed),
                    min_ms=min(timed), max_ms=max(timed),
                    std_ms=statistics.pstdev(timed), runs=len(timed),
                    peak_memory_mb=round(max(peak - rss_before, 0) / 1024, 2),
                    delegate="XNNPACK", delegate_status="full" if not graph.cpu_ops else "partial",
                    partitions=graph.partitions, fallback_ops=sorted(graph.cpu_ops), marks=[])

    def _run_gpu(self, model, config):
        """LiteRT's GPU accelerator (WebGPU over Vulkan) in a child process without
        TensorFlow; on a software GPU (lavapipe) the row is marked so its latency is never
        read as a GPU's."""
        from swiftformer_tf.runtime.gpu import check_gpu
        check = check_gpu(model, "fp16" if config.fp16 else "fp32", runs=self.runs,
                          warmup=self.warmup)
        if check.status in ("unavailable", "failed"):
            reason = ("no GPU accelerator on this host: " if check.status == "unavailable"
                      else "GPU run failed: ") + check.reason
            return _row(model, config, status="failed", reason=reason[:300], **self.info)
        timings = check.timings
        marks = ["partial"] if check.status == "partial" else []
        if check.software:
            marks.append("software-gpu")
        return _row(model, config, **self.info, tool="litert-compiled-model-gpu",
                    gpu_adapter=check.adapter, gpu_precision=check.precision,
                    first_ms=timings.get("first_ms"), avg_ms=timings.get("avg_ms"),
                    median_ms=timings.get("median_ms"), min_ms=timings.get("min_ms"),
                    max_ms=timings.get("max_ms"), std_ms=timings.get("std_ms"),
                    runs=timings.get("runs"), delegate="GPU", delegate_status=check.status,
                    nodes_delegated=check.gpu_ops,
                    nodes_total=None if check.cpu_ops is None else check.gpu_ops + check.cpu_ops,
                    fallback_ops=sorted(check.rejected_ops),
                    fallback_reasons=check.rejected_ops, marks=marks)


    def _run_npu(self, model, config):
        """LiteRT's NPU accelerator with Intel OpenVINO's dispatch library on its CPU graph
        backend, in a child process: the only NPU path an x86-64 host has. Delegation is
        real; the row is marked ``host-openvino-cpu`` so its latency is never read as an
        NPU's."""
        from swiftformer_tf.runtime.npu import DISPATCH_OP, run_on_npu
        run = run_on_npu(model, runs=self.runs, warmup=self.warmup)
        if run.status == "failed":
            return _row(model, config, status="failed", reason=run.reason[:300], **self.info)
        timings = run.timings
        marks = _marks(config, run.status, None, run.status != "unknown") + ["host-openvino-cpu"]
        return _row(model, config, **self.info, tool="litert-compiled-model-npu",
                    first_ms=timings.get("first_ms"), avg_ms=timings.get("avg_ms"),
                    median_ms=timings.get("median_ms"), min_ms=timings.get("min_ms"),
                    max_ms=timings.get("max_ms"), std_ms=timings.get("std_ms"),
                    runs=timings.get("runs"), delegate="NPU", delegate_status=run.status,
                    fallback_ops=sorted(op for op in run.ops if op != DISPATCH_OP),
                    marks=marks)


    def _run_arm(self, model, config):
        """The phone's CPU kernels (LiteRT's aarch64 build, XNNPACK) on an emulated ARM CPU,
        on the same random input as the x86 interpreter: guest instructions for one
        inference and the answer against x86's. Marked ``emulated-arm``: no latency."""
        from swiftformer_tf.runtime.arm import ArmCpu, run_on_arm
        run = run_on_arm(model, ArmCpu(config.arm_cpu, config.fp16))
        if run.status in ("failed", "unavailable"):
            return _row(model, config, status="failed", reason=run.reason[:300],
                        marks=["emulated-arm"], **self.info)
        return _row(model, config, **self.info, tool="litert-aarch64-qemu",
                    runtime=run.runtime, qemu_cpu=run.qemu_cpu, cpu_features=run.cpu_features,
                    guest_instructions=run.guest_instructions,
                    instruction_mix=run.instruction_mix, reason=run.reason,
                    cosine_vs_host=run.vs_host["cosine_vs_host"],
                    max_rel_diff_vs_host=run.vs_host["max_rel_diff_vs_host"],
                    top1_agreement_vs_host=run.vs_host["top1_agreement_vs_host"],
                    emulated_s=round(run.emulated_s, 2),
                    marks=["emulated-arm"] + (["mismatch"] if run.status == "mismatch" else []))


def run_matrix(runner, models: List[str], configs: List[Config], results: dict,
               save: Callable[[dict], None], resume=False, log=print) -> dict:
    """Runs every (model, config) row, saving after each; ``resume`` skips rows done."""
    done = {(r["model_path"], r["config"]) for r in results["rows"] if r["status"] == "ok"}
    if not resume:
        results["rows"], done = [], set()
    else:
        results["rows"] = [r for r in results["rows"] if r["status"] == "ok"]
    lost = None
    labels = model_labels(models)
    for model in models:
        for config in configs:
            if (model, config.name) in done:
                log(f"skip  {labels[model]} {config.name} (done)")
                continue
            if lost:
                row = _row(model, config, status="failed", reason=lost, **(runner.info or {}))
            else:
                try:
                    row = runner.run(model, config)
                except DeviceLost as err:
                    lost = f"device disconnected: {err}"
                    row = _row(model, config, status="failed", reason=lost, **(runner.info or {}))
                except DeviceError as err:
                    row = _row(model, config, status="failed", reason=str(err)[:200],
                               **(runner.info or {}))
            row["model"] = labels[model]  # same file names in two folders stay two rows
            results["rows"].append(row)
            save(results)
            if row["status"] != "ok":
                status = f"FAILED: {row['reason']}"
            elif "emulated-arm" in (row.get("marks") or []):
                count = row.get("guest_instructions")
                status = (f"{count / 1e6:.2f} M instructions" if count is not None else
                          "not counted") + f", cosine {row['cosine_vs_host']:.6f} vs x86"
            else:
                status = f"{row['median_ms']:.2f} ms"
            marks = f" [{', '.join(row.get('marks') or [])}]" if row.get("marks") else ""
            log(f"{labels[model]:40s} {config.name:10s} {status}{marks}")
    return results
