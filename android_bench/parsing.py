"""Parsers for the output of the two benchmark tools in use.

- the TFLite Interpreter ``benchmark_model``: "Inference timings in us: Init: ..., First
  inference: ..., Warmup (avg): ..., Inference (avg): ..." plus ``count=... first=...
  curr=... min=... max=... avg=... std=...`` lines (microseconds) and memory lines;
- the LiteRT CompiledModel ``benchmark_model`` (``benchmark_litert_model``): a
  "BENCHMARK RESULTS" block in milliseconds.

Both also report whether a delegate ran the whole graph, part of it, or none of it.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional

_NUMBER = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"


def _find(pattern, text, flags=0) -> Optional[float]:
    match = re.search(pattern, text, flags)
    return float(match.group(1)) if match else None


def _stat_lines(text) -> List[Dict[str, float]]:
    rows = []
    for match in re.finditer(r"count=(\d+)\s+first=(\S+)\s+curr=(\S+)\s+min=(\S+)\s+max=(\S+)"
                             r"\s+avg=(\S+)\s+std=(\S+)", text):
        count, first, curr, low, high, avg, std = match.groups()
        rows.append({"count": int(count), "first": float(first), "curr": float(curr),
                     "min": float(low), "max": float(high), "avg": float(avg),
                     "std": float(std)})
    return rows


def parse_delegation(text) -> dict:
    """What the log says about delegates: name, status full / partial / none, partitions,
    replaced node counts and the ops that fell back to the CPU."""
    info = {"delegate": None, "status": None, "partitions": None, "nodes_delegated": None,
            "nodes_total": None, "fallback_ops": []}
    applied = re.findall(r"Explicitly applied (\w+) delegate, and the model graph will be "
                         r"completely executed by the delegate", text)
    partial = re.findall(r"(?:Explicitly applied )?(\w+) delegate.*?partially executed by the "
                         r"delegate w/ (\d+) delegate kernels", text)
    none = re.findall(r"Though (\w+) delegate is explicitly applied, the model graph will not "
                      r"be executed by the delegate", text)
    if none:
        info.update(delegate=none[-1], status="none")
    elif partial:
        info.update(delegate=partial[-1][0], status="partial", partitions=int(partial[-1][1]))
    elif applied:
        info.update(delegate=applied[-1], status="full")
    replaced = re.findall(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]+)\) "
                          r"node, yielding (\d+) partitions", text)
    if replaced:
        done, total, name, parts = replaced[-1]
        info["nodes_delegated"], info["nodes_total"] = int(done), int(total)
        if info["partitions"] is None:
            info["partitions"] = int(parts)
        if info["delegate"] is None:
            info["delegate"] = "XNNPACK" if "XNNPack" in name or "XNNPACK" in name else name
            info["status"] = "full" if done == total else ("partial" if int(done) else "none")
    # "Following operations are not supported by GPU delegate:" / older "Next operations ..."
    block = re.search(r"(?:Following|Next) operations are not supported by (\w+) delegate:\s*\n"
                      r"((?:[ \t]*[A-Z][A-Z0-9_]+:.*\n?)+)", text)
    if block:
        info["fallback_ops"] = re.findall(r"^[ \t]*([A-Z][A-Z0-9_]+):", block.group(2), re.M)
        if info["delegate"] is None:
            info["delegate"] = block.group(1)
        if info["status"] in (None, "full"):
            info["status"] = "partial"
    first = re.search(r"First (\d+) operations will run on the (\w+), and the remaining (\d+) "
                      r"(?:on the CPU|operations will run on the CPU)", text)
    counted = re.search(r"(\d+) operations will run on the (\w+), and the remaining (\d+) "
                        r"operations will run on the CPU", text)
    for match in (first, counted):
        if match:
            on_delegate, remaining = int(match.group(1)), int(match.group(3))
            info["nodes_delegated"], info["nodes_total"] = on_delegate, on_delegate + remaining
            if on_delegate == 0:
                info["status"] = "none"
    return info


def parse_benchmark_output(text: str) -> dict:
    """Timings (ms), memory (MB) and delegation from either tool's output."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    result = {"tool": None, "init_ms": None, "first_ms": None, "warmup_avg_ms": None,
              "avg_ms": None, "min_ms": None, "max_ms": None, "std_ms": None, "runs": None,
              "peak_memory_mb": None, "memory_init_mb": None, "memory_overall_mb": None}
    classic = re.search(r"Inference timings in us:\s*Init:\s*" + _NUMBER + r",\s*First inference:\s*"
                        + _NUMBER + r",\s*Warmup \(avg\):\s*" + _NUMBER + r",\s*Inference \(avg\):\s*"
                        + _NUMBER, text)
    if classic:
        init, first, warm, avg = (float(g) / 1e3 for g in classic.groups())
        result.update(tool="benchmark_model", init_ms=init, first_ms=first, warmup_avg_ms=warm,
                      avg_ms=avg)
        stats = _stat_lines(text)
        if stats:
            last = stats[-1]  # the timed runs come after the warm-up line
            result.update(min_ms=last["min"] / 1e3, max_ms=last["max"] / 1e3,
                          std_ms=last["std"] / 1e3, runs=last["count"])
        result["peak_memory_mb"] = _find(r"Overall peak memory footprint \(MB\) via periodic "
                                         r"monitoring:\s*" + _NUMBER, text)
        delta = re.search(r"Memory footprint delta from the start of the tool \(MB\):\s*init="
                          + _NUMBER + r"\s+overall=" + _NUMBER, text)
        if delta:
            result["memory_init_mb"], result["memory_overall_mb"] = map(float, delta.groups())
    elif "BENCHMARK RESULTS" in text:
        result["tool"] = "benchmark_litert_model"
        result["init_ms"] = _find(r"Model initialization:\s*" + _NUMBER + r"\s*ms", text)
        result["first_ms"] = _find(r"(?:Warmup \(first\)|First inference):\s*" + _NUMBER, text)
        result["warmup_avg_ms"] = _find(r"Warmup \(avg\):\s*" + _NUMBER, text)
        result["avg_ms"] = _find(r"Inference \(avg\):\s*" + _NUMBER, text)
        result["min_ms"] = _find(r"Inference \(min\):\s*" + _NUMBER, text)
        result["max_ms"] = _find(r"Inference \(max\):\s*" + _NUMBER, text)
        result["std_ms"] = _find(r"Inference \(std\):\s*" + _NUMBER, text)
        runs = _find(r"Inference \(avg\):\s*\S+\s*ms\s*\((\d+) runs\)", text)
        result["runs"] = int(runs) if runs is not None else None
        result["peak_memory_mb"] = _find(r"Peak memory:\s*" + _NUMBER, text)
        result["memory_init_mb"] = _find(r"Init footprint:\s*" + _NUMBER, text)
        result["memory_overall_mb"] = _find(r"Overall footprint:\s*" + _NUMBER, text)
    result["delegation"] = parse_delegation(text)
    return result
