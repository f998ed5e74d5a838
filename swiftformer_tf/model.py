"""The SwiftFormer model (Keras 3, NHWC) and the keras.applications-style constructors."""

from __future__ import annotations

import logging
import os

import keras
from keras import layers, ops

from swiftformer_tf import kernels
from swiftformer_tf.checkpoints import (Checkpoint, CheckpointError, LoadReport,
                                        assign_from_checkpoint, export_state_dict, pretrained,
                                        read_checkpoint)
from swiftformer_tf.io_utils import one_line
from swiftformer_tf.layers import (
    ATTENTION_MODES,
    PACKAGE,
    ConvEncoder,
    ConvNorm,
    ImageNetPreprocessing,
    SwiftFormerEncoder,
    _batch_norm,
    _export_form,
    _export_form_config,
    _kernel_init,
    checked_ratio,
    checked_size,
)
from swiftformer_tf.variants import MAX_DEPTH, check_cost, get_config, parameter_count

logger = logging.getLogger(__name__)

POOLING_MODES = (None, "avg", "max")


@keras.saving.register_keras_serializable(package=PACKAGE)
class Stage(layers.Layer):
    """One stage: the downsampling conv (stages 2-4), conv encoders, one attention block."""

    def __init__(self, dim, depth, downsample, mlp_ratio=4.0, layer_scale_init=1e-5,
                 drop_path_rates=None, attention="normalize", export_form=None, **kwargs):
        super().__init__(**kwargs)
        self.export_form = form = _export_form(export_form)
        self.dim, self.depth = checked_size("dim", dim), checked_size("depth", depth, MAX_DEPTH)
        self.mlp_ratio, self.layer_scale_init = checked_ratio(mlp_ratio), float(layer_scale_init)
        self.drop_path_rates = [float(r) for r in (drop_path_rates or [0.0] * self.depth)]
        self.attention = attention
        self.downsample = (ConvNorm(self.dim, export_form=form, name="downsample")
                           if downsample else None)
        # As in the official Stage, conv encoders get no drop path; the attention block does.
        self.blocks = [ConvEncoder(self.dim, self.mlp_ratio, export_form=form, name=f"block{j}")
                       for j in range(self.depth - 1)]
        self.blocks.append(SwiftFormerEncoder(
            self.dim, self.mlp_ratio, self.layer_scale_init, self.drop_path_rates[-1],
            attention=attention, export_form=form, name=f"block{self.depth - 1}"))

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.downsample is not None:
            self.downsample.build(shape)
            shape = self.downsample.compute_output_shape(shape)
        for block in self.blocks:
            block.build(shape)

    def call(self, x, training=None):
        if self.downsample is not None:
            x = self.downsample(x, training=training)
        for block in self.blocks:
            x = block(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        if self.downsample is not None:
            return self.downsample.compute_output_shape(input_shape)
        return tuple(input_shape[:-1]) + (self.dim,)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "depth": self.depth,
                "downsample": self.downsample is not None, "mlp_ratio": self.mlp_ratio,
                "layer_scale_init": self.layer_scale_init,
                "drop_path_rates": self.drop_path_rates, "attention": self.attention,
                "export_form": _export_form_config(self.export_form)}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SwiftFormer(keras.Model):
    """SwiftFormer (Shaker et al., ICCV 2023) for NHWC images.

    Args:
        variant: "XS", "S", "L1", "L3", a ``SwiftFormerConfig`` or a dict of its fields.
        weights: ``None`` (random init); ``"imagenet"``: the official ImageNet-1k weights,
            downloaded once (pinned, verified, cached; see
            :mod:`swiftformer_tf.checkpoints.pretrained`); a checkpoint (official / timm /
            Hugging Face ``.pth``, ``.bin`` or ``.safetensors``, or a read ``Checkpoint``),
            a ``.keras`` file or ``.weights.h5``.
        include_top: add the classifier (final BN, global average pool, heads).
        num_classes: classes of the head; default 1000, or the checkpoint's. A different
            count than the checkpoint's leaves the heads newly initialised (fine-tuning).
        input_shape: (H, W, 3); ``(None, None, 3)`` takes any size.
        pooling: with ``include_top=False``: None (4-D map), "avg" or "max".
        distillation: add ``dist_head``. In inference the output is the average of both
            heads; ``model(x, training=True)`` and ``model(x, return_both_heads=True)``
            (inference-mode BatchNorm) return ``(head, dist_head)``.
        drop_path_rate: stochastic depth, linearly increasing over blocks (attention
            blocks only, as in the official code).
        attention: "normalize" (official code since 2023-07-26) or "legacy" (earlier code
            and the Hugging Face hub weights); default "legacy" for Hugging Face
            checkpoints, "normalize" otherwise.
        features_only: return the 4 stage outputs (strides 4, 8, 16, 32) instead.
        include_preprocessing: accept 0-255 RGB and apply the ImageNet mean/std in-graph.
        class_names: the name of each output class (a model trained on a folder or a TFDS
            dataset keeps its classes' names; a TFLite export with metadata writes them
            as its labels). None when unknown.
        export_form: None for the trainable model. An ``ExportForm``
            (:mod:`swiftformer_tf.lite.export_form`) builds the reparameterized inference
            form that :func:`swiftformer_tf.lite.reparameterize.reparameterize` fills (BatchNorms before
            convs and the final norm folded, both heads merged into one), with the GELU and
            L2 normalisations the form computes (integer-friendly ones for int8 export).
            Not for training.
    """

    def __init__(self, variant="XS", *, weights=None, include_top=True, num_classes=None,
                 input_shape=(None, None, 3), pooling=None, distillation=True,
                 drop_path_rate=0.0, attention=None, features_only=False,
                 include_preprocessing=False, export_form=None, class_names=None, name=None,
                 **kwargs):
        config = get_config(variant)
        checkpoint = _read_weights(weights, config)
        if checkpoint is not None:
            if num_classes is None and checkpoint.num_classes:
                num_classes = checkpoint.num_classes
            if attention in (None, "auto"):
                attention = checkpoint.default_attention
                if checkpoint.attention_note:  # the one place this default is decided
                    logger.warning(checkpoint.attention_note)
        attention = attention if attention not in (None, "auto") else "normalize"
        num_classes = 1000 if num_classes is None else int(num_classes)
        _check_options(input_shape, pooling, attention, include_top, features_only, num_classes,
                       drop_path_rate)
        # what building would allocate, bounded before anything is built (.keras configs
        # and checkpoints are untrusted)
        check_cost(config, num_classes if include_top and not features_only else 0,
                   distillation, input_shape)
        super().__init__(name=name or f"swiftformer_{config.name.lower()}", **kwargs)
        self.config = config
        self.include_top = bool(include_top) and not features_only
        self.num_classes = num_classes
        self.image_shape = tuple(input_shape)
        self.pooling = pooling
        self.distillation = bool(distillation)
        self.drop_path_rate = float(drop_path_rate)
        self.attention = attention
        self.features_only = bool(features_only)
        self.include_preprocessing = bool(include_preprocessing)
        self.class_names = check_class_names(class_names, num_classes, self.include_top)
        self.export_form = form = _export_form(export_form)
        self.quantizer = None  # the fake quantization of a QAT form (swiftformer_tf.lite.qat)

        self.preprocessing = (ImageNetPreprocessing(name="preprocessing")
                              if include_preprocessing else None)
        c1, c2 = config.stem_widths
        self.stem = [ConvNorm(c1, activation="relu", export_form=form, name="stem_conv1"),
                     ConvNorm(c2, activation="relu", export_form=form, name="stem_conv2")]
        total = sum(config.depths)
        self.stages = []
        for i, (dim, depth) in enumerate(zip(config.widths, config.depths)):
            first = sum(config.depths[:i])
            rates = [self.drop_path_rate * (first + j) / max(total - 1, 1) for j in range(depth)]
            self.stages.append(Stage(dim, depth, downsample=i > 0, mlp_ratio=config.mlp_ratio,
                                     layer_scale_init=config.layer_scale_init,
                                     drop_path_rates=rates, attention=attention,
                                     export_form=form and form.for_stage(i), name=f"stage{i}"))
        merged_head = self.reparameterized and self.include_top
        self.norm = None if self.features_only or merged_head else _batch_norm("norm")
        self.head = self.dist_head = None
        if self.include_top:
            self.head = _dense(num_classes, "head")
            if self.distillation and not merged_head:
                self.dist_head = _dense(num_classes, "dist_head")

        self.build((None,) + self.image_shape)
        self.load_report = None  # what loading from a checkpoint did, when it did
        if checkpoint is not None:
            fresh_heads = (self.include_top and checkpoint.num_classes is not None
                           and checkpoint.num_classes != self.num_classes)
            self.load_report = self.load_checkpoint(checkpoint, skip_heads=fresh_heads)
            # New heads are a choice (fine-tuning) but must never pass unnoticed.
            logger.log(logging.WARNING if fresh_heads else logging.INFO, "%s: %s",
                       checkpoint.path, self.load_report)
        elif weights is not None:
            self.load_weights(os.fspath(weights)) if str(weights).endswith(".weights.h5") \
                else _load_keras_file_weights(self, weights)

    @property
    def reparameterized(self) -> bool:
        """The inference form (see ``export_form``), not the trainable model."""
        return self.export_form is not None

    @classmethod
    def from_checkpoint(cls, source, *, format="auto", variant="auto", **kwargs):
        """A model built to a checkpoint's variant, class count and heads, with its weights.
        ``source``: a path, a pretrained name ("imagenet:L1") or a read ``Checkpoint``;
        ``kwargs`` override constructor options (see the class)."""
        checkpoint = source
        if not isinstance(source, Checkpoint):
            named = variant if isinstance(variant, str) and variant != "auto" else None
            checkpoint = read_checkpoint(pretrained.resolve(source, named), format=format,
                                         variant=variant)
        options = dict(num_classes=checkpoint.num_classes or 1000,
                       include_top=checkpoint.num_classes is not None,
                       distillation=checkpoint.distillation)
        return cls(checkpoint.config, weights=checkpoint, **{**options, **kwargs})

    def load_checkpoint(self, checkpoint, skip_heads=False) -> LoadReport:
        """Sets every weight from a checkpoint (path or ``Checkpoint``), strictly: an error
        lists missing, unexpected and mis-shaped tensors. ``skip_heads`` leaves the heads as
        they are (fine-tuning to another class count)."""
        if not isinstance(checkpoint, Checkpoint):
            checkpoint = read_checkpoint(checkpoint)
        if (checkpoint.config.depths, checkpoint.config.widths) != \
                (self.config.depths, self.config.widths):
            raise CheckpointError(
                f"{checkpoint.path}: checkpoint is SwiftFormer-{checkpoint.config.name} "
                f"{list(checkpoint.config.widths)}, the model is SwiftFormer-{self.config.name} "
                f"{list(self.config.widths)}")
        return assign_from_checkpoint(self.weights, checkpoint, skip_heads=skip_heads)

    # -- construction -------------------------------------------------------------------
    def build(self, input_shape):
        shape = (None, None, None, input_shape[-1])
        if self.preprocessing is not None:
            self.preprocessing.build(shape)
        for layer in self.stem:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        for stage in self.stages:
            stage.build(shape)
            shape = stage.compute_output_shape(shape)
        if self.norm is not None:
            self.norm.build(shape)
        for head in (self.head, self.dist_head):
            if head is not None:
                head.build((None, shape[-1]))
        if self.export_form is not None and self.export_form.quantized:
            self._add_activation_ranges()
        self.built = True

    def _add_activation_ranges(self):
        """The QAT form's (min, max) per quantized activation, numbered in call order by a
        counting pass (the count depends on the form, not on the input size)."""
        from swiftformer_tf.lite.fake_quant import Quantizer
        # one quantizer for every layer's form (Keras may hand a layer a copy of its form)
        self.quantizer = Quantizer()
        for layer in self._flatten_layers(include_self=True):
            if getattr(layer, "export_form", None) is not None:
                layer.export_form.quantizer = self.quantizer
        shape = [1] + [32 if n is None else n for n in self.image_shape]
        with self.quantizer.using("count"):
            self.quantizer.begin()
            self.call(ops.zeros(shape), training=False)
        self.activation_ranges = self.add_weight(
            shape=(self.quantizer.sites, 2), initializer="zeros", name="activation_ranges")
        self.quantizer.ranges = self.activation_ranges

    # -- forward ------------------------------------------------------------------------
    def call(self, inputs, training=None, return_both_heads=False):
        if self.quantizer is not None:
            self.quantizer.begin()
        features = self.forward_features(inputs, training=training)
        if self.features_only:
            return features
        x = features[-1]
        if self.norm is not None:
            x = (kernels.batch_norm_train(self.norm, x)
                 if (kernels.uses_batch_statistics(self.norm, training)
                     and not kernels.uses_plain_graph(self.export_form))
                 else self.norm(x, training=training))
        if not self.include_top:
            if self.pooling == "avg":
                return ops.mean(x, axis=(1, 2))
            if self.pooling == "max":
                return ops.max(x, axis=(1, 2))
            return x
        form = self.export_form
        pooled = kernels.activation(ops.mean(x, axis=(1, 2)), form)
        logits = kernels.activation(kernels.plain_layer(pooled, self.head, form), form)
        if self.dist_head is None:
            return logits
        dist_logits = self.dist_head(pooled)
        if training or return_both_heads:
            return logits, dist_logits
        return (logits + dist_logits) / 2

    def forward_features(self, inputs, training=None):
        """The outputs of the 4 stages (before the final norm), strides 4, 8, 16, 32."""
        form = self.export_form
        x = kernels.activation(inputs, form)
        if self.preprocessing is not None:
            x = kernels.activation(self.preprocessing(x), form)
        for layer in self.stem:
            x = layer(x, training=training)
        features = []
        for stage in self.stages:
            x = stage(x, training=training)
            features.append(x)
        return features

    # -- serialisation ------------------------------------------------------------------
    def get_config(self):
        return {"variant": self.config.to_dict(), "include_top": self.include_top,
                "num_classes": self.num_classes, "input_shape": list(self.image_shape),
                "pooling": self.pooling, "distillation": self.distillation,
                "drop_path_rate": self.drop_path_rate, "attention": self.attention,
                "features_only": self.features_only,
                "include_preprocessing": self.include_preprocessing,
                "class_names": self.class_names,
                "export_form": _export_form_config(self.export_form), "name": self.name,
                "trainable": self.trainable}

    # The options get_config writes, and the older names from_config still reads.
    CONFIG_KEYS = frozenset({
        "variant", "include_top", "num_classes", "input_shape", "pooling", "distillation",
        "drop_path_rate", "attention", "features_only", "include_preprocessing", "export_form",
        "class_names",
        "name", "trainable", "fused", "gelu_form", "norm_references"})

    @classmethod
    def check_config(cls, config):
        """A saved configuration holds options only: never ``weights`` (a saved model must
        not load other files or download), nor anything else unknown."""
        if not isinstance(config, dict):
            raise ValueError(f"a SwiftFormer configuration is a dict, not {type(config).__name__}")
        if "weights" in config:
            raise ValueError("the configuration sets 'weights': a saved model's configuration "
                             "cannot load other files or download weights")
        unknown = sorted(set(config) - cls.CONFIG_KEYS)
        if unknown:
            raise ValueError(f"unknown SwiftFormer option(s) in the configuration: "
                             f"{', '.join(map(repr, unknown))[:200]}")

    @classmethod
    def from_config(cls, config):
        cls.check_config(config)
        config = dict(config)
        config["input_shape"] = tuple(config.get("input_shape", (None, None, 3)))
        # Files saved before the export form was one object: the trainable model's defaults.
        if config.pop("fused", False):
            raise ValueError("this .keras file holds an export form saved by an older "
                             "swiftformer-tf; export again from the trainable model")
        config.pop("gelu_form", None), config.pop("norm_references", None)
        return cls(**config)


def _dense(units, name):
    return layers.Dense(units, kernel_initializer=_kernel_init(), name=name)


def _is_keras_weights(weights):
    return str(weights).endswith((".keras", ".weights.h5"))


def _read_weights(weights, config) -> "Checkpoint | None":
    """The checkpoint that ``weights`` names (None for none, or for Keras files)."""
    if weights is None or isinstance(weights, Checkpoint):
        return weights
    if pretrained.is_pretrained(weights):
        weights = pretrained.fetch(weights, config.name)
    return None if _is_keras_weights(weights) else read_checkpoint(weights)


def load(source, *, variant=None, format="auto", **overrides) -> SwiftFormer:
    """A SwiftFormer from any source; the one loader of every command-line tool.

    ``source``: "imagenet" / "imagenet:L1" (pinned pretrained weights), a ``.keras`` file, or
    an official / timm / Hugging Face checkpoint (``.pth``, ``.bin``, ``.safetensors``, a
    model folder). ``variant`` checks the source against a variant (and picks the pretrained
    weights of a bare "imagenet"); ``overrides`` are constructor options to change
    (``num_classes``, ``input_shape``, ``include_preprocessing``, ``drop_path_rate`` ...).
    Weights are matched by name, strictly; with another ``num_classes`` the heads are newly
    initialised (``model.load_report.fresh_heads``).
    """
    overrides = {k: v for k, v in overrides.items() if v not in (None, "auto")}  # keep source's
    named = variant if isinstance(variant, str) and variant != "auto" else None
    source = pretrained.resolve(source, named)
    if str(source).endswith(".keras"):
        return _load_keras(os.fspath(source), variant, overrides)
    wanted = variant if variant not in (None, "auto") else "auto"
    return SwiftFormer.from_checkpoint(source, format=format, variant=wanted, **overrides)


def _load_keras(path, variant, overrides):
    model = read_keras_file(path)
    if variant not in (None, "auto") and get_config(variant).to_dict() != model.config.to_dict():
        raise CheckpointError(f"{path}: is SwiftFormer-{model.config.name}, not the variant "
                              f"asked for ({get_config(variant).name})")
    config = model.get_config()
    changed = {k: v for k, v in overrides.items()
               if k not in config or _as_config_value(v) != _as_config_value(config[k])}
    if not changed:
        return model
    if model.reparameterized:  # an export or QAT form: its weights are folded already
        raise CheckpointError(f"{path}: holds an export form (reparameterized, e.g. from "
                              f"train.py --qat) that cannot be rebuilt with other "
                              f"{', '.join(sorted(changed))}")
    # Another configuration: the weights go over by name, through the checkpoint transfer.
    checkpoint = Checkpoint(
        path=path, format="keras", tensors=export_state_dict(model.weights), wrapper_key=None,
        config=model.config, num_classes=model.num_classes if model.include_top else None,
        distillation=model.dist_head is not None)
    kept = {k: config[k] for k in ("input_shape", "pooling", "drop_path_rate", "attention",
                                   "features_only", "include_preprocessing")}
    kept["input_shape"] = tuple(kept["input_shape"])
    if "num_classes" not in changed and overrides.get("include_top", True) \
            and not overrides.get("features_only"):
        kept["class_names"] = config.get("class_names")  # the same classes, the same names
    return SwiftFormer.from_checkpoint(checkpoint, **{**kept, **overrides})


# A .keras file is a zip: its members' declared sizes are checked before any is read (a
# deflate bomb of a config.json inflates to gigabytes), and its configuration before Keras
# builds anything from it.
KERAS_CONFIG_LIMIT = 4 * 2 ** 20  # config.json and metadata.json; a SwiftFormer's is ~2 KB
_H5_OVERHEAD = 4096  # bytes per variable of model.weights.h5 beyond its data (~1.4 K measured)


def read_keras_file(path, any_model=False) -> SwiftFormer:
    """The SwiftFormer of a ``.keras`` file, read safely: the one reader of ``.keras`` files
    (``load``, ``weights=``, a teacher). Raises ``CheckpointError`` naming the file.
    ``any_model``: another Keras model is accepted too (a distillation teacher), with the
    same archive checks and Keras' safe mode."""
    import json
    import zipfile
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
                config = _swiftformer_config(path, config)
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
    if not isinstance(model, SwiftFormer) and not any_model:
        raise CheckpointError(f"{path}: holds {type(model).__name__}, not a SwiftFormer")
    return model


def _swiftformer_config(path, config) -> dict:
    """The SwiftFormer options of a .keras file's config.json, checked against the cost
    bounds before Keras builds anything."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise CheckpointError(f"{path}: its config.json is not a Keras model's")
    if config.get("class_name") != "SwiftFormer" or \
            config.get("registered_name", f"{PACKAGE}>SwiftFormer") != f"{PACKAGE}>SwiftFormer":
        raise CheckpointError(f"{path}: holds {str(config.get('class_name'))[:80]}, not a "
                              f"SwiftFormer")
    options = config["config"]
    SwiftFormer.check_config(options)
    include_top = bool(options.get("include_top", True)) and not options.get("features_only")
    check_cost(get_config(options.get("variant", "XS")),
               int(options.get("num_classes", 1000)) if include_top else 0,
               bool(options.get("distillation", True)), options.get("input_shape"))
    return options


def _as_config_value(value):
    return list(value) if isinstance(value, tuple) else value



def _load_keras_file_weights(model, path):
    source = read_keras_file(path)
    if source.config.to_dict() != model.config.to_dict():
        raise CheckpointError(f"{path}: holds SwiftFormer-{source.config.name}, not a "
                              f"SwiftFormer-{model.config.name} model")
    model.set_weights(source.get_weights())


MAX_CLASS_NAME = 200  # characters


def check_class_names(class_names, num_classes, include_top):
    if class_names is None:
        return None
    if not include_top:
        raise ValueError("class_names apply only with include_top=True")
    if isinstance(class_names, (str, bytes)) or not isinstance(class_names, (list, tuple)):
        raise ValueError(f"class_names must be a list of strings, got {class_names!r:.80}")
    names = list(class_names)
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} names for {num_classes} classes")
    bad = [n for n in names if not isinstance(n, str) or not n or len(n) > MAX_CLASS_NAME
           or "\n" in n or "\r" in n]
    if bad:
        raise ValueError(f"class name {bad[0]!r:.60} must be a non-empty line of at most "
                         f"{MAX_CLASS_NAME} characters")
    return names


def _check_options(input_shape, pooling, attention, include_top, features_only, num_classes,
                   drop_path_rate):
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (H, W, 3) in NHWC, got {tuple(input_shape)}")
    for size in input_shape[:2]:
        if size is not None and int(size) < 1:
            raise ValueError(f"input_shape has a non-positive size: {tuple(input_shape)}")
    if pooling not in POOLING_MODES:
        raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
    if attention not in ATTENTION_MODES:  # None was resolved before
        raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
    if pooling is not None and include_top and not features_only:
        raise ValueError("pooling applies only with include_top=False")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if not 0.0 <= drop_path_rate < 1.0:
        raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")


def _variant_constructor(variant):
    def constructor(*, weights=None, include_top=True, num_classes=None,
                    input_shape=(None, None, 3), pooling=None, distillation=True,
                    drop_path_rate=0.0, attention=None, features_only=False,
                    include_preprocessing=False, name=None):
        return SwiftFormer(variant, weights=weights, include_top=include_top,
                           num_classes=num_classes, input_shape=input_shape, pooling=pooling,
                           distillation=distillation, drop_path_rate=drop_path_rate,
                           attention=attention, features_only=features_only,
                           include_preprocessing=include_preprocessing, name=name)

    constructor.__name__ = constructor.__qualname__ = f"SwiftFormer{variant}"
    constructor.__doc__ = (f"SwiftFormer-{variant}; the arguments are those of "
                           f":class:`SwiftFormer` without ``variant``.")
    return constructor


SwiftFormerXS = _variant_constructor("XS")
SwiftFormerS = _variant_constructor("S")
SwiftFormerL1 = _variant_constructor("L1")
SwiftFormerL3 = _variant_constructor("L3")
