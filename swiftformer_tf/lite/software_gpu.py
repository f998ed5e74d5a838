"""A software GPU for checking LiteRT GPU delegation on a machine with no GPU.

ai-edge-litert's only GPU accelerator on Linux is WebGPU (Dawn) over Vulkan. Mesa's
lavapipe is a Vulkan driver that runs on the CPU; Dawn accepts Mesa 25's lavapipe (Debian
12's own Mesa 22.3 lacks the dynamic-indexing features Dawn requires). ``setup`` downloads
Mesa 25 from Debian's bookworm-backports with a private apt configuration, unpacks it into a
folder and writes a Vulkan ICD file there; nothing on the system changes. ``environment``
gives the variables that point a child process at that folder.

Use it for delegation and numerics only: a CPU pretending to be a GPU says nothing about a
phone's GPU latency.

    python tflite/setup_software_gpu.py [--dir DIR]
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
from typing import Dict, List, Optional

ENV_DIR = "SWIFTFORMER_SOFTWARE_GPU"
MESA_VERSION = "25.0.7-2~bpo12+1"
LIBDRM_VERSION = "2.4.123-1~bpo12+1"
# package=version from bookworm-backports (Mesa 25 and the libdrm it needs), and the Vulkan
# loader from bookworm itself.
PACKAGES = [f"mesa-vulkan-drivers={MESA_VERSION}", f"libdrm2={LIBDRM_VERSION}",
            f"libdrm-amdgpu1={LIBDRM_VERSION}", "libvulkan1"]
DEFAULT_MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
LIB_SUBDIR = os.path.join("root", "usr", "lib", "x86_64-linux-gnu")
ICD_FILE = "lvp_icd.json"


class SoftwareGpuError(RuntimeError):
    """The software GPU cannot be set up here; the message says why and what to do."""


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


def _mirror() -> str:
    """The Debian mirror this machine's apt already uses (deb822 or one-line sources)."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for line in open(path):
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    if os.path.isfile("/etc/apt/sources.list"):
        for line in open("/etc/apt/sources.list"):
            parts = line.split()
            if parts[:1] == ["deb"] and "security" not in line:
                return next(p for p in parts[1:] if p.startswith("http"))
    return DEFAULT_MIRROR


def _apt(args: List[str], state: str, cwd: Optional[str] = None):
    options = [f"-o=Dir::State::Lists={state}/lists", f"-o=Dir::Etc::SourceList={state}/sources.list",
               "-o=Dir::Etc::SourceParts=/nonexistent", f"-o=Dir::Cache={state}",
               f"-o=Dir::Cache::Archives={state}/archives", "-o=Debug::NoLocking=1",
               "-o=APT::Sandbox::User=root"]
    result = subprocess.run(["apt-get", *options, *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SoftwareGpuError(f"apt-get {args[0]} failed: "
                               + (result.stderr.strip().splitlines() or ["?"])[-1])


def setup(folder: Optional[str] = None, log=print) -> str:
    """Downloads and unpacks Mesa 25 lavapipe into ``folder`` (idempotent); returns it."""
    folder = os.path.abspath(folder or default_dir())
    if is_ready(folder):
        log(f"software GPU already set up in {folder}")
        return folder
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise SoftwareGpuError(f"{tool} not found: the software GPU is set up from Debian "
                                   f"packages and needs a Debian-based machine")
    if os.uname().machine != "x86_64":
        raise SoftwareGpuError(f"only x86-64 is supported (this machine: {os.uname().machine})")
    os.makedirs(os.path.dirname(folder) or ".", exist_ok=True)
    # Build beside the target and rename at the end: a killed setup leaves no half folder.
    work = tempfile.mkdtemp(prefix=".software_gpu-", dir=os.path.dirname(folder) or ".")
    try:
        state = os.path.join(work, "apt")
        for sub in ("lists/partial", "archives/partial"):
            os.makedirs(os.path.join(state, sub))
        mirror = _mirror()
        signed = f"[signed-by={KEYRING}] " if os.path.isfile(KEYRING) else ""
        with open(os.path.join(state, "sources.list"), "w") as f:
            f.write(f"deb {signed}{mirror} bookworm main\n"
                    f"deb {signed}{mirror} bookworm-backports main\n")
        log(f"software GPU: reading package lists from {mirror} (bookworm, bookworm-backports)")
        _apt(["update"], state)
        debs = os.path.join(work, "debs")
        os.makedirs(debs)
        log("software GPU: downloading " + ", ".join(PACKAGES) + " (about 12 MB)")
        try:
            _apt(["download", *PACKAGES], state, cwd=debs)
        except SoftwareGpuError:
            # Backports move on and drop old builds: take the suite's current ones instead.
            log("software GPU: pinned versions gone from backports; taking the current ones")
            _apt(["download", *[p.split("=")[0] + ("/bookworm-backports" if "=" in p else "")
                                for p in PACKAGES]], state, cwd=debs)
        for deb in sorted(glob.glob(os.path.join(debs, "*.deb"))):
            subprocess.run(["dpkg-deb", "-x", deb, os.path.join(work, "root")], check=True)
        lib = os.path.join(folder, LIB_SUBDIR)  # the path the ICD file names after the rename
        with open(os.path.join(work, ICD_FILE), "w") as f:
            json.dump({"file_format_version": "1.0.0",
                       "ICD": {"library_path": os.path.join(lib, "libvulkan_lvp.so"),
                               "api_version": "1.3.0"}}, f, indent=2)
        shutil.rmtree(state)
        shutil.rmtree(debs)
        missing = _missing_libraries(os.path.join(work, LIB_SUBDIR, "libvulkan_lvp.so"),
                                     os.path.join(work, LIB_SUBDIR))
        if missing:
            raise SoftwareGpuError("lavapipe needs libraries this machine lacks: "
                                   + ", ".join(missing) + " (install them with apt-get)")
        if os.path.exists(folder):
            shutil.rmtree(folder)
        os.replace(work, folder)
    finally:
        if os.path.isdir(work):
            shutil.rmtree(work, ignore_errors=True)
    log(f"software GPU ready in {folder}")
    return folder


def _missing_libraries(library: str, libdir: str) -> List[str]:
    env = dict(os.environ, LD_LIBRARY_PATH=libdir)
    result = subprocess.run(["ldd", library], capture_output=True, text=True, env=env)
    return [line.split()[0] for line in result.stdout.splitlines() if "not found" in line]
