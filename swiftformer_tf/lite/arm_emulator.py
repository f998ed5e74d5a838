"""An emulated phone CPU: the aarch64 LiteRT runtime under QEMU user mode, set up in one folder.

Phones run XNNPACK's ARM kernels (NEON, int8 dot product, i8mm, fp16 arithmetic, SME), not the
x86 ones every host figure comes from. ``setup`` puts together, with nothing changed on the
system:

- ``qemu-aarch64`` (QEMU 7.2, Debian's ``qemu-user``) and the one library it needs that a
  Debian machine may lack, unpacked from the debs;
- an arm64 Python 3.11 root made of Debian's own arm64 debs (a private apt configuration
  whose architecture is arm64), with the aarch64 wheels of ai-edge-litert and numpy from PyPI;
- one root per emulated CPU, whose ``proc/cpuinfo`` is an ARM one (QEMU's ``-L`` prefix also
  redirects file opens; with the host's x86 cpuinfo the runtime segfaults when it creates
  the interpreter);
- ``libicount.so``, the QEMU plugin that counts guest instructions (``arm_icount.c``), built
  with gcc against ``qemu-plugin.h`` of the same QEMU version (Debian's source package;
  the header stays in ``include/`` for rebuilding it).

Use it for answers and instruction counts, never for time: an emulated instruction costs
nothing like a phone's.

    python tflite/setup_arm_emulator.py [--dir DIR]

Stdlib only: the setup script loads this file by path, without TensorFlow.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from typing import Dict, List, Optional

ENV_DIR = "SWIFTFORMER_ARM_EMULATOR"
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
DEFAULT_MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
PLUGIN_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "arm_icount.c")

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


class ArmEmulatorError(RuntimeError):
    """The emulator cannot be set up here; the message says why and what to do."""


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


class _Apt:
    """apt-get with its own lists, cache and (empty) package status in ``state``: it fetches
    debs for ``architecture`` without touching the system's apt state."""

    def __init__(self, state: str, architecture: str, mirror: str, source: bool = False):
        self.state = state
        for sub in ("lists/partial", "archives/partial"):
            os.makedirs(os.path.join(state, sub), exist_ok=True)
        open(os.path.join(state, "status"), "w").close()
        signed = f"[signed-by={KEYRING}] " if os.path.isfile(KEYRING) else ""
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
            raise ArmEmulatorError(f"apt-get {args[0]} failed: "
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
    except ArmEmulatorError:
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
        raise ArmEmulatorError("QEMU's source package has no .orig tarball")
    with tarfile.open(tarball) as tar:
        member = next((m for m in tar if m.name.endswith("include/qemu/qemu-plugin.h")), None)
        if member is None:
            raise ArmEmulatorError(f"{os.path.basename(tarball)} has no qemu-plugin.h")
        with open(os.path.join(work, "qemu-plugin.h"), "wb") as f:
            f.write(tar.extractfile(member).read())
    shutil.rmtree(sources)
    log(f"arm emulator: downloading {QEMU_SME_PACKAGE} from bookworm-backports for SME "
        f"(63 MB; only qemu-aarch64 is kept)")
    newer = os.path.join(work, "debs-qemu10")
    os.makedirs(newer)
    try:
        apt("download", QEMU_SME_PACKAGE, cwd=newer)
    except ArmEmulatorError:
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
        raise ArmEmulatorError("pip could not fetch the aarch64 wheels: "
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
        raise ArmEmulatorError("no C compiler (gcc) to build the instruction-count plugin: "
                               "apt-get install gcc")
    log("arm emulator: building the instruction-count plugin")
    include = os.path.join(work, "include")
    os.makedirs(include)
    shutil.move(os.path.join(work, "qemu-plugin.h"), os.path.join(include, "qemu-plugin.h"))
    result = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-I", include, "-o",
                             os.path.join(work, "libicount.so"), PLUGIN_SOURCE],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise ArmEmulatorError("the instruction-count plugin does not build: "
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
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise ArmEmulatorError(f"{tool} not found: the emulator is set up from Debian "
                                   f"packages and needs a Debian-based machine")
    if os.uname().machine != "x86_64":
        raise ArmEmulatorError(f"only x86-64 hosts are supported (this machine: "
                               f"{os.uname().machine})")
    if not (shutil.which("gcc") or shutil.which("cc")):
        raise ArmEmulatorError("no C compiler (gcc) to build the instruction-count plugin: "
                               "apt-get install gcc")
    os.makedirs(os.path.dirname(folder) or ".", exist_ok=True)
    # Build beside the target and rename at the end: a killed setup leaves no half folder.
    work = tempfile.mkdtemp(prefix=".arm_emulator-", dir=os.path.dirname(folder) or ".")
    try:
        mirror = _mirror()
        host = _host_side(work, mirror, log)
        guest = _guest_side(work, mirror, log)
        _build_plugin(work, log)
        for leftover in ("apt-amd64", "apt-arm64", "debs-host", "debs-qemu10"):
            shutil.rmtree(os.path.join(work, leftover), ignore_errors=True)
        _cpu_roots(work, folder)
        missing = _missing_libraries(os.path.join(work, "host", "usr", "bin", "qemu-aarch64"),
                                     os.path.join(work, "host", "usr", "lib",
                                                  "x86_64-linux-gnu"))
        if missing:
            raise ArmEmulatorError("qemu-aarch64 needs libraries this machine lacks: "
                                   + ", ".join(missing) + " (install them with apt-get)")
        with open(os.path.join(work, "manifest.json"), "w") as f:
            json.dump({"host_packages": host, "guest_packages": guest,
                       "cpus": {k: v["qemu"] for k, v in CPUS.items()}}, f, indent=1)
        if os.path.exists(folder):
            shutil.rmtree(folder)
        os.replace(work, folder)
    finally:
        if os.path.isdir(work):
            shutil.rmtree(work, ignore_errors=True)
    log(f"arm emulator ready in {folder}")
    return folder


def _missing_libraries(binary: str, libdir: str) -> List[str]:
    env = dict(os.environ, LD_LIBRARY_PATH=libdir)
    result = subprocess.run(["ldd", binary], capture_output=True, text=True, env=env)
    return [line.split()[0] for line in result.stdout.splitlines() if "not found" in line]


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
