"""A software GPU for checking LiteRT GPU delegation on a machine with no GPU: where the
folder that ``swiftformer-setup-gpu`` builds is (``$SWIFTFORMER_SOFTWARE_GPU`` or
``~/.cache/swiftformer_tf/software_gpu``), whether it is ready, and ``environment``: the
variables that point a child process's Vulkan loader at it (Mesa's lavapipe, a Vulkan
driver that runs on the CPU).

Use it for delegation and numerics only: a CPU pretending to be a GPU says nothing about a
phone's GPU latency.
"""

from __future__ import annotations

import os
from typing import Dict, Optional

ENV_DIR = "SWIFTFORMER_SOFTWARE_GPU"
LIB_SUBDIR = os.path.join("root", "usr", "lib", "x86_64-linux-gnu")
ICD_FILE = "lvp_icd.json"


def default_dir() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get(ENV_DIR) or os.path.join(cache, "swiftformer_tf", "software_gpu")


def is_ready(folder: Optional[str] = None) -> bool:
    folder = folder or default_dir()
    return (os.path.isfile(os.path.join(folder, ICD_FILE))
            and os.path.isfile(os.path.join(folder, LIB_SUBDIR, "libvulkan_lvp.so")))


def environment(folder: Optional[str] = None, base: Optional[Dict[str, str]] = None) -> dict:
    """``base`` (default: os.environ) with the software GPU's variables added when it is set
    up in ``folder``; unchanged otherwise (a real GPU driver, if any, is then used)."""
    env = dict(os.environ if base is None else base)
    folder = folder or default_dir()
    if is_ready(folder):
        lib = os.path.join(folder, LIB_SUBDIR)
        env["VK_ICD_FILENAMES"] = os.path.join(folder, ICD_FILE)
        env["LD_LIBRARY_PATH"] = lib + (os.pathsep + env["LD_LIBRARY_PATH"]
                                        if env.get("LD_LIBRARY_PATH") else "")
        # Mesa's shader cache beside the driver: later processes skip the compilation.
        env.setdefault("MESA_SHADER_CACHE_DIR", os.path.join(folder, "shader_cache"))
        # LLVM without optimisation passes: compiling SwiftFormer-XS's shaders takes about
        # half as long, and speed on a software GPU does not matter.
        env.setdefault("GALLIVM_PERF", "nopt")
    return env

