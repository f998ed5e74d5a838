"""Benchmark configurations (``cpu:4``, ``gpu``, ``gpu:fp16``, ``npu``, ``nnapi``,
``arm:cortex-a76``); the flags each one means depend on the tool (``tools.py``).
``npu`` is LiteRT's NPU path (a model compiled ahead of time by ``swiftformer-compile-npu``,
run through the vendor's dispatch library), the successor of NNAPI. ``arm:CPU[:fp16]`` is
the phone's CPU kernels on an emulated ARM CPU on the host (``swiftformer_tf.runtime.arm``):
answers and instruction counts, never latency."""

from __future__ import annotations

import dataclasses
from typing import List

NNAPI_DEPRECATED_SDK = 35  # Android 15


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    backend: str  # cpu | gpu | npu | nnapi | arm
    threads: int = 1
    fp16: bool = False
    arm_cpu: str = ""  # arm rows: the emulated CPU (swiftformer_tf.runtime.arm_emulator.CPUS)

    @property
    def delegate(self):
        """The delegate this configuration asks for, as the log parser names it."""
        return {"gpu": "GPU", "npu": "NPU", "nnapi": "NNAPI"}.get(self.backend)


def parse_config(text: str) -> Config:
    name = text.strip().lower()
    kind, _, arg = name.partition(":")
    if kind == "cpu":
        if not arg.isdigit() or int(arg) < 1:
            raise ValueError(f"config {text!r}: expected cpu:N with N threads, e.g. cpu:4")
        return Config(name, "cpu", threads=int(arg))
    if kind == "gpu" and arg in ("", "fp32", "fp16"):
        return Config(name, "gpu", fp16=arg == "fp16")
    if kind in ("npu", "nnapi") and arg == "":
        return Config(name, kind)
    if kind == "arm":
        from swiftformer_tf.runtime.arm_emulator import CPUS  # the emulated CPUs' names
        cpu, _, suffix = arg.partition(":")
        if cpu not in CPUS or suffix not in ("", "fp16"):
            raise ValueError(f"config {text!r}: expected arm:CPU or arm:CPU:fp16 with CPU one "
                             f"of {', '.join(CPUS)}")
        return Config(name, "arm", fp16=suffix == "fp16", arm_cpu=cpu)
    raise ValueError(f"unknown config {text!r}: use cpu:N, gpu, gpu:fp16, npu, nnapi or "
                     f"arm:CPU[:fp16]")


def parse_configs(text: str) -> List[Config]:
    configs = [parse_config(part) for part in text.split(",") if part.strip()]
    if not configs:
        raise ValueError("no configurations given")
    return configs
