"""What the two set-up tools (``swiftformer-setup-gpu``, ``swiftformer-setup-arm``) share: the
checks before a download, a folder built beside its target and renamed into place whole,
the Debian mirror this machine's apt uses, the libraries a binary would still lack, and the
command line."""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from typing import Callable, List

from swiftformer_tf.errors import SetupError

DEFAULT_MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def mirror() -> str:
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


def missing_libraries(library: str, libdir: str) -> List[str]:
    env = dict(os.environ, LD_LIBRARY_PATH=libdir)
    result = subprocess.run(["ldd", library], capture_output=True, text=True, env=env)
    return [line.split()[0] for line in result.stdout.splitlines() if "not found" in line]


def check_host(what: str, tools=("apt-get", "dpkg-deb")):
    """A Debian-based x86-64 machine with ``tools``, or a SetupError saying what lacks."""
    for tool in tools:
        if shutil.which(tool) is None:
            raise SetupError(f"{tool} not found: {what} is set up from Debian packages and "
                             f"needs a Debian-based machine")
    if os.uname().machine != "x86_64":
        raise SetupError(f"only x86-64 hosts are supported (this machine: "
                         f"{os.uname().machine})")


@contextlib.contextmanager
def folder_built_beside(folder: str):
    """A work folder beside ``folder`` that replaces it when the block completes: a killed
    or failed set-up leaves no half folder (the work folder is removed)."""
    parent = os.path.dirname(folder) or "."
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}-", dir=parent)
    try:
        yield work
        if os.path.exists(folder):
            shutil.rmtree(folder)
        os.replace(work, folder)
    finally:
        if os.path.isdir(work):
            shutil.rmtree(work, ignore_errors=True)


def main(prog: str, doc: str, setup: Callable[[str], str], default_dir: Callable[[], str],
         env_var: str, argv=None) -> int:
    """A set-up tool's command line: ``--dir``, one-line errors (run_command), and a note
    when the folder is not where the tools look by default."""
    from swiftformer_tf.io_utils import run_command

    def run(argv):
        p = argparse.ArgumentParser(prog=prog, description=doc,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--dir", default=default_dir(), help="where to put it")
        folder = setup(p.parse_args(argv).dir)
        if os.path.abspath(folder) != os.path.abspath(default_dir()):
            print(f"note: set {env_var}={folder} so the tools find it")
        return 0
    return run_command(prog, run, argv)
