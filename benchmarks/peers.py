"""The peer paths to TFLite (fp32 and int8), built in their own environment.

litert-torch pins its own torch and LiteRT, so it lives in ``.venv-peer``; when that is
missing, :func:`ensure_environment` creates it with the pinned PEER_REQUIREMENTS (a few
minutes and about 2 GB, once) and marks it complete only after the install succeeded, so
an interrupted build is rebuilt rather than used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Callable, List, Optional

from litert_torch_peer import PEER_REQUIREMENTS

HERE = os.path.dirname(os.path.abspath(__file__))

COMPLETE_MARK = ".swiftformer-peer-complete"
PEER_SCRIPT = os.path.join(HERE, "litert_torch_peer.py")


def environment_of(python: str) -> str:
    """The venv folder of ``.../bin/python``."""
    return os.path.dirname(os.path.dirname(os.path.abspath(python)))


def is_complete(python: str) -> bool:
    """A python in a venv built to the end (ours, marked), or one that holds the pinned
    packages (made by hand)."""
    if not os.path.isfile(python):
        return False
    if os.path.isfile(os.path.join(environment_of(python), COMPLETE_MARK)):
        return True
    names = [r.split("==")[0] for r in PEER_REQUIREMENTS]
    try:
        return subprocess.run([python, "-m", "pip", "show", "-q", *names],
                              capture_output=True).returncode == 0
    except OSError:  # not an executable python
        return False


def ensure_environment(python: str, log: Callable[[str], None],
                       run=subprocess.run) -> Optional[str]:
    """``python`` if usable, after building its venv if missing; else a reason (str)
    prefixed with "!"."""
    if is_complete(python):
        return python
    folder = environment_of(python)
    if os.path.exists(folder) and not (os.path.basename(folder) == ".venv-peer" and
                                       os.path.isfile(os.path.join(folder, "pyvenv.cfg"))):
        # only a .venv-peer is ours to (re)build; never delete someone else's folder
        return (f"!{python} lacks {', '.join(PEER_REQUIREMENTS)}, and {folder} is no "
                f".venv-peer this tool may rebuild")
    log(f"building the peer environment {folder} ({', '.join(PEER_REQUIREMENTS)}; "
        f"once, a few minutes, about 2 GB)")
    shutil.rmtree(folder, ignore_errors=True)  # an interrupted build is not reused
    steps = [[sys.executable, "-m", "venv", folder],
             [os.path.join(folder, "bin", "python"), "-m", "pip", "install", "--quiet",
              "--disable-pip-version-check", *PEER_REQUIREMENTS]]
    for number, step in enumerate(steps, 1):
        log(f"  peer environment step {number}/{len(steps)}: {' '.join(step[1:4])} ...")
        result = run(step, capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout or "").strip().splitlines()[-1:] or ["no output"]
            return f"!could not build {folder}: {' '.join(step[2:4])} failed ({tail[0][:300]})"
    with open(os.path.join(folder, COMPLETE_MARK), "w") as f:
        f.write("\n".join(PEER_REQUIREMENTS) + "\n")
    return os.path.join(folder, "bin", "python")


def write_inputs(folder, keras_models: dict, calibration) -> str:
    """The peer's inputs: ``<variant>.npz`` official-name weights of our models (so every
    path converts the same network) and ``calibration.npz``; returns the calibration path."""
    import numpy as np

    from swiftformer_tf.checkpoints import export_state_dict
    for variant, model in keras_models.items():
        np.savez(os.path.join(folder, f"{variant.lower()}.npz"),
                 **export_state_dict(model.weights))
    path = os.path.join(folder, "calibration.npz")
    np.savez(path, images=np.stack([np.asarray(x, np.float32) for x in calibration]))
    return path


def build(python, variants, size, folder, inputs, calibration_path, ours_fp32: dict,
          notes: List[str], log: Callable[[str], None]) -> dict:
    """litert-torch fp32 and PT2E int8 of the official model (weights from ``inputs``), and
    ai-edge-quantizer int8 of our fp32 graphs, into ``folder``; {name: model row}. Failures
    become notes."""
    models = {}
    log("converting the official model with litert-torch (fp32 and PT2E int8)")
    result = subprocess.run([python, PEER_SCRIPT, "--variants", *variants, "--size", str(size),
                             "--out", folder, "--weights-dir", inputs,
                             "--calibration", calibration_path, "--int8"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        notes.append(f"litert-torch peer: conversion failed: {_last_line(result)}")
    for variant in variants:
        stem = os.path.join(folder, f"swiftformer_{variant.lower()}_litert_torch")
        for suffix, mode, name in (("", "none", "fp32"), ("_pt2e_int8", "int8", "pt2e_int8")):
            if os.path.isfile(stem + suffix + ".tflite"):
                models[f"litert_torch_{variant.lower()}_{name}"] = {
                    "path": stem + suffix + ".tflite", "family": "litert-torch",
                    "variant": variant, "mode": mode}
    for variant in variants:
        source = ours_fp32.get(variant)
        if source is None:
            continue
        log(f"quantizing our {variant} fp32 graph with ai-edge-quantizer (static int8)")
        target = os.path.join(folder, f"swiftformer_{variant.lower()}_aeq_int8.tflite")
        result = subprocess.run([python, PEER_SCRIPT, "--aeq", source, target,
                                 "--calibration", calibration_path], capture_output=True, text=True)
        if result.returncode != 0:
            notes.append(f"ai-edge-quantizer {variant}: failed: {_last_line(result)}")
            continue
        models[f"aeq_{variant.lower()}_int8"] = {"path": target, "family": "ai-edge-quantizer",
                                                 "variant": variant, "mode": "int8"}
    return models


def _last_line(result) -> str:
    lines = [l for l in (result.stderr or "").strip().splitlines() if l.strip()]
    return (lines[-1] if lines else "no output")[:300]
