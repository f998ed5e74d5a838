"""A thin, timeout-guarded wrapper around the ``adb`` command line."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from typing import List, Optional

from swiftformer_tf.errors import CommandTimeout, DeviceError, DeviceLost


ADB_INSTALL_HINT = ("install Android platform-tools (Debian/Ubuntu: `apt-get install adb`; "
                    "otherwise https://developer.android.com/tools/releases/platform-tools) "
                    "and put `adb` on PATH, or set ADB=/path/to/adb")


@dataclasses.dataclass
class DeviceEntry:
    serial: str
    state: str
    model: Optional[str] = None


def find_adb() -> str:
    path = os.environ.get("ADB") or shutil.which("adb")
    if not path or not os.path.isfile(path):
        raise DeviceError(f"adb not found: {ADB_INSTALL_HINT}")
    return path


def _lost(text):
    text = text.lower()
    return any(s in text for s in ("device not found", "no devices/emulators found",
                                   "device offline", "device '", "closed"))


class Adb:
    def __init__(self, serial: Optional[str] = None, adb: Optional[str] = None):
        self.adb = adb or find_adb()
        self.serial = serial

    def _run(self, args: List[str], timeout: float, check=True) -> subprocess.CompletedProcess:
        command = [self.adb] + (["-s", self.serial] if self.serial else []) + args
        try:
            # Phones print what their vendors' logs hold: bytes that are not UTF-8 become
            # U+FFFD rather than an exception that would end the whole matrix.
            result = subprocess.run(command, capture_output=True, text=True, errors="replace",
                                    timeout=timeout)
        except subprocess.TimeoutExpired as err:
            raise CommandTimeout(f"`adb {' '.join(args)[:80]}` timed out after {timeout:.0f} s") from err
        except OSError as err:
            raise DeviceError(f"cannot run {self.adb}: {err}") from err
        output = (result.stdout or "") + (result.stderr or "")
        if check and result.returncode != 0:
            if _lost(output):
                raise DeviceLost(f"device {self.serial or ''} disconnected: {output.strip()[:200]}")
            raise DeviceError(f"`adb {' '.join(args)[:80]}` failed: {output.strip()[:300]}")
        return result

    # -- devices ---------------------------------------------------------------------------
    def devices(self) -> List[DeviceEntry]:
        result = self._run(["devices", "-l"], timeout=30) if not self.serial else \
            Adb(adb=self.adb)._run(["devices", "-l"], timeout=30)
        entries = []
        for line in result.stdout.splitlines()[1:]:
            parts = line.split()
            if len(parts) < 2 or line.startswith("*"):
                continue
            model = next((p.split(":", 1)[1] for p in parts[2:] if p.startswith("model:")), None)
            entries.append(DeviceEntry(parts[0], parts[1], model))
        return entries

    def select(self, serial: Optional[str] = None) -> DeviceEntry:
        """Picks the device to use, or explains why none can be used."""
        entries = self.devices()
        if serial:
            entry = next((e for e in entries if e.serial == serial), None)
            if entry is None:
                found = ", ".join(e.serial for e in entries) or "none"
                raise DeviceError(f"device {serial} not found (connected: {found})")
        else:
            if not entries:
                raise DeviceError("no Android device connected: plug one in with USB debugging "
                                  "enabled (Settings > Developer options) and check `adb devices`")
            if len(entries) > 1:
                raise DeviceError("several devices connected ("
                                  + ", ".join(f"{e.serial} [{e.state}]" for e in entries)
                                  + "): choose one with --serial")
            entry = entries[0]
        if entry.state == "unauthorized":
            raise DeviceError(f"device {entry.serial} is unauthorized: unlock it and accept the "
                              f"'Allow USB debugging' prompt, then run again")
        if entry.state != "device":
            raise DeviceError(f"device {entry.serial} is {entry.state}: reconnect the cable or "
                              f"run `adb reconnect`")
        self.serial = entry.serial
        return entry

    def is_connected(self) -> bool:
        try:
            return any(e.serial == self.serial and e.state == "device" for e in self.devices())
        except DeviceError:
            return False

    # -- commands ---------------------------------------------------------------------------
    def getprop(self, key: str) -> str:
        return self._run(["shell", "getprop", key], timeout=30).stdout.strip()

    def push(self, local: str, remote: str, timeout: float = 300):
        self._run(["push", local, remote], timeout=timeout)

    def shell(self, command: str, timeout: float, check=False) -> subprocess.CompletedProcess:
        return self._run(["shell", command], timeout=timeout, check=check)

    def device_info(self) -> dict:
        soc = self.getprop("ro.soc.model") or self.getprop("ro.board.platform") or \
            self.getprop("ro.hardware")
        manufacturer = self.getprop("ro.soc.manufacturer")
        sdk = self.getprop("ro.build.version.sdk")
        return {"serial": self.serial, "device_model": self.getprop("ro.product.model"),
                "soc": f"{manufacturer} {soc}".strip(), "android_sdk": int(sdk) if sdk.isdigit() else None,
                "abi": self.getprop("ro.product.cpu.abi")}
