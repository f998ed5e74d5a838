"""An emulated phone CPU: where the folder that ``swiftformer-setup-arm`` builds is
(``$SWIFTFORMER_ARM_EMULATOR`` or ``~/.cache/swiftformer_tf/arm_emulator``), which CPUs it
emulates, and the command line that runs a script with its arm64 Python on one of them.

Phones run XNNPACK's ARM kernels (NEON, int8 dot product, i8mm, fp16 arithmetic, SME), not the
x86 ones every host figure comes from. Use it for answers and instruction counts, never for
time: an emulated instruction costs nothing like a phone's. What the folder holds and how it
is built: ``swiftformer_tf/cli/setup_arm_emulator.py``.
"""

from __future__ import annotations

import os
import tempfile
from typing import Dict, List, Optional

ENV_DIR = "SWIFTFORMER_ARM_EMULATOR"

# Emulated CPUs: QEMU's -cpu, and the implementer / part numbers of the matching ARM core for
# the guest's /proc/cpuinfo (XNNPACK reads the ISA from the kernel's hwcaps, which QEMU sets
# from -cpu; cpuinfo only has to be an ARM one).
CPUS: Dict[str, dict] = {
    "cortex-a53": {"qemu": "cortex-a53", "implementer": "0x41", "part": "0xd03",
                   "about": "ARMv8.0: NEON, no dot product, no fp16 arithmetic"},
    "cortex-a76": {"qemu": "cortex-a76", "implementer": "0x41", "part": "0xd0b",
                   "about": "ARMv8.2: int8 dot product (SDOT), fp16 arithmetic"},
    "i8mm": {"qemu": "max,sme=off", "implementer": "0x41", "part": "0xd4f",
             "about": "ARMv8.6+ without SME: dot product, int8 matrix multiply (SMMLA), "
                      "fp16, bf16, SVE2"},
    "sme": {"qemu": "max", "implementer": "0x41", "part": "0xd4f", "emulator": "qemu10",
            "about": "QEMU 10's max: i8mm, SVE2 and SME (no instruction counts: Debian's "
                     "QEMU 10 is a static build without plugins)"},
    "sme-qemu7": {"qemu": "max", "implementer": "0x41", "part": "0xd4f",
                  "about": "QEMU 7.2's max with SME, whose SME emulation is wrong: kept to "
                           "show what a wrong emulated answer looks like (marked mismatch)"},
}


def default_dir() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get(ENV_DIR) or os.path.join(cache, "swiftformer_tf", "arm_emulator")


def paths(folder: Optional[str] = None) -> dict:
    folder = os.path.abspath(folder or default_dir())
    return {"folder": folder,
            "qemu": os.path.join(folder, "host", "usr", "bin", "qemu-aarch64"),
            "qemu10": os.path.join(folder, "host", "qemu10", "qemu-aarch64"),
            "host_lib": os.path.join(folder, "host", "usr", "lib", "x86_64-linux-gnu"),
            "python": os.path.join(folder, "sysroot", "usr", "bin", "python3.11"),
            "site": os.path.join(folder, "site"),
            "plugin": os.path.join(folder, "libicount.so"),
            "manifest": os.path.join(folder, "manifest.json")}


def cpu_root(cpu: str, folder: Optional[str] = None) -> str:
    return os.path.join(paths(folder)["folder"], "cpus", cpu)


def is_ready(folder: Optional[str] = None) -> bool:
    p = paths(folder)
    return all(os.path.exists(p[k]) for k in ("qemu", "qemu10", "python", "site", "plugin",
                                              "manifest"))


def can_count(cpu: str) -> bool:
    """Whether instructions can be counted on ``cpu``'s emulator (QEMU 10's build has no
    plugin support)."""
    return CPUS[cpu].get("emulator", "qemu") == "qemu"


def command(cpu: str, script: str, args: List[str], count=False,
            folder: Optional[str] = None) -> tuple:
    """(argv, env) that run ``script`` with the arm64 Python on emulated ``cpu``; with
    ``count`` the instruction-count plugin is loaded where it can be (its counts go to
    stderr), with ``count="profile"`` also its per-block counts."""
    if cpu not in CPUS:
        raise ValueError(f"unknown emulated CPU {cpu!r}: use one of {', '.join(CPUS)}")
    p = paths(folder)
    # -U: the host's LD_LIBRARY_PATH (QEMU's own libraries) is not the guest's.
    argv = [p[CPUS[cpu].get("emulator", "qemu")], "-cpu", CPUS[cpu]["qemu"],
            "-L", cpu_root(cpu, folder), "-U", "LD_LIBRARY_PATH"]
    if count and can_count(cpu):
        argv += ["-plugin", p["plugin"] + (",profile=on" if count == "profile" else ""),
                 "-d", "plugin"]
    argv += [p["python"], "-s", script, *args]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": p["site"], "PYTHONNOUSERSITE": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "LD_LIBRARY_PATH": p["host_lib"],
           "HOME": os.environ.get("HOME", "/tmp"), "TMPDIR": tempfile.gettempdir()}
    return argv, env
