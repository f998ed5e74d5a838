"""``swiftformer-setup-gpu``: a software GPU (Mesa 25 lavapipe, a CPU Vulkan driver) so that
LiteRT's GPU accelerator runs on a machine with no GPU: for checking GPU delegation and
numerics, never latency. Idempotent; touches nothing outside the folder.

    swiftformer-setup-gpu [--dir DIR]

ai-edge-litert's only GPU accelerator on Linux is WebGPU (Dawn) over Vulkan; Dawn accepts Mesa
25's lavapipe (Debian 12's own Mesa 22.3 lacks the dynamic-indexing features Dawn requires).
Mesa 25 comes from Debian's bookworm-backports through a private apt configuration, unpacked
into the folder with a Vulkan ICD file; nothing on the system changes. The default folder is
$SWIFTFORMER_SOFTWARE_GPU or ~/.cache/swiftformer_tf/software_gpu, where the runtime
(``swiftformer_tf.runtime.software_gpu``) finds it.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from typing import List, Optional

from swiftformer_tf.cli import installing
from swiftformer_tf.errors import SetupError
from swiftformer_tf.runtime.software_gpu import (ENV_DIR, ICD_FILE, LIB_SUBDIR, default_dir,
                                                 is_ready)

MESA_VERSION = "25.0.7-2~bpo12+1"
LIBDRM_VERSION = "2.4.123-1~bpo12+1"
# package=version from bookworm-backports (Mesa 25 and the libdrm it needs), and the Vulkan
# loader from bookworm itself.
PACKAGES = [f"mesa-vulkan-drivers={MESA_VERSION}", f"libdrm2={LIBDRM_VERSION}",
            f"libdrm-amdgpu1={LIBDRM_VERSION}", "libvulkan1"]


def _apt(args: List[str], state: str, cwd: Optional[str] = None):
    options = [f"-o=Dir::State::Lists={state}/lists", f"-o=Dir::Etc::SourceList={state}/sources.list",
               "-o=Dir::Etc::SourceParts=/nonexistent", f"-o=Dir::Cache={state}",
               f"-o=Dir::Cache::Archives={state}/archives", "-o=Debug::NoLocking=1",
               "-o=APT::Sandbox::User=root"]
    result = subprocess.run(["apt-get", *options, *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SetupError(f"apt-get {args[0]} failed: "
                         + (result.stderr.strip().splitlines() or ["?"])[-1])


def setup(folder: Optional[str] = None, log=print) -> str:
    """Downloads and unpacks Mesa 25 lavapipe into ``folder`` (idempotent); returns it."""
    folder = os.path.abspath(folder or default_dir())
    if is_ready(folder):
        log(f"software GPU already set up in {folder}")
        return folder
    installing.check_host("the software GPU")
    with installing.folder_built_beside(folder) as work:
        state = os.path.join(work, "apt")
        for sub in ("lists/partial", "archives/partial"):
            os.makedirs(os.path.join(state, sub))
        mirror = installing.mirror()
        signed = f"[signed-by={installing.KEYRING}] " if os.path.isfile(installing.KEYRING) else ""
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
        except SetupError:
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
        missing = installing.missing_libraries(
            os.path.join(work, LIB_SUBDIR, "libvulkan_lvp.so"), os.path.join(work, LIB_SUBDIR))
        if missing:
            raise SetupError("lavapipe needs libraries this machine lacks: "
                             + ", ".join(missing) + " (install them with apt-get)")
    log(f"software GPU ready in {folder}")
    return folder


def main(argv=None):
    return installing.main("swiftformer-setup-gpu", __doc__, setup, default_dir, ENV_DIR, argv)


if __name__ == "__main__":
    sys.exit(main())
