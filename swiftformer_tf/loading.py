"""Reading what a model is loaded from: pretrained names, official / timm / Hugging Face
checkpoints and ``.keras`` files, each as a ``Source`` (weights by official name, and the
options the file declares). The one reader behind ``load``, ``SwiftFormer(weights=...)``,
the command-line tools and a distillation teacher; every failure is a ``CheckpointError``
naming the file. The model module builds from a ``Source``; this module does not know it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from typing import Optional

from swiftformer_tf.checkpoints import (Checkpoint, export_state_dict, pretrained,
                                        read_checkpoint)
from swiftformer_tf.errors import CheckpointError
from swiftformer_tf.io_utils import one_line
from swiftformer_tf.variants import check_cost, get_config, parameter_count

REGISTERED_NAME = "swiftformer_tf>SwiftFormer"  # the Keras name every saved SwiftFormer has

# The options a saved SwiftFormer's configuration holds, and the older names it may still
# hold. Never ``weights``: a saved model must not load other files or download.
SAVED_OPTIONS = frozenset({
    "variant", "include_top", "num_classes", "input_shape", "pooling", "distillation",
    "drop_path_rate", "attention", "features_only", "include_preprocessing", "export_form",
    "class_names", "name", "trainable", "fused", "gelu_form", "norm_references"})

# The options a .keras file gives a model built from it, unless the caller chooses others.
FILE_OPTIONS = ("num_classes", "include_top", "distillation", "attention", "class_names",
                "include_preprocessing", "input_shape", "pooling", "drop_path_rate",
                "features_only", "export_form")

# A .keras file is a zip: its members' declared sizes are checked before any is read (a
# deflate bomb of a config.json inflates to gigabytes), and its configuration before Keras
# builds anything from it.
KERAS_CONFIG_LIMIT = 4 * 2 ** 20  # config.json and metadata.json; a SwiftFormer's is ~2 KB
_H5_OVERHEAD = 4096  # bytes per variable of model.weights.h5 beyond its data (~1.4 K measured)


@dataclasses.dataclass
class Source:
    """What a model is built from: the weights by official name (``checkpoint``), the
    options the source declares (class count, heads, attention; for a .keras file all of
    its options), and for a .keras file the model it holds."""

    checkpoint: Checkpoint
    options: dict
    model: Optional[object] = None  # the SwiftFormer of a .keras file

    @property
    def path(self) -> str:
        return self.checkpoint.path

    def by_name(self) -> Checkpoint:
        """The checkpoint with its tensors by official name; a .keras file's are taken from
        its model only here, when another configuration needs them (a file loaded as saved
        never converts them)."""
        if self.model is not None and not self.checkpoint.tensors:
            self.checkpoint = dataclasses.replace(
                self.checkpoint, tensors=export_state_dict(self.model.weights))
        return self.checkpoint


def resolve(source, variant: Optional[str] = None):
    """A local path for ``source``: a pretrained name ("imagenet", "imagenet:L1") is fetched
    (verified, cached; ``variant``, a name or config, picks the model of a bare
    "imagenet"); anything else is returned as given. The one place pretrained names are
    resolved."""
    named = getattr(variant, "name", variant)
    return pretrained.resolve(source, named if named not in (None, "auto") else None)


def read_source(source, variant=None, format: str = "auto") -> Source:
    """``source`` (a pretrained name, a checkpoint path or folder, a ``.keras`` file, a read
    ``Checkpoint``) as a ``Source``; ``variant`` (a name or config) must match it."""
    if isinstance(source, Source):
        return source
    if isinstance(source, Checkpoint):
        return Source(source, _checkpoint_options(source))
    path = resolve(source, variant)
    if str(path).endswith(".keras"):
        return _keras_source(os.fspath(path), variant)
    # a variant named by the user (--variant) overrides detection; a constructor's config is
    # compared when the weights are assigned (SwiftFormer.load_checkpoint names both)
    wanted = variant if isinstance(variant, str) and variant != "auto" else "auto"
    checkpoint = read_checkpoint(path, format=format, variant=wanted)
    return Source(checkpoint, _checkpoint_options(checkpoint))


def _checkpoint_options(checkpoint: Checkpoint) -> dict:
    return {"num_classes": checkpoint.num_classes,
            "include_top": checkpoint.num_classes is not None,
            "distillation": checkpoint.distillation, "attention": checkpoint.default_attention}


def _keras_source(path, variant) -> Source:
    model = read_keras_file(path)
    if variant not in (None, "auto") and get_config(variant).to_dict() != model.config.to_dict():
        raise CheckpointError(f"{path}: is SwiftFormer-{model.config.name}, not the variant "
                              f"asked for ({get_config(variant).name})")
    config = model.get_config()
    options = {k: config[k] for k in FILE_OPTIONS}
    options["input_shape"] = tuple(options["input_shape"])
    options["export_form"] = model.export_form
    checkpoint = Checkpoint(  # tensors by name only when needed: Source.by_name
        path=path, format="keras", tensors={}, wrapper_key=None, config=model.config,
        num_classes=model.num_classes if model.include_top else None,
        distillation=model.dist_head is not None)
    return Source(checkpoint, options, model)


def check_saved_options(config):
    """A saved configuration holds a SwiftFormer's options only: never ``weights``, nor
    anything else unknown."""
    if not isinstance(config, dict):
        raise ValueError(f"a SwiftFormer configuration is a dict, not {type(config).__name__}")
    if "weights" in config:
        raise ValueError("the configuration sets 'weights': a saved model's configuration "
                         "cannot load other files or download weights")
    unknown = sorted(set(config) - SAVED_OPTIONS)
    if unknown:
        raise ValueError(f"unknown SwiftFormer option(s) in the configuration: "
                         f"{', '.join(map(repr, unknown))[:200]}")


def read_keras_file(path, any_model=False):
    """The SwiftFormer of a ``.keras`` file, read safely. Raises ``CheckpointError`` naming
    the file. ``any_model``: another Keras model is accepted too (a distillation teacher),
    with the same archive checks and Keras' safe mode."""
    import keras
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            if "config.json" not in members:
                raise CheckpointError(f"{path}: not a .keras file (no config.json inside)")
            for name in ("config.json", "metadata.json"):
                if name in members and members[name].file_size > KERAS_CONFIG_LIMIT:
                    raise CheckpointError(
                        f"{path}: its {name} inflates to {members[name].file_size:,} bytes "
                        f"(at most {KERAS_CONFIG_LIMIT:,}); not a SwiftFormer's")
            # the declared size bounds the read: zipfile stops there (and checks the CRC)
            config = json.loads(archive.read("config.json"))
            if any_model and isinstance(config, dict) and config.get("class_name") != "SwiftFormer":
                config = None  # another architecture: Keras' safe mode is the check
            else:
                config = _swiftformer_options(path, config)
            weights = members.get("model.weights.h5")
            if weights is not None and config is not None:
                model_config = get_config(config.get("variant", "XS"))
                parameters = parameter_count(model_config, int(config.get("num_classes", 1000)),
                                             bool(config.get("distillation", True)))
                # float32 weights, room for an optimizer's two slots, HDF5's own records
                limit = 3 * 4 * parameters + _H5_OVERHEAD * (64 * sum(model_config.depths) + 64)
                if weights.file_size > limit:
                    raise CheckpointError(
                        f"{path}: its model.weights.h5 inflates to {weights.file_size:,} bytes, "
                        f"more than the {parameters:,} parameters its config.json declares "
                        f"take (at most {limit:,})")
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as err:
        raise CheckpointError(f"{path}: not a loadable .keras file ({one_line(err)})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: its config.json is not a SwiftFormer's (nested too "
                              f"deeply)") from None
    except (ValueError, TypeError) as err:  # JSON, or fields of wrong types
        raise CheckpointError(f"{path}: its config.json is not a SwiftFormer's "
                              f"({one_line(err)})") from None
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for a damaged or foreign file
        raise CheckpointError(f"{path}: not a loadable .keras file ({one_line(err)})") from None
    is_swiftformer = keras.saving.get_registered_name(type(model)) == REGISTERED_NAME
    if not is_swiftformer and not any_model:
        raise CheckpointError(f"{path}: holds {type(model).__name__}, not a SwiftFormer")
    return model


def _swiftformer_options(path, config) -> dict:
    """The SwiftFormer options of a .keras file's config.json, checked against the cost
    bounds before Keras builds anything."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise CheckpointError(f"{path}: its config.json is not a Keras model's")
    if config.get("class_name") != "SwiftFormer" or \
            config.get("registered_name", REGISTERED_NAME) != REGISTERED_NAME:
        raise CheckpointError(f"{path}: holds {str(config.get('class_name'))[:80]}, not a "
                              f"SwiftFormer")
    options = config["config"]
    check_saved_options(options)
    include_top = bool(options.get("include_top", True)) and not options.get("features_only")
    check_cost(get_config(options.get("variant", "XS")),
               int(options.get("num_classes", 1000)) if include_top else 0,
               bool(options.get("distillation", True)), options.get("input_shape"))
    return options
