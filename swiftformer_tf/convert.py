"""Loads official, timm and Hugging Face SwiftFormer checkpoints into the Keras model.

Every source is first renamed to the official key names (one small rename function per
format, like timm's ``checkpoint_filter_fn``); one table then maps official names to the
Keras variables, each with a layout transform. Nothing here needs PyTorch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from swiftformer_tf.torch_pickle import CheckpointError, load_torch_file
from swiftformer_tf.variants import SwiftFormerConfig, find_variant, get_config

logger = logging.getLogger(__name__)

FORMATS = ("official", "timm", "hf")
WRAPPER_KEYS = ("model", "model_ema", "state_dict")  # in order of preference
IGNORED_SUFFIXES = (".num_batches_tracked",)


@dataclasses.dataclass
class Checkpoint:
    """A checkpoint renamed to official key names, with what was detected from it."""

    path: str
    format: str
    tensors: Dict[str, np.ndarray]
    wrapper_key: Optional[str]
    config: SwiftFormerConfig
    num_classes: Optional[int]
    distillation: bool

    @property
    def variant(self) -> str:
        return self.config.name

    @property
    def default_attention(self) -> str:
        # The Hugging Face port (and its hub weights) predate the 2023-07-26 change.
        return "legacy" if self.format == "hf" else "normalize"


# -- reading -------------------------------------------------------------------------------
def read_state_dict(path) -> Tuple[Dict[str, np.ndarray], Optional[str]]:
    """The flat {name: array} of a checkpoint file, and the wrapper key it sat under."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    if os.path.isdir(path):
        for name in ("model.safetensors", "pytorch_model.bin"):
            if os.path.isfile(os.path.join(path, name)):
                return read_state_dict(os.path.join(path, name))
        raise CheckpointError(f"{path}: directory without model.safetensors or pytorch_model.bin")
    if path.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
        try:
            return dict(load_file(path)), None
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f"{path}: unreadable safetensors file ({err})") from None
    obj = load_torch_file(path)
    wrapper = None
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                wrapper, obj = key, obj[key]
                break
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state_dict")
    tensors = {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if not tensors:
        raise CheckpointError(f"{path}: no tensors found (keys: {', '.join(map(str, list(obj)[:8]))})")
    return tensors, wrapper


def _hf_config_next_to(path) -> Optional[dict]:
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        return None
    try:
        with open(config_path) as f:
            config = json.load(f)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{config_path}: unreadable ({err})") from None
    return config if config.get("model_type") == "swiftformer" else None


# -- renaming to official names ------------------------------------------------------------
def detect_format(keys) -> str:
    keys = list(keys)
    if any(k.startswith(("swiftformer.", "encoder.network.", "patch_embed.patch_embedding."))
           for k in keys):
        return "hf"
    if any(k.startswith(("stem.", "stages.")) for k in keys):
        return "timm"
    if any(k.startswith(("patch_embed.", "network.")) for k in keys):
        return "official"
    raise CheckpointError("no SwiftFormer weights recognised (expected official "
                          "'patch_embed.'/'network.', timm 'stem.'/'stages.' or Hugging Face "
                          f"'swiftformer.' names; first keys: {', '.join(keys[:5])})")


def _from_timm(key: str) -> str:
    key = re.sub(r"^stem\.", "patch_embed.", key)
    key = re.sub(r"^stages\.(\d+)\.downsample\.",
                 lambda m: f"network.{2 * int(m.group(1)) - 1}.", key)
    key = re.sub(r"^stages\.(\d+)\.blocks\.", lambda m: f"network.{2 * int(m.group(1))}.", key)
    key = re.sub(r"(layer_scale(_1|_2)?)\.gamma$", r"\1", key)
    key = key.replace("attn.proj.", "attn.Proj.")
    return re.sub(r"^head_dist\.", "dist_head.", key)


def _from_hf(key: str) -> str:
    key = re.sub(r"^swiftformer\.", "", key)
    key = key.replace("patch_embed.patch_embedding.", "patch_embed.")
    key = re.sub(r"^encoder\.network\.(\d+)\.blocks\.", r"network.\1.", key)
    key = re.sub(r"^encoder\.network\.", "network.", key)
    key = key.replace(".depth_wise_conv.", ".dwconv.").replace(".point_wise_conv", ".pwconv")
    return key.replace("attn.proj.", "attn.Proj.")


RENAMES: Dict[str, Callable[[str], str]] = {
    "official": lambda key: key, "timm": _from_timm, "hf": _from_hf}


def detect_config(tensors: Dict[str, np.ndarray]) -> Tuple[SwiftFormerConfig, Optional[int], bool]:
    """Variant (or a custom config), class count and distillation, from official names."""
    depths, widths = [], []
    for stage in range(4):
        prefix = re.compile(rf"^network\.{2 * stage}\.(\d+)\.")
        blocks = {int(m.group(1)) for k in tensors if (m := prefix.match(k))}
        if not blocks:
            raise CheckpointError(f"no blocks found for stage {stage + 1} ('network.{2 * stage}.*')")
        depths.append(max(blocks) + 1)
        key = f"network.{2 * stage}.{max(blocks)}.layer_scale_1"
        if key not in tensors:
            raise CheckpointError(f"missing '{key}' (the attention block ending stage {stage + 1})")
        widths.append(int(tensors[key].shape[0]))
    fc1 = tensors.get(f"network.6.{depths[3] - 1}.linear.fc1.weight")
    mlp_ratio = fc1.shape[0] / widths[3] if fc1 is not None else 4.0
    name = find_variant(depths, widths)
    if name is not None and mlp_ratio == 4.0:
        config = get_config(name)
    else:
        config = SwiftFormerConfig(depths=tuple(depths), widths=tuple(widths),
                                   mlp_ratio=mlp_ratio, name="custom")
    head = tensors.get("head.weight")
    num_classes = int(head.shape[0]) if head is not None else None
    return config, num_classes, "dist_head.weight" in tensors


def read_checkpoint(path, format: str = "auto", variant: str = "auto") -> Checkpoint:
    """Reads and renames a checkpoint; ``format`` and ``variant`` override detection."""
    path = os.fspath(path)
    raw, wrapper = read_state_dict(path)
    detected = detect_format(raw)
    if format not in ("auto",) + FORMATS:
        raise ValueError(f"format must be auto or one of {FORMATS}, got {format!r}")
    fmt = detected if format == "auto" else format
    if fmt != detected:
        logger.warning("%s: names look like the %s format, reading as %s as asked", path,
                       detected, fmt)
    tensors = {}
    for key, value in raw.items():
        if key.endswith(IGNORED_SUFFIXES):
            continue
        tensors[RENAMES[fmt](key)] = value
    try:
        config, num_classes, distillation = detect_config(tensors)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
    if fmt == "hf":
        _check_hf_config(path, config, num_classes)
    if variant not in (None, "auto"):
        wanted = get_config(variant)
        if (wanted.depths, wanted.widths) != (config.depths, config.widths):
            raise CheckpointError(
                f"{path}: --variant {wanted.name} contradicts the checkpoint's shapes (depths "
                f"{list(config.depths)}, widths {list(config.widths)}"
                f"{', i.e. ' + config.name if config.name != 'custom' else ''})")
        config = wanted
    return Checkpoint(path=path, format=fmt, tensors=tensors, wrapper_key=wrapper,
                      config=config, num_classes=num_classes, distillation=distillation)


def _check_hf_config(path, config, num_classes):
    hf = _hf_config_next_to(path)
    if hf is None:
        return
    depths, widths = hf.get("depths"), hf.get("embed_dims")
    if depths and widths and (tuple(depths), tuple(widths)) != (config.depths, config.widths):
        raise CheckpointError(f"{path}: config.json (depths {depths}, embed_dims {widths}) does "
                              f"not match the weights ({list(config.depths)}, {list(config.widths)})")
    labels = hf.get("id2label")
    if labels and num_classes is not None and len(labels) != num_classes:
        raise CheckpointError(f"{path}: config.json has {len(labels)} labels, the head has "
                              f"{num_classes} classes")


# -- mapping official names onto the Keras model -------------------------------------------
def _conv_kernel(t):
    # nn.Linear (out, in) or Conv2d (out, in, kh, kw) -> Keras (kh, kw, in, out).
    return t.T[None, None] if t.ndim == 2 else t.transpose(2, 3, 1, 0)


def _depthwise_kernel(t):
    return t.transpose(2, 3, 0, 1)  # (C, 1, kh, kw) -> (kh, kw, C, 1)


def _dense_kernel(t):
    return t.T


def _vector(t):
    return t.reshape(-1)  # layer scales: (C, 1, 1) -> (C,)


def _same(t):
    return t


def _layer_entries(layer, prefix):
    """(variable, official key, transform) for one Keras layer and its sub-layers."""
    from keras import layers as L

    from swiftformer_tf.layers import (ConvEncoder, ConvNorm, EfficientAdditiveAttention, Mlp,
                                       SwiftFormerEncoder)
    if isinstance(layer, L.DepthwiseConv2D):
        return [(layer.kernel, f"{prefix}.weight", _depthwise_kernel),
                (layer.bias, f"{prefix}.bias", _same)]
    if isinstance(layer, L.Conv2D):
        return [(layer.kernel, f"{prefix}.weight", _conv_kernel), (layer.bias, f"{prefix}.bias", _same)]
    if isinstance(layer, L.Dense):
        return [(layer.kernel, f"{prefix}.weight", _dense_kernel), (layer.bias, f"{prefix}.bias", _same)]
    if isinstance(layer, L.BatchNormalization):
        return [(layer.gamma, f"{prefix}.weight", _same), (layer.beta, f"{prefix}.bias", _same),
                (layer.moving_mean, f"{prefix}.running_mean", _same),
                (layer.moving_variance, f"{prefix}.running_var", _same)]
    if isinstance(layer, ConvNorm):
        return _layer_entries(layer.proj, f"{prefix}.proj") + _layer_entries(layer.norm, f"{prefix}.norm")
    if isinstance(layer, ConvEncoder):
        return ([(layer.layer_scale, f"{prefix}.layer_scale", _vector)]
                + [e for name in ("dwconv", "norm", "pwconv1", "pwconv2")
                   for e in _layer_entries(getattr(layer, name), f"{prefix}.{name}")])
    if isinstance(layer, Mlp):
        return [e for name in ("norm1", "fc1", "fc2")
                for e in _layer_entries(getattr(layer, name), f"{prefix}.{name}")]
    if isinstance(layer, EfficientAdditiveAttention):
        return ([(layer.w_g, f"{prefix}.w_g", _same)]
                + [e for name, key in (("to_query", "to_query"), ("to_key", "to_key"),
                                       ("proj", "Proj"), ("final", "final"))
                   for e in _layer_entries(getattr(layer, name), f"{prefix}.{key}")])
    if isinstance(layer, SwiftFormerEncoder):
        return ([(layer.layer_scale_1, f"{prefix}.layer_scale_1", _vector),
                 (layer.layer_scale_2, f"{prefix}.layer_scale_2", _vector)]
                + [e for name in ("local_representation", "attn", "linear")
                   for e in _layer_entries(getattr(layer, name), f"{prefix}.{name}")])
    raise TypeError(f"no checkpoint mapping for layer {layer.name} ({type(layer).__name__})")


def weight_map(model) -> List[tuple]:
    """Every Keras variable of ``model`` with its official checkpoint key and transform."""
    stem_conv1, stem_conv2 = model.stem
    entries = (_layer_entries(stem_conv1.proj, "patch_embed.0")
               + _layer_entries(stem_conv1.norm, "patch_embed.1")
               + _layer_entries(stem_conv2.proj, "patch_embed.3")
               + _layer_entries(stem_conv2.norm, "patch_embed.4"))
    for i, stage in enumerate(model.stages):
        if stage.downsample is not None:
            entries += _layer_entries(stage.downsample, f"network.{2 * i - 1}")
        for j, block in enumerate(stage.blocks):
            entries += _layer_entries(block, f"network.{2 * i}.{j}")
    if model.norm is not None:
        entries += _layer_entries(model.norm, "norm")
    for head, key in ((model.head, "head"), (model.dist_head, "dist_head")):
        if head is not None:
            entries += _layer_entries(head, key)
    return entries


@dataclasses.dataclass
class LoadReport:
    used: int
    skipped: List[str]  # checkpoint tensors deliberately left out (heads the model lacks)

    def __str__(self):
        text = f"{self.used} tensors loaded"
        return text + (f", {len(self.skipped)} skipped ({', '.join(self.skipped)})"
                       if self.skipped else "")


def load_checkpoint_into(model, checkpoint: Checkpoint, skip_heads: bool = False) -> LoadReport:
    """Sets every variable of ``model`` from ``checkpoint``, strictly.

    Raises ``CheckpointError`` listing missing, unexpected and mis-shaped names. Tensors
    of parts the model was built without (heads of a headless model, ``dist_head`` of a
    non-distilled one) are skipped and reported; ``skip_heads`` also skips the heads of a
    model whose class count differs (fine-tuning).
    """
    if model.config.depths != checkpoint.config.depths or \
            model.config.widths != checkpoint.config.widths:
        raise CheckpointError(
            f"{checkpoint.path}: checkpoint is SwiftFormer-{checkpoint.config.name} "
            f"{list(checkpoint.config.widths)}, the model is SwiftFormer-{model.config.name} "
            f"{list(model.config.widths)}")
    entries = weight_map(model)
    head_prefixes = ("head.", "dist_head.")
    if skip_heads:
        entries = [e for e in entries if not e[1].startswith(head_prefixes)]
    wanted = {key for _, key, _ in entries}
    missing = sorted(wanted - checkpoint.tensors.keys())
    optional = {k for k in checkpoint.tensors
                if k.startswith(head_prefixes) or (model.norm is None and k.startswith("norm."))}
    unexpected = sorted(checkpoint.tensors.keys() - wanted - optional)
    skipped = sorted((checkpoint.tensors.keys() - wanted) & optional)
    mismatched = []
    values = []
    for variable, key, transform in entries:
        if key not in checkpoint.tensors:
            continue
        value = transform(checkpoint.tensors[key])
        if tuple(value.shape) != tuple(variable.shape):
            mismatched.append(f"{key} {tuple(checkpoint.tensors[key].shape)} -> "
                              f"{variable.path} {tuple(variable.shape)}")
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
    return LoadReport(used=len(values), skipped=skipped)


def build_from_checkpoint(path, format="auto", variant="auto", attention="auto", **model_kwargs):
    """A SwiftFormer built to the checkpoint's variant and class count, with its weights."""
    from swiftformer_tf.model import SwiftFormer

    checkpoint = read_checkpoint(path, format=format, variant=variant)
    if attention in (None, "auto"):
        attention = checkpoint.default_attention
        if checkpoint.format == "hf":
            logger.warning(
                "%s: Hugging Face weights were converted from the first SwiftFormer release, whose "
                "attention weights are identically 1; using attention='legacy' to match them "
                "(pass attention='normalize' to override)", path)
    kwargs = dict(num_classes=checkpoint.num_classes or 1000,
                  include_top=checkpoint.num_classes is not None,
                  distillation=checkpoint.distillation)
    kwargs.update(model_kwargs)
    model = SwiftFormer(checkpoint.config, attention=attention, **kwargs)
    report = load_checkpoint_into(model, checkpoint)
    return model, checkpoint, report
