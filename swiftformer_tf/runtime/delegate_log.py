"""What TFLite and LiteRT logs say about delegates, delegate by delegate.

Lines may carry logcat prefixes (``05-31 10:38:42.607 22206 22206 E tflite  :``, Android
Studio's layout, ``I/tflite:``), glog and log-level prefixes (``INFO:``) and LiteRT's
``[file.h:92]``; ``clean_lines`` removes them before anything is read. Every delegate named
in the log gets its own record, so a caller asks about the delegate it requested instead of
trusting the last line printed. Used for the phone tool's output (android_bench) and for the
GPU accelerator's stderr on this machine (``swiftformer_tf.runtime.gpu``).
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional

# One line's prefixes, removed repeatedly from the left.
_PREFIXES = [
    # logcat threadtime: "05-31 10:38:42.607 22206 22206 E tflite  : " (tag may be padded)
    re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+[VDIWEF]\s+[^:]*?\s*:\s?"),
    # Android Studio: "2023-06-14 10:55:21.084 18088-18088 tflite   org.app   I  "
    re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+-\d+\s+\S+\s+\S+\s+[VDIWEF]\s+"),
    # logcat brief: "I/tflite: " or "E/tflite( 123): "
    re.compile(r"^[VDIWEF]/[\w.\-]+(?:\(\s*\d+\))?:\s?"),
    # glog: "I0000 00:00:1658183303.208241    8218 file.cc:78] "
    re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [\w.\-/]+:\d+\]\s?"),
    re.compile(r"^(?:INFO|VERBOSE|WARNING|ERROR|DEBUG):\s?"),
    # LiteRT: "[benchmark_litert_model.h:92] "
    re.compile(r"^\[[\w.\-/]+:\d+\]\s?"),
]


def clean_lines(text: str) -> List[str]:
    """The log's lines without line-ending, logcat, log-level or source-location prefixes."""
    lines = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = line.strip()
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                stripped = prefix.sub("", line, count=1)
                if stripped != line:
                    line, changed = stripped.strip(), True
        lines.append(line)
    return lines


_DELEGATE_NAMES = {
    "gpu": "GPU", "tflitegpudelegatev2": "GPU", "tflitegpudelegate": "GPU",
    "tflitemetaldelegate": "GPU", "nnapi": "NNAPI", "tflitennapidelegate": "NNAPI",
    "xnnpack": "XNNPACK", "tflitexnnpackdelegate": "XNNPACK", "hexagon": "HEXAGON",
    "tflitehexagondelegate": "HEXAGON", "coreml": "COREML", "tflitecoremldelegate": "COREML",
}


def delegate_name(raw: str) -> str:
    """``TfLiteGpuDelegateV2`` -> ``GPU``, ``TfLiteNnapiDelegate`` -> ``NNAPI``, ... Unknown
    (external) delegates keep their name without the TfLite/Delegate decoration."""
    key = raw.strip().lower()
    if key in _DELEGATE_NAMES:
        return _DELEGATE_NAMES[key]
    core = re.sub(r"^tflite|delegate(v\d+)?$", "", key)
    return _DELEGATE_NAMES.get(core, core.upper() or raw)


def _record(delegates: dict, raw_name: str) -> dict:
    name = delegate_name(raw_name)
    return delegates.setdefault(name, {
        "delegate": name, "signs": [], "partitions": None, "nodes_delegated": None,
        "nodes_total": None, "fallback_ops": [], "fallback_reasons": {}, "error": None})


_UNSUPPORTED_HEADER = re.compile(r"(?:Following|Next) operations are not supported by (\w+) "
                                 r"delegate:?\s*$")
_OP_LINE = re.compile(r"^([A-Z][A-Z0-9_]+):\s*(.*)$")


def parse_delegation(text: str) -> Dict[str, dict]:
    """Every delegate the log mentions, each with ``status`` (``full``, ``partial``,
    ``none`` or None when the log does not say), ``partitions``, replaced node counts,
    ``fallback_ops`` (with ``fallback_reasons``) and ``error`` when it was never applied."""
    return delegation_from_lines(clean_lines(text))


def delegation_from_lines(lines: List[str]) -> Dict[str, dict]:
    """``parse_delegation`` for lines ``clean_lines`` already cleaned."""
    delegates: Dict[str, dict] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        header = _UNSUPPORTED_HEADER.search(line)
        if header:
            record = _record(delegates, header.group(1))
            i += 1
            while i < len(lines):
                if not lines[i]:
                    i += 1
                    continue
                op = _OP_LINE.match(lines[i])
                if not op:
                    break
                if op.group(1) not in record["fallback_ops"]:
                    record["fallback_ops"].append(op.group(1))
                    record["fallback_reasons"][op.group(1)] = op.group(2).strip()
                i += 1
            record["signs"].append("unsupported-ops")
            continue
        _read_line(line, delegates)
        i += 1
    for record in delegates.values():
        record["status"] = _status(record)
    return delegates


# Lines that only name a delegate and say one thing about it: (pattern, sign).
_SIGN_LINES = [
    (re.compile(r"Explicitly applied (\w+) delegate, and the model graph will be completely "
                r"executed by the delegate"), "full"),
    (re.compile(r"Though (\w+) delegate is explicitly applied"), "none"),
    (re.compile(r"(\w+) acceleration is unsupported on this platform", re.I), "not-applied"),
    (re.compile(r"Could not create (\w+) delegate", re.I), "not-applied"),
    (re.compile(r"Failed to (?:apply|create) (\w+) delegate", re.I), "not-applied"),
]


def _read_line(line: str, delegates: dict):
    for pattern, sign in _SIGN_LINES:
        m = pattern.search(line)
        if m:
            record = _record(delegates, m.group(1))
            record["signs"].append(sign)
            if sign == "not-applied":
                record["error"] = record["error"] or line
            return
    m = re.search(r"(?:Explicitly applied )?(\w+) delegate, and the model graph will be "
                  r"partially executed by the delegate w/ (\d+) delegate kernels", line)
    if m:
        record = _record(delegates, m.group(1))
        record["signs"].append("partial")
        record["partitions"] = int(m.group(2))
        return
    m = re.search(r"Replacing (\d+)(?: out of (\d+))? node\(s\) with delegate \(([^)]+)\) node, "
                  r"yielding (\d+) partitions", line)
    if m:
        record = _record(delegates, m.group(3))
        # A delegate applied after another sees only the nodes left to it: its first line
        # has the model's node count.
        if record["nodes_delegated"] is None:
            record["nodes_delegated"] = int(m.group(1))
            record["nodes_total"] = int(m.group(2)) if m.group(2) else None
            record["partitions"] = record["partitions"] or int(m.group(4))
        record["signs"].append("replaced")
        return
    m = re.search(r"(\w+) delegate: (\d+) nodes delegated out of (\d+) nodes with (\d+) "
                  r"partitions", line)
    if m:
        record = _record(delegates, m.group(1))
        record["nodes_delegated"], record["nodes_total"] = int(m.group(2)), int(m.group(3))
        record["partitions"] = int(m.group(4))
        record["signs"].append("replaced")
        return
    m = re.search(r"Created (\d+) GPU delegate kernels", line)
    if m:
        _record(delegates, "GPU")["signs"].append("kernels" if int(m.group(1)) else "none")
        return
    m = re.search(r"(?:first )?(\d+) (?:operations|ops) will run on the (\w+), and the "
                  r"remaining (\d+)", line, re.I)
    if m:
        record = _record(delegates, m.group(2))
        record["nodes_delegated"] = int(m.group(1))
        record["nodes_total"] = int(m.group(1)) + int(m.group(3))
        record["signs"].append("counted")
        return
    m = re.search(r"No operations will run on the (\w+), and all (\d+) operations", line)
    if m:
        record = _record(delegates, m.group(1))
        record["nodes_delegated"], record["nodes_total"] = 0, int(m.group(2))
        record["signs"].append("none")
        return
    m = re.search(r"Created TensorFlow Lite (?:(\w+) )?delegate for (\w+)", line)
    if m:
        _record(delegates, m.group(1) or m.group(2))["signs"].append("created")


def _status(record) -> Optional[str]:
    signs = record["signs"]
    done, total = record["nodes_delegated"], record["nodes_total"]
    if "none" in signs or "not-applied" in signs or done == 0:
        return "none"
    if "partial" in signs or "unsupported-ops" in signs or \
            (done is not None and total is not None and done < total):
        return "partial"
    if "full" in signs or (done is not None and done == total):
        return "full"
    if done is not None:  # "Replacing N node(s)" without a total (older builds)
        return "partial" if record["partitions"] and record["partitions"] > 1 else None
    return None
