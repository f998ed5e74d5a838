"""Keras variables <-> official checkpoint tensors, driven by the variables' paths alone.

A Keras variable path such as ``stage2/block5/attn/proj/kernel`` names its official key
(``network.4.5.attn.Proj.weight``) and its layout transform, so this module needs no layer
classes (as keras-hub's converters port each variable by name with a small hook).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Dict, Iterable, List, Optional

import numpy as np

from swiftformer_tf.checkpoints.formats import Checkpoint
from swiftformer_tf.errors import CheckpointError

_LEAF = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
         "moving_mean": "running_mean", "moving_variance": "running_var"}
_STEM = {"stem_conv1/proj": "patch_embed.0", "stem_conv1/norm": "patch_embed.1",
         "stem_conv2/proj": "patch_embed.3", "stem_conv2/norm": "patch_embed.4"}
HEAD_PREFIXES = ("head.", "dist_head.")
# Checkpoint parts a model may have been built without: heads (include_top=False, no
# distillation) and the final norm (features_only).
OPTIONAL_PREFIXES = HEAD_PREFIXES + ("norm.",)


def relative_paths(variables) -> Dict[str, object]:
    """{path inside the model: variable}, the model's own name stripped."""
    return {v.path.split("/", 1)[1]: v for v in variables}


def official_key(path: str) -> str:
    """The official checkpoint key of a Keras variable path (model name stripped)."""
    module, _, leaf = path.rpartition("/")
    leaf = _LEAF.get(leaf, leaf)
    if module in _STEM:
        return f"{_STEM[module]}.{leaf}"
    if match := re.fullmatch(r"stage(\d+)/downsample/(\w+)", module):
        stage, rest = int(match.group(1)), match.group(2)
        return f"network.{2 * stage - 1}.{rest}.{leaf}"
    if match := re.fullmatch(r"stage(\d+)/block(\d+)((?:/\w+)*)", module):
        stage, block, rest = int(match.group(1)), int(match.group(2)), match.group(3)
        inner = rest.replace("/", ".").replace(".attn.proj", ".attn.Proj")
        return f"network.{2 * stage}.{block}{inner}.{leaf}"
    if module in ("norm", "head", "dist_head"):
        return f"{module}.{leaf}"
    raise CheckpointError(f"no checkpoint name for the Keras variable {path}")


def _is_linear(path):  # official nn.Linear (2-D weight) where Keras has a 1x1 conv
    return "/attn/" in path


def to_keras(path: str, value: np.ndarray, rank: int) -> np.ndarray:
    """An official tensor in the layout of the Keras variable at ``path`` (of ``rank``)."""
    leaf = path.rpartition("/")[2]
    if leaf == "kernel" and path.endswith("dwconv/kernel"):
        return value.transpose(2, 3, 0, 1)  # (C, 1, kh, kw) -> (kh, kw, C, 1)
    if leaf == "kernel" and rank == 4:  # Conv2d (out, in, kh, kw) or Linear (out, in)
        return value.T[None, None] if value.ndim == 2 else value.transpose(2, 3, 1, 0)
    if leaf == "kernel":
        return value.T  # Linear (out, in) -> Dense (in, out)
    if leaf.startswith("layer_scale"):
        return value.reshape(-1)  # (C, 1, 1) -> (C,)
    return value


def to_official(path: str, value: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_keras`, in the official model's shapes."""
    leaf = path.rpartition("/")[2]
    if leaf == "kernel" and path.endswith("dwconv/kernel"):
        return value.transpose(2, 3, 0, 1)
    if leaf == "kernel" and value.ndim == 4:
        return value[0, 0].T if _is_linear(path) else value.transpose(3, 2, 0, 1)
    if leaf == "kernel":
        return value.T
    if leaf.startswith("layer_scale"):
        return value.reshape(-1, 1, 1)
    return value


def export_state_dict(variables) -> Dict[str, np.ndarray]:
    """{official key: tensor} of a (non-reparameterized) model's variables."""
    return {official_key(path): to_official(path, np.asarray(v.numpy()))
            for path, v in relative_paths(variables).items()}


@dataclasses.dataclass
class LoadReport:
    """What a load did: the source's format, tensors used, tensors deliberately left out
    (parts the model lacks, or heads when the model keeps its own) and whether the model's
    heads were left newly initialised."""

    format: str
    wrapper_key: Optional[str]
    used: int
    skipped: List[str]
    fresh_heads: bool = False

    def __str__(self):
        text = f"{self.used} tensors loaded ({self.format} format)"
        if self.skipped:
            text += f", {len(self.skipped)} skipped ({', '.join(self.skipped)})"
        return text + (", heads newly initialised" if self.fresh_heads else "")


def assign_from_checkpoint(variables: Iterable, checkpoint: Checkpoint,
                           skip_heads: bool = False) -> LoadReport:
    """Sets every variable from ``checkpoint``, strictly.

    Raises ``CheckpointError`` listing missing, unexpected and mis-shaped names. Tensors of
    parts the model was built without (heads, the final norm) are skipped and reported;
    ``skip_heads`` also leaves the model's own heads as they are (fine-tuning to another
    class count).
    """
    entries = {official_key(path): (path, v) for path, v in relative_paths(variables).items()}
    fresh_heads = skip_heads and any(k.startswith(HEAD_PREFIXES) for k in entries)
    if skip_heads:
        entries = {k: e for k, e in entries.items() if not k.startswith(HEAD_PREFIXES)}
    tensors = checkpoint.tensors
    present = {p for p in OPTIONAL_PREFIXES if any(k.startswith(p) for k in entries)}
    optional = {k for k in tensors
                if k.startswith(OPTIONAL_PREFIXES) and not k.startswith(tuple(present))}
    missing = sorted(entries.keys() - tensors.keys())
    unexpected = sorted(tensors.keys() - entries.keys() - optional)
    mismatched, values = [], []
    for key, (path, variable) in entries.items():
        if key not in tensors:
            continue
        try:
            value = to_keras(path, tensors[key], len(variable.shape))
        except ValueError:  # a tensor of another rank than the layout transform expects
            value = tensors[key]
        if tuple(value.shape) != tuple(variable.shape):
            mismatched.append(f"{key} {tuple(tensors[key].shape)} -> {variable.path} "
                              f"{tuple(variable.shape)}")
        values.append((variable, value))
    if missing or unexpected or mismatched:
        parts = []
        for label, names in (("missing", missing), ("unexpected", unexpected),
                             ("mis-shaped", mismatched)):
            if names:
                parts.append(f"{len(names)} {label}: {', '.join(names[:12])}"
                             + (" ..." if len(names) > 12 else ""))
        raise CheckpointError(f"{checkpoint.path}: does not fit the model: " + "; ".join(parts))
    for variable, value in values:
        variable.assign(value.astype(variable.dtype))
    return LoadReport(format=checkpoint.format, wrapper_key=checkpoint.wrapper_key,
                      used=len(values), skipped=sorted((tensors.keys() - entries.keys()) & optional),
                      fresh_heads=fresh_heads)
