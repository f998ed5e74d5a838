"""Benchmark configurations (``cpu:4``, ``gpu``, ``gpu:fp16``, ``npu``, ``nnapi``); the flags
each one means depend on the tool (android_bench/tools.py). ``npu`` is LiteRT's NPU path
(a model compiled ahead of time by ``tflite/compile_npu.py``, run through the vendor's
dispatch library), the successor of NNAPI."""

from __future__ import annotations

import dataclasses
from typing import List

NNAPI_DEPRECATED_SDK = 35  # Android 15


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    backend: str  # cpu | gpu | npu | nnapi
    threads: int = 1
    fp16: bool = False

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
    raise ValueError(f"unknown config {text!r}: use cpu:N, gpu, gpu:fp16, npu or nnapi")


def parse_configs(text: str) -> List[Config]:
    configs = [parse_config(part) for part in text.split(",") if part.strip()]
    if not configs:
        raise ValueError("no configurations given")
    return configs
