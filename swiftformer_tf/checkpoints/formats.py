"""Reads official, timm and Hugging Face SwiftFormer checkpoints, renamed to official keys.

Every source is renamed to the official key names by one small function per format (like
timm's ``checkpoint_filter_fn``); the variant, class count and distillation head are
detected from names and shapes. Nothing here needs PyTorch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from swiftformer_tf.checkpoints.torch_pickle import load_torch_file
from swiftformer_tf.errors import CheckpointError
from swiftformer_tf.variants import (MAX_DEPTH, MAX_WIDTH, SwiftFormerConfig, check_cost,
                                     find_variant, get_config)

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
    def default_attention(self) -> str:
        # The Hugging Face port (and its hub weights) predate the 2023-07-26 change.
        return "legacy" if self.format == "hf" else "normalize"

    @property
    def attention_note(self) -> Optional[str]:
        """Why the default attention is not the current one, to tell the user; or None."""
        if self.format != "hf":
            return None
        return (f"{self.path}: Hugging Face SwiftFormer weights come from the first official "
                f"release, whose attention weights are identically 1 (a softmax over a size-1 "
                f"axis); using attention='legacy' to match them. Pass attention='normalize' to "
                f"override.")


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
        # TypeError / AttributeError: a dtype numpy lacks (float8 and the like)
        except (SafetensorError, OSError, ValueError, TypeError, AttributeError) as err:
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
    odd_keys = [k for k in obj if not isinstance(k, str)]
    if odd_keys:
        raise CheckpointError(f"{path}: state_dict key {odd_keys[0]!r:.60} is not a string")
    tensors = {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if not tensors:
        raise CheckpointError(f"{path}: no tensors found (keys: {', '.join(map(str, list(obj)[:8]))})")
    return tensors, wrapper


def _config_path(path) -> str:
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    return os.path.join(folder, "config.json")


def _hf_config_next_to(path) -> Optional[dict]:
    config_path = _config_path(path)
    if not os.path.isfile(config_path):
        return None
    try:
        with open(config_path) as f:
            config = json.load(f)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{config_path}: unreadable ({err})") from None
    except RecursionError:
        raise CheckpointError(f"{config_path}: unreadable (JSON nested too deeply)") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path}: not a JSON object ({type(config).__name__})")
    if config.get("model_type", "swiftformer") != "swiftformer":
        raise CheckpointError(f"{config_path}: describes a {config['model_type']!r} model, "
                              f"not swiftformer")
    return config


# Hugging Face config fields that change the function, with the value this port computes.
HF_FUNCTION_FIELDS = {"hidden_act": "gelu", "batch_norm_eps": 1e-5, "down_patch_size": 3,
                      "down_stride": 2, "down_pad": 1, "num_channels": 3,
                      "use_layer_scale": True}


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


HEAD_KEYS = ("head.weight", "head.bias", "dist_head.weight", "dist_head.bias")


def detect_config(tensors: Dict[str, np.ndarray]) -> Tuple[SwiftFormerConfig, Optional[int], bool]:
    """Variant (or a custom config), class count and distillation, from official names.

    Declared sizes are checked against real data before a model is built: blocks must be
    numbered 0..depth-1 (so a stage cannot declare more blocks than it has tensors), depths
    and widths must lie in a plausible range, and each stage's width must be carried by its
    MLP weight (whose elements the file must really hold), so a small file cannot make the
    model large."""
    depths, widths, hidden = [], [], []
    for stage in range(4):
        prefix = re.compile(rf"^network\.{2 * stage}\.(\d+)\.")
        blocks = {int(m.group(1)) for k in tensors if (m := prefix.match(k))}
        if not blocks:
            raise CheckpointError(f"no blocks found for stage {stage + 1} ('network.{2 * stage}.*')")
        depth = max(blocks) + 1
        if depth > MAX_DEPTH or blocks != set(range(depth)):
            raise CheckpointError(
                f"stage {stage + 1} names blocks up to {depth - 1} but holds {len(blocks)} "
                f"(at most {MAX_DEPTH}, numbered from 0, are plausible)")
        last = f"network.{2 * stage}.{depth - 1}"
        scale, fc1 = tensors.get(f"{last}.layer_scale_1"), tensors.get(f"{last}.linear.fc1.weight")
        if scale is None or fc1 is None:
            raise CheckpointError(f"missing '{last}.layer_scale_1' or '{last}.linear.fc1.weight' "
                                  f"(the attention block ending stage {stage + 1})")
        width = int(scale.shape[0]) if scale.ndim else 0
        if not 1 <= width <= MAX_WIDTH or fc1.ndim != 4 or fc1.shape[1] != width:
            raise CheckpointError(
                f"'{last}.layer_scale_1' {tuple(scale.shape)} and '{last}.linear.fc1.weight' "
                f"{tuple(fc1.shape)} do not declare one width from 1 to {MAX_WIDTH}")
        depths.append(depth)
        widths.append(width)
        hidden.append(int(fc1.shape[0]))
    # One MLP ratio for the whole model (as the official code): every stage's hidden width
    # must be the one it gives, so a single stage cannot declare a huge ratio for all.
    mlp_ratio = hidden[3] / widths[3]
    for stage, (width, width_hidden) in enumerate(zip(widths, hidden)):
        if width_hidden != int(width * mlp_ratio):
            raise CheckpointError(
                f"stage {stage + 1}'s MLP is {width_hidden} wide for width {width}, not the "
                f"{int(width * mlp_ratio)} that stage 4's ratio ({hidden[3]}/{widths[3]}) gives")
    name = find_variant(depths, widths)
    try:
        if name is not None and mlp_ratio == 4.0:
            config = get_config(name)
        else:
            config = SwiftFormerConfig(depths=tuple(depths), widths=tuple(widths),
                                       mlp_ratio=mlp_ratio, name="custom")
        head = tensors.get("head.weight")
        if head is not None and head.ndim != 2:
            raise CheckpointError(f"'head.weight' has shape {tuple(head.shape)}, expected "
                                  f"(classes, {widths[3]})")
        num_classes, distillation = _class_count(tensors), "dist_head.weight" in tensors
        check_cost(config, num_classes or 0, distillation)
    except ValueError as err:  # out of the plausible range
        raise CheckpointError(str(err)) from None
    return config, num_classes, distillation


def _class_count(tensors) -> Optional[int]:
    """The class count the heads agree on. Built from 'head.weight' alone, a wrong one would
    make the model's shapes blame the right-shaped bias and distillation head instead, so the
    odd one out is named here."""
    declared = {key: int(tensors[key].shape[0]) for key in HEAD_KEYS
                if key in tensors and tensors[key].ndim >= 1}
    if not declared:
        return None
    counts = list(declared.values())
    majority = max(counts, key=lambda n: (counts.count(n), n == counts[0]))
    odd = [k for k, n in declared.items() if n != majority]
    if odd:
        agree = ", ".join(f"'{k}'" for k, n in declared.items() if n == majority)
        shapes = ", ".join(f"'{k}' {tuple(tensors[k].shape)}" for k in odd)
        raise CheckpointError(f"{shapes} disagree{'s' if len(odd) == 1 else ''} with {agree} "
                              f"on the class count ({majority})")
    return declared.get("head.weight", majority)


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
    for key, value in (("depths", depths), ("embed_dims", widths)):
        if value is not None and not (isinstance(value, list) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value)):
            raise CheckpointError(f"{_config_path(path)}: '{key}' must be a list of whole "
                                  f"numbers, got {json.dumps(value)[:80]}")
    labels = hf.get("id2label")
    if labels is not None and not isinstance(labels, dict):
        raise CheckpointError(f"{_config_path(path)}: 'id2label' must be an object, got "
                              f"{json.dumps(labels)[:80]}")
    if depths and widths and (tuple(depths), tuple(widths)) != (config.depths, config.widths):
        raise CheckpointError(f"{path}: config.json (depths {depths}, embed_dims {widths}) does "
                              f"not match the weights ({list(config.depths)}, {list(config.widths)})")
    expected = dict(HF_FUNCTION_FIELDS, mlp_ratio=config.mlp_ratio)
    differing = [f"{key}={hf[key]!r:.60} (this port: {value!r})" for key, value in expected.items()
                 if key in hf and not _same_value(hf[key], value)]
    if differing:
        raise CheckpointError(f"{path}: config.json sets {', '.join(differing)}: the weights "
                              f"would compute another function here")
    labels = hf.get("id2label")
    if labels and num_classes is not None and len(labels) != num_classes:
        raise CheckpointError(f"{path}: config.json has {len(labels)} labels, the head has "
                              f"{num_classes} classes")


def _same_value(given, expected) -> bool:
    if isinstance(expected, bool) or isinstance(given, bool):
        return given is expected
    if isinstance(expected, (int, float)) and isinstance(given, (int, float)):
        return abs(given - expected) <= 1e-12 * max(1.0, abs(expected))
    if isinstance(given, list) and len(set(map(str, given))) == 1:  # e.g. [3, 3]
        return _same_value(given[0], expected)
    return given == expected
