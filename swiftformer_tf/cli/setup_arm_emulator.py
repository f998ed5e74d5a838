"""``swiftformer-setup-arm``: an emulated phone CPU, LiteRT's aarch64 runtime under QEMU user
mode, so a .tflite file runs through XNNPACK's ARM kernels on this x86-64 machine. For
answers and instruction counts, never latency. Idempotent; Debian and PyPI only; touches
nothing outside the folder.

    swiftformer-setup-arm [--dir DIR]

It puts together, with nothing changed on the system:

- ``qemu-aarch64`` (QEMU 7.2, Debian's ``qemu-user``) and the libraries it needs that a
  Debian machine may lack, unpacked from the debs (and QEMU 10's static build for SME);
- an arm64 Python 3.11 root made of Debian's own arm64 debs (a private apt configuration
  whose architecture is arm64), with the aarch64 wheels of ai-edge-litert and numpy from PyPI;
- one root per emulated CPU, whose ``proc/cpuinfo`` is an ARM one (QEMU's ``-L`` prefix also
  redirects file opens; with the host's x86 cpuinfo the runtime segfaults when it creates
  the interpreter);
- ``libicount.so``, the QEMU plugin that counts guest instructions (``arm_icount.c`` beside
  this file), built with gcc against ``qemu-plugin.h`` of the same QEMU version (Debian's
  source package; the header stays in ``include/`` for rebuilding it).

The default folder is $SWIFTFORMER_ARM_EMULATOR or ~/.cache/swiftformer_tf/arm_emulator, where
the runtime (``swiftformer_tf.runtime.arm_emulator``) finds it.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
from typing import List, Optional

from swiftformer_tf.cli import installing
from swiftformer_tf.errors import SetupError
from swiftformer_tf.runtime.arm_emulator import CPUS, ENV_DIR, default_dir, is_ready

QEMU_VERSION = "1:7.2+dfsg-7+deb12u18+b3"  # a binNMU of source 1:7.2+dfsg-7+deb12u18
# The host side: QEMU's user-mode emulators and the two libraries they link that a
# plain Debian 12 lacks (glib, gnutls and zlib are there on any machine that has apt).
HOST_PACKAGES = [f"qemu-user={QEMU_VERSION}", "libcapstone4", "liburing2"]
# QEMU 7.2 emulates SME wrongly (XNNPACK's SME int8 kernels give another answer than x86 on
# the same file; QEMU 10 gives x86's, bit for bit), so SME runs on QEMU 10 from
# bookworm-backports: a static build, which cannot load plugins (no instruction counts).
QEMU_SME_PACKAGE = "qemu-user=1:10.0.2+ds-2+deb13u1~bpo12+1"
# The guest side: Debian's arm64 Python (the runtime's wheels need glibc 2.27+ and libstdc++).
GUEST_PACKAGES = ["python3.11-minimal", "libpython3.11-stdlib", "libstdc++6"]
WHEELS = ["ai-edge-litert==2.3.0", "numpy==2.2.6"]
WHEEL_PLATFORMS = ["manylinux_2_27_aarch64", "manylinux_2_28_aarch64", "manylinux2014_aarch64",
                   "manylinux_2_17_aarch64"]
PLUGIN_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "arm_icount.c")


class _Apt:
    """apt-get with its own lists, cache and (empty) package status in ``state``: it fetches
    debs for ``architecture`` without touching the system's apt state."""

    def __init__(self, state: str, architecture: str, mirror: str, source: bool = False):
        self.state = state
        for sub in ("lists/partial", "archives/partial"):
            os.makedirs(os.path.join(state, sub), exist_ok=True)
        open(os.path.join(state, "status"), "w").close()
        signed = f"[signed-by={installing.KEYRING}] " if os.path.isfile(installing.KEYRING) else ""
        kinds = ["deb"] + (["deb-src"] if source else [])
        with open(os.path.join(state, "sources.list"), "w") as f:
            for kind in kinds:
                f.write(f"{kind} {signed}{mirror} bookworm main\n"
                        f"{kind} {signed}{mirror} bookworm-updates main\n"
                        f"{kind} {signed}{mirror} bookworm-backports main\n")
        self.options = [
            f"-o=APT::Architecture={architecture}", f"-o=APT::Architectures={architecture}",
            f"-o=Dir::State::Lists={state}/lists", f"-o=Dir::State::status={state}/status",
            f"-o=Dir::Etc::SourceList={state}/sources.list",
            "-o=Dir::Etc::SourceParts=/nonexistent", f"-o=Dir::Cache={state}",
            f"-o=Dir::Cache::Archives={state}/archives", "-o=Debug::NoLocking=1",
            "-o=APT::Sandbox::User=root"]

    def __call__(self, *args: str, cwd: Optional[str] = None):
        result = subprocess.run(["apt-get", "-q", "-y", *self.options, *args], cwd=cwd,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise SetupError(f"apt-get {args[0]} failed: "
                             + (result.stderr.strip().splitlines() or ["?"])[-1])
        return result.stdout


def _unpack_all(debs: List[str], into: str):
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", deb, into], check=True)


def _field(deb: str, form: str) -> str:
    return subprocess.run(["dpkg-deb", "--showformat", form, "-W", deb], capture_output=True,
                          text=True, check=True).stdout.strip()


def _version(deb: str) -> str:
    return _field(deb, "${Package}=${Version}")


def _host_side(work: str, mirror: str, log) -> List[str]:
    apt = _Apt(os.path.join(work, "apt-amd64"), "amd64", mirror, source=True)
    log("arm emulator: reading package lists (amd64 and sources) from " + mirror)
    apt("update")
    debs = os.path.join(work, "debs-host")
    os.makedirs(debs)
    log("arm emulator: downloading " + ", ".join(HOST_PACKAGES) + " (about 12 MB)")
    try:
        apt("download", *HOST_PACKAGES, cwd=debs)
    except SetupError:
        # A point release replaced the pinned build: take bookworm's current one.
        log("arm emulator: pinned QEMU gone from the mirror; taking bookworm's current build")
        apt("download", *[p.split("=")[0] for p in HOST_PACKAGES], cwd=debs)
    found = sorted(glob.glob(os.path.join(debs, "*.deb")))
    _unpack_all(found, os.path.join(work, "host"))
    qemu_deb = next(d for d in found if os.path.basename(d).startswith("qemu-user_"))
    # qemu-plugin.h of exactly this QEMU: the plugin API version must match the binary's.
    # A binNMU's (+bN) Source field names the source version it was built from.
    source = _field(qemu_deb, "${source:Package}=${source:Version}")
    log(f"arm emulator: downloading QEMU's source {source} for qemu-plugin.h (24 MB)")
    sources = os.path.join(work, "src")
    os.makedirs(sources)
    apt("source", "--download-only", source, cwd=sources)
    tarball = next(iter(sorted(glob.glob(os.path.join(sources, "qemu_*.orig.tar.*")))), None)
    if tarball is None:
        raise SetupError("QEMU's source package has no .orig tarball")
    with tarfile.open(tarball) as tar:
        member = next((m for m in tar if m.name.endswith("include/qemu/qemu-plugin.h")), None)
        if member is None:
            raise SetupError(f"{os.path.basename(tarball)} has no qemu-plugin.h")
        with open(os.path.join(work, "qemu-plugin.h"), "wb") as f:
            f.write(tar.extractfile(member).read())
    shutil.rmtree(sources)
    log(f"arm emulator: downloading {QEMU_SME_PACKAGE} from bookworm-backports for SME "
        f"(63 MB; only qemu-aarch64 is kept)")
    newer = os.path.join(work, "debs-qemu10")
    os.makedirs(newer)
    try:
        apt("download", QEMU_SME_PACKAGE, cwd=newer)
    except SetupError:
        apt("download", "qemu-user/bookworm-backports", cwd=newer)
    deb = glob.glob(os.path.join(newer, "*.deb"))[0]
    os.makedirs(os.path.join(work, "host", "qemu10"))
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE) as tar_out:
        with tarfile.open(fileobj=tar_out.stdout, mode="r|") as tar:
            for member in tar:
                if member.name.lstrip("./") == "usr/bin/qemu-aarch64":
                    with open(os.path.join(work, "host", "qemu10", "qemu-aarch64"), "wb") as f:
                        f.write(tar.extractfile(member).read())  # and read on to the end
    os.chmod(os.path.join(work, "host", "qemu10", "qemu-aarch64"), 0o755)
    return [_version(d) for d in found] + [_version(deb)]


def _guest_side(work: str, mirror: str, log) -> List[str]:
    apt = _Apt(os.path.join(work, "apt-arm64"), "arm64", mirror)
    log("arm emulator: reading arm64 package lists")
    apt("update")
    log("arm emulator: downloading arm64 Python 3.11 and its libraries (about 16 MB)")
    apt("install", "-d", "--no-install-recommends", *GUEST_PACKAGES)
    found = sorted(glob.glob(os.path.join(apt.state, "archives", "*.deb")))
    _unpack_all(found, os.path.join(work, "sysroot"))
    log("arm emulator: installing the aarch64 wheels " + ", ".join(WHEELS) + " (about 120 MB)")
    platforms = [arg for p in WHEEL_PLATFORMS for arg in ("--platform", p)]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-compile", "--target", os.path.join(work, "site"), *platforms,
         "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
         "--abi", "cp311", *WHEELS], capture_output=True, text=True)
    if result.returncode != 0:
        raise SetupError("pip could not fetch the aarch64 wheels: "
                         + (result.stderr.strip().splitlines() or ["?"])[-1])
    _compile_bytecode(work, log)
    return [_version(d) for d in found] + WHEELS


def _compile_bytecode(work: str, log):
    """Debian's python3.11 debs and pip --target leave no .pyc: without them every emulated
    start compiles numpy and the stdlib again (numpy's import: 5 s instead of 1.7 s).
    Bytecode does not depend on the CPU, only on the Python version: the host's Python
    writes it when it is 3.11, else the emulated one does (slower, once)."""
    log("arm emulator: compiling the guest's Python files to bytecode")
    folders = [os.path.join(work, "site"), os.path.join(work, "sysroot", "usr", "lib",
                                                        "python3.11")]
    if sys.version_info[:2] == (3, 11):
        argv, env = [sys.executable], None
    else:
        root = os.path.join(work, "sysroot")
        argv = [os.path.join(work, "host", "usr", "bin", "qemu-aarch64"), "-L", root,
                "-U", "LD_LIBRARY_PATH", os.path.join(root, "usr", "bin", "python3.11")]
        env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(work, "host", "usr", "lib",
                                                            "x86_64-linux-gnu"))
    # Some stdlib test files do not compile on purpose: the return code is not an error.
    subprocess.run([*argv, "-m", "compileall", "-q", "-j", "0", *folders], env=env,
                   capture_output=True)


def _build_plugin(work: str, log):
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise SetupError("no C compiler (gcc) to build the instruction-count plugin: "
                         "apt-get install gcc")
    log("arm emulator: building the instruction-count plugin")
    include = os.path.join(work, "include")
    os.makedirs(include)
    shutil.move(os.path.join(work, "qemu-plugin.h"), os.path.join(include, "qemu-plugin.h"))
    result = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-I", include, "-o",
                             os.path.join(work, "libicount.so"), PLUGIN_SOURCE],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SetupError("the instruction-count plugin does not build: "
                         + result.stderr.strip()[-400:])


def _cpu_roots(work: str, folder: str):
    """One root per CPU: links to the shared arm64 root and its own proc/cpuinfo. The links
    name the final folder, where the work folder will be renamed to."""
    for cpu, spec in CPUS.items():
        root = os.path.join(work, "cpus", cpu)
        os.makedirs(os.path.join(root, "proc"))
        for name in os.listdir(os.path.join(work, "sysroot")):
            os.symlink(os.path.join(folder, "sysroot", name), os.path.join(root, name))
        entry = ("processor\t: {n}\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\n"
                 f"CPU implementer\t: {spec['implementer']}\nCPU architecture: 8\n"
                 f"CPU variant\t: 0x0\nCPU part\t: {spec['part']}\nCPU revision\t: 0\n\n")
        with open(os.path.join(root, "proc", "cpuinfo"), "w") as f:
            f.write("".join(entry.format(n=n) for n in range(2)))


def setup(folder: Optional[str] = None, log=print) -> str:
    """Builds the emulator folder (idempotent: an existing complete one is kept); returns it."""
    folder = os.path.abspath(folder or default_dir())
    if is_ready(folder):
        log(f"arm emulator already set up in {folder}")
        return folder
    installing.check_host("the emulator")
    if not (shutil.which("gcc") or shutil.which("cc")):
        raise SetupError("no C compiler (gcc) to build the instruction-count plugin: "
                         "apt-get install gcc")
    with installing.folder_built_beside(folder) as work:
        mirror = installing.mirror()
        host = _host_side(work, mirror, log)
        guest = _guest_side(work, mirror, log)
        _build_plugin(work, log)
        for leftover in ("apt-amd64", "apt-arm64", "debs-host", "debs-qemu10"):
            shutil.rmtree(os.path.join(work, leftover), ignore_errors=True)
        _cpu_roots(work, folder)
        missing = installing.missing_libraries(
            os.path.join(work, "host", "usr", "bin", "qemu-aarch64"),
            os.path.join(work, "host", "usr", "lib", "x86_64-linux-gnu"))
        if missing:
            raise SetupError("qemu-aarch64 needs libraries this machine lacks: "
                             + ", ".join(missing) + " (install them with apt-get)")
        with open(os.path.join(work, "manifest.json"), "w") as f:
            json.dump({"host_packages": host, "guest_packages": guest,
                       "cpus": {k: v["qemu"] for k, v in CPUS.items()}}, f, indent=1)
    log(f"arm emulator ready in {folder}")
    return folder


def main(argv=None):
    return installing.main("swiftformer-setup-arm", __doc__, setup, default_dir, ENV_DIR, argv)


if __name__ == "__main__":
    sys.exit(main())
