"""Parsers for the output of the two benchmark tools, as real devices print it.

- TFLite's Interpreter ``benchmark_model``: ``count=... first=... min=... max=... avg=...
  std=...`` lines and a summary, ``Inference timings in us: Init: ..., First inference: ...,
  Warmup (avg): ..., Inference (avg): ...`` (TF 1.x: ``Average inference timings in us:
  Warmup: ..., Init: ..., Inference|no stats: ...``), all in microseconds, and memory lines;
- LiteRT's CompiledModel ``benchmark_model`` (``benchmark_litert_model``): a ``BENCHMARK
  RESULTS`` block in milliseconds.

Prefixes and delegation are read by ``swiftformer_tf.runtime.delegate_log``. The fixtures in
tests/fixtures/benchmark_logs/ are real published logs of each case.
"""

from __future__ import annotations

import re
from typing import Optional

from swiftformer_tf.runtime.delegate_log import clean_lines, delegation_from_lines

_NUMBER = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"


def _find(pattern, text, flags=0) -> Optional[float]:
    match = re.search(pattern, text, flags)
    return float(match.group(1)) if match else None


# -- timings and memory ---------------------------------------------------------------------
_STAT = re.compile(r"^count=(\d+)(?:\s+first=(\S+))?\s+curr=(\S+)(?:\s+min=(\S+)\s+max=(\S+)"
                   r"\s+avg=(\S+)\s+std=(\S+))?")


def _stat(line) -> Optional[dict]:
    """A benchmark statistics line; the op profiler's ``Timings (microseconds): count=...``
    does not start with ``count=`` and is never taken for one."""
    m = _STAT.match(line)
    if not m:
        return None
    count, first, curr, low, high, avg, std = m.groups()
    value = float(curr)
    return {"count": int(count), "first": float(first) if first else value,
            "min": float(low) if low else value, "max": float(high) if high else value,
            "avg": float(avg) if avg else value, "std": float(std) if std else 0.0}


def _classic(lines, result) -> bool:
    summary_at = None
    for i, line in enumerate(lines):
        m = re.search(r"^Inference timings in us:\s*Init:\s*" + _NUMBER + r",\s*First inference:"
                      r"\s*" + _NUMBER + r",\s*Warmup \(avg\):\s*" + _NUMBER + r",\s*Inference "
                      r"\(avg\):\s*" + _NUMBER, line)
        if m:
            init, first, warm, avg = (float(g) / 1e3 for g in m.groups())
            result.update(init_ms=init, first_ms=first, warmup_avg_ms=warm, avg_ms=avg)
            summary_at = i
            break
        m = re.search(r"^Average inference timings in us:\s*Warmup:\s*" + _NUMBER + r",\s*Init:\s*"
                      + _NUMBER + r",\s*(?:Inference|no stats):\s*" + _NUMBER, line)
        if m:
            warm, init, avg = (float(g) / 1e3 for g in m.groups())
            result.update(init_ms=init, warmup_avg_ms=warm, avg_ms=avg)
            summary_at = i
            break
    if summary_at is None:
        return False
    result["tool"] = "benchmark_model"
    # The timed runs' statistics are the last "count=" line before the summary; the op
    # profiler prints its own tables (and a "Timings (microseconds)" line) after it.
    stats = [s for s in map(_stat, lines[:summary_at]) if s]
    if stats:
        timed = stats[-1]
        result.update(min_ms=timed["min"] / 1e3, max_ms=timed["max"] / 1e3,
                      std_ms=timed["std"] / 1e3, runs=timed["count"])
        if result.get("first_ms") is None and len(stats) > 1:
            result["first_ms"] = stats[0]["first"] / 1e3
    text = "\n".join(lines)
    result["peak_memory_mb"] = _find(r"^Overall peak memory footprint \(MB\) via periodic "
                                     r"monitoring:\s*" + _NUMBER, text, re.M)
    memory = re.search(r"^(?:Memory footprint delta from the start of the tool|Peak memory "
                       r"footprint) \(MB\):\s*init=" + _NUMBER + r"\s+overall=" + _NUMBER, text,
                       re.M)
    if memory:
        result["memory_init_mb"], result["memory_overall_mb"] = map(float, memory.groups())
    return True


def _litert(lines, result) -> bool:
    text = "\n".join(lines)
    if "BENCHMARK RESULTS" not in text:
        return False
    result["tool"] = "benchmark_litert_model"
    result["init_ms"] = _find(r"^Model initialization:\s*" + _NUMBER + r"\s*ms", text, re.M)
    result["first_ms"] = _find(r"^(?:Warmup \(first\)|First inference):\s*" + _NUMBER, text, re.M)
    result["warmup_avg_ms"] = _find(r"^Warmup \(avg\):\s*" + _NUMBER, text, re.M)
    result["avg_ms"] = _find(r"^Inference \(avg\):\s*" + _NUMBER, text, re.M)
    result["min_ms"] = _find(r"^Inference \(min\):\s*" + _NUMBER, text, re.M)
    result["max_ms"] = _find(r"^Inference \(max\):\s*" + _NUMBER, text, re.M)
    result["std_ms"] = _find(r"^Inference \(std\):\s*" + _NUMBER, text, re.M)
    runs = _find(r"^Inference \(avg\):\s*\S+\s*ms\s*\((\d+) runs\)", text, re.M)
    result["runs"] = int(runs) if runs is not None else None
    result["peak_memory_mb"] = _find(r"^Peak memory:\s*" + _NUMBER, text, re.M)
    result["memory_init_mb"] = _find(r"^Init footprint:\s*" + _NUMBER, text, re.M)
    result["memory_overall_mb"] = _find(r"^Overall footprint:\s*" + _NUMBER, text, re.M)
    signature = re.search(r"^Signature name:\s*(\S+)", text, re.M)
    result["signature"] = signature.group(1) if signature else None
    return True


def parse_benchmark_output(text: str) -> dict:
    """Timings (ms), memory (MB) and delegation (per delegate) from either tool's output."""
    lines = clean_lines(text)
    result = {"tool": None, "init_ms": None, "first_ms": None, "warmup_avg_ms": None,
              "avg_ms": None, "min_ms": None, "max_ms": None, "std_ms": None, "runs": None,
              "peak_memory_mb": None, "memory_init_mb": None, "memory_overall_mb": None}
    _classic(lines, result) or _litert(lines, result)
    result["delegates"] = delegation_from_lines(lines)  # lines cleaned once
    return result


# -- why a run failed -----------------------------------------------------------------------
# Printed by runs that went on to succeed: never the reason a row failed.
_BENIGN = [re.compile(p, re.I) for p in (
    r"nnapi error: unable to open library", r"Failed to load OpenCL library",
    r"Duplicate flags", r"Logging before InitGoogle", r"NPU accelerator could not be loaded",
    r"Failed to load plugin at", r"Could not load shared library .*(openvino|Qnn|neuron)",
)]
_ERROR_WORDS = re.compile(r"error|failed|not found|permission denied|cannot|can't|couldn't|"
                          r"unable|abort|segmentation fault|killed|not true", re.I)
# Lines logged at error level: "ERROR: ...", "E/tflite: ...", logcat's " E ", glog's "E0000".
_ERROR_LEVEL = re.compile(r"^\s*(?:ERROR:|E/|E\d{4} |\d\d-\d\d \S+\s+\d+\s+\d+\s+E\s|"
                          r"\d{4}-\d\d-\d\d \S+\s+\d+-\d+\s+\S+\s+\S+\s+E\s)")


def failure_reason(text: str, returncode: Optional[int]) -> str:
    """The line that says why a run produced no timings: a ``Failed to ...`` line first
    (with the first error detail before it), else the first error line, else the exit code.
    Known harmless warnings are skipped."""
    raw = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = clean_lines(text)  # one cleaned line per raw line
    candidates = [(i, line) for i, line in enumerate(lines)
                  if line and (_ERROR_WORDS.search(line) or _ERROR_LEVEL.match(raw[i]))
                  and not any(b.search(line) for b in _BENIGN)
                  and not re.match(r"^Benchmarking failed\.?$", line)]
    failed = next(((i, line) for i, line in candidates if re.match(r"^Failed to", line)), None)
    if failed:
        detail = next((line for i, line in candidates if i < failed[0]), None)
        return (failed[1] + (f" ({detail})" if detail else ""))[:300]
    if candidates:
        return candidates[0][1][:300]
    signal = {134: "aborted (SIGABRT)", 139: "segmentation fault (SIGSEGV)",
              137: "killed (SIGKILL, out of memory?)"}.get(returncode or 0)
    return signal or f"the benchmark tool exited with code {returncode} without timings"
