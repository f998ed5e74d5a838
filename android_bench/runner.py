"""Runs the model x configuration matrix on a phone over adb, or on this machine."""

from __future__ import annotations

import os
import resource
import shlex
import statistics
import time
from typing import Callable, List, Optional

from android_bench.configs import NNAPI_DEPRECATED_SDK, Config
from android_bench.device import Adb, CommandTimeout, DeviceError, DeviceLost
from android_bench.parsing import parse_benchmark_output

REMOTE_DIR = "/data/local/tmp"


def _marks(config: Config, delegation: dict, sdk: Optional[int]) -> List[str]:
    marks = []
    if config.backend in ("gpu", "nnapi"):
        if delegation.get("status") == "none" or (
                delegation.get("delegate") not in (None, config.backend.upper())
                and delegation.get("status") == "full"):
            marks.append("cpu-fallback")
        elif delegation.get("status") == "partial":
            marks.append("partial")
        elif delegation.get("status") is None:
            marks.append("cpu-fallback")  # no sign of the delegate: never report it as used
    if config.backend == "nnapi" and sdk is not None and sdk >= NNAPI_DEPRECATED_SDK:
        marks.append("nnapi-deprecated")
    return marks


def _row(model, config, **fields):
    row = {"model": os.path.basename(model), "model_path": model, "config": config.name,
           "status": "ok", "reason": "", "model_size_mb": round(os.path.getsize(model) / 1e6, 3)
           if os.path.isfile(model) else None}
    row.update(fields)
    return row


class DeviceRunner:
    """benchmark_model on a phone: pushes the tool and the models, runs each config."""

    def __init__(self, adb: Adb, binary: str, runs: int, warmup: int, cpu_mask=None,
                 op_profiling=False, timeout=600.0, cooldown=0.0, repeats=1, log=print):
        self.adb, self.binary, self.runs, self.warmup = adb, binary, runs, warmup
        self.cpu_mask, self.op_profiling = cpu_mask, op_profiling
        self.timeout, self.cooldown, self.repeats, self.log = timeout, cooldown, repeats, log
        self.remote_binary = f"{REMOTE_DIR}/{os.path.basename(binary)}"
        self.pushed = set()
        self.info = None

    def prepare(self):
        if not os.path.isfile(self.binary):
            raise DeviceError(f"{self.binary}: benchmark binary not found (download "
                              f"android_aarch64_benchmark_model, see README)")
        self.info = self.adb.device_info()
        self.adb.push(self.binary, self.remote_binary)
        result = self.adb.shell(f"chmod 755 {self.remote_binary} && test -x {self.remote_binary}"
                                f" && echo ok", timeout=60)
        if "ok" not in result.stdout:
            raise DeviceError(f"{self.remote_binary}: cannot be made executable on the device "
                              f"({(result.stdout + result.stderr).strip()[:200]})")
        if self.info.get("abi") and "arm64" in self.info["abi"] and "aarch64" not in \
                os.path.basename(self.binary) and "arm" in os.path.basename(self.binary):
            self.log(f"warning: {self.binary} may not match the device ABI {self.info['abi']}")
        return self.info

    def command(self, remote_model, config: Config) -> str:
        flags = [f"--graph={remote_model}", *config.flags(), f"--num_runs={self.runs}",
                 f"--warmup_runs={self.warmup}", "--report_peak_memory_footprint=true"]
        if self.op_profiling:
            flags.append("--enable_op_profiling=true")
        prefix = f"taskset {self.cpu_mask} " if self.cpu_mask else ""
        return prefix + " ".join([shlex.quote(self.remote_binary)] + flags)

    def run(self, model: str, config: Config) -> dict:
        sdk = (self.info or {}).get("android_sdk")
        if config.backend == "nnapi" and sdk is not None and sdk >= NNAPI_DEPRECATED_SDK:
            self.log(f"warning: NNAPI is deprecated on Android 15+ (this device: SDK {sdk}); "
                     f"running {model} on it as asked, the row is marked")
        remote = f"{REMOTE_DIR}/{os.path.basename(model)}"
        try:
            if model not in self.pushed:
                self.adb.push(model, remote)
                self.pushed.add(model)
            averages, outputs, parsed = [], [], None
            for _ in range(self.repeats):
                result = self.adb.shell(self.command(remote, config), timeout=self.timeout)
                output = result.stdout + result.stderr
                outputs.append(output)
                parsed = parse_benchmark_output(output)
                if result.returncode != 0 or parsed["avg_ms"] is None:
                    lost = not self.adb.is_connected()
                    reason = ("device disconnected" if lost else
                              _failure_reason(output, result.returncode))
                    if lost:
                        raise DeviceLost(reason)
                    return _row(model, config, status="failed", reason=reason, log=output,
                                **(self.info or {}))
                averages.append(parsed["avg_ms"])
                if self.cooldown:
                    time.sleep(self.cooldown)
        except CommandTimeout as err:
            return _row(model, config, status="failed", reason=f"timed out: {err}",
                        **(self.info or {}))
        delegation = parsed.pop("delegation")
        return _row(model, config, **(self.info or {}), **parsed,
                    median_ms=statistics.median(averages), repeat_avgs_ms=averages,
                    delegate=delegation["delegate"], delegate_status=delegation["status"],
                    partitions=delegation["partitions"], fallback_ops=delegation["fallback_ops"],
                    marks=_marks(config, delegation, sdk), log="\n".join(outputs))


def _failure_reason(output, code):
    for line in output.splitlines():
        lowered = line.lower()
        if any(k in lowered for k in ("error", "failed", "not found", "permission denied",
                                      "cannot", "unable")):
            return line.strip()[:200]
    return f"benchmark_model exited with code {code} without timings"


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
        from swiftformer_tf.lite.runtime import load_interpreter, random_input, summarize_graph
        if config.backend == "nnapi":
            return _row(model, config, status="failed", reason="NNAPI exists only on Android",
                        **self.info)
        if config.backend == "gpu":
            return self._run_gpu(model, config)
        try:
            start = time.perf_counter()
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            interpreter = load_interpreter(model, config.threads)
            init_ms = (time.perf_counter() - start) * 1e3
            for detail in interpreter.get_input_details():
                interpreter.set_tensor(detail["index"], random_input(detail))
            times = []
            for _ in range(self.warmup + self.runs):
                t = time.perf_counter()
                interpreter.invoke()
                times.append((time.perf_counter() - t) * 1e3)
            graph = summarize_graph(model)
        except (ValueError, RuntimeError, FileNotFoundError) as err:
            return _row(model, config, status="failed", reason=str(err)[:200], **self.info)
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
        try:
            from ai_edge_litert.compiled_model import CompiledModel
            from ai_edge_litert.hardware_accelerator import HardwareAccelerator
            compiled = CompiledModel.from_file(model, hardware_accel=HardwareAccelerator.GPU)
            full = compiled.is_fully_accelerated()
        except Exception as err:  # no GPU runtime on this host
            return _row(model, config, status="failed",
                        reason="no GPU accelerator on this host: "
                        + (str(err).strip().splitlines() or ["?"])[0][:120], **self.info)
        inputs, outputs = compiled.create_input_buffers(0), compiled.create_output_buffers(0)
        times = []
        for _ in range(self.warmup + self.runs):
            t = time.perf_counter()
            compiled.run_by_index(0, inputs, outputs)
            times.append((time.perf_counter() - t) * 1e3)
        warm, timed = times[:self.warmup], times[self.warmup:]
        return _row(model, config, **self.info, tool="litert-compiled-model",
                    first_ms=times[0], warmup_avg_ms=statistics.fmean(warm) if warm else None,
                    avg_ms=statistics.fmean(timed), median_ms=statistics.median(timed),
                    min_ms=min(timed), max_ms=max(timed), std_ms=statistics.pstdev(timed),
                    runs=len(timed), delegate="GPU", delegate_status="full" if full else "partial",
                    marks=[] if full else ["partial"])


def run_matrix(runner, models: List[str], configs: List[Config], results: dict,
               save: Callable[[dict], None], resume=False, log=print) -> dict:
    """Runs every (model, config) row, saving after each; ``resume`` skips rows done."""
    done = {(r["model_path"], r["config"]) for r in results["rows"] if r["status"] == "ok"}
    if not resume:
        results["rows"], done = [], set()
    else:
        results["rows"] = [r for r in results["rows"] if r["status"] == "ok"]
    lost = None
    for model in models:
        for config in configs:
            if (model, config.name) in done:
                log(f"skip  {os.path.basename(model)} {config.name} (done)")
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
            results["rows"].append(row)
            save(results)
            status = f"{row['median_ms']:.2f} ms" if row["status"] == "ok" else \
                f"FAILED: {row['reason']}"
            marks = f" [{', '.join(row.get('marks') or [])}]" if row.get("marks") else ""
            log(f"{os.path.basename(model):40s} {config.name:10s} {status}{marks}")
    return results
