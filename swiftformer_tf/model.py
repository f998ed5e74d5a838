"""The SwiftFormer model (Keras 3, NHWC) and the keras.applications-style constructors."""

from __future__ import annotations

import logging
import os

import keras
from keras import layers, ops

from swiftformer_tf import kernels, loading
from swiftformer_tf.checkpoints import (Checkpoint, LoadReport, assign_from_checkpoint,
                                        read_checkpoint)
from swiftformer_tf.errors import CheckpointError
from swiftformer_tf.layers import (ATTENTION_MODES, PACKAGE, ConvNorm, ImageNetPreprocessing,
                                   Stage, _batch_norm, _export_form, _export_form_config,
                                   _kernel_init)
from swiftformer_tf.quantizer import Quantizer
from swiftformer_tf.variants import check_cost, get_config

logger = logging.getLogger(__name__)

POOLING_MODES = (None, "avg", "max")


@keras.saving.register_keras_serializable(package=PACKAGE)
class SwiftFormer(keras.Model):
    """SwiftFormer (Shaker et al., ICCV 2023) for NHWC images.

    Args:
        variant: "XS", "S", "L1", "L3", a ``SwiftFormerConfig`` or a dict of its fields.
        weights: ``None`` (random init); ``"imagenet"``: the official ImageNet-1k weights,
            downloaded once (pinned, verified, cached; see
            :mod:`swiftformer_tf.checkpoints.pretrained`); a checkpoint (official / timm /
            Hugging Face ``.pth``, ``.bin`` or ``.safetensors``, or a read ``Checkpoint``),
            a ``.keras`` file or ``.weights.h5``. Options left at ``None`` below are then
            the weights' own: a checkpoint's class count, heads and attention; all of a
            ``.keras`` file's options (``SwiftFormerXS(weights="m.keras")`` builds what
            ``load("m.keras")`` does).
        include_top: add the classifier (final BN, global average pool, heads); default
            True.
        num_classes: classes of the head; default 1000. A different count than the
            weights' leaves the heads newly initialised (fine-tuning).
        input_shape: (H, W, 3); default ``(None, None, 3)``, which takes any size.
        pooling: with ``include_top=False``: None (4-D map), "avg" or "max".
        distillation: add ``dist_head`` (default True). In inference the output is the average of both
            heads; ``model(x, training=True)`` and ``model(x, return_both_heads=True)``
            (inference-mode BatchNorm) return ``(head, dist_head)``.
        drop_path_rate: stochastic depth, linearly increasing over blocks (attention
            blocks only, as in the official code); default 0.
        attention: "normalize" (official code since 2023-07-26) or "legacy" (earlier code
            and the Hugging Face hub weights); default "legacy" for Hugging Face
            checkpoints, "normalize" otherwise.
        features_only: return the 4 stage outputs (strides 4, 8, 16, 32) instead; default
            False.
        include_preprocessing: accept 0-255 RGB and apply the ImageNet mean/std in-graph;
            default False.
        class_names: the name of each output class (a model trained on a folder or a TFDS
            dataset keeps its classes' names; a TFLite export with metadata writes them
            as its labels). None when unknown.
        export_form: None for the trainable model. An ``ExportForm``
            (:mod:`swiftformer_tf.forms`) builds the reparameterized inference
            form that :func:`swiftformer_tf.export.reparameterize.reparameterize` fills (BatchNorms before
            convs and the final norm folded, both heads merged into one), with the GELU and
            L2 normalisations the form computes (integer-friendly ones for int8 export).
            Not for training.
    """

    def __init__(self, variant="XS", *, weights=None, include_top=None, num_classes=None,
                 input_shape=None, pooling=None, distillation=None, drop_path_rate=None,
                 attention=None, features_only=None, include_preprocessing=None,
                 export_form=None, class_names=None, name=None, **kwargs):
        config = get_config(variant)
        source = None
        if weights is not None and not str(weights).endswith(".weights.h5"):
            source = loading.read_source(weights, config)
        chosen = dict(include_top=include_top, num_classes=num_classes, input_shape=input_shape,
                      pooling=pooling, distillation=distillation, drop_path_rate=drop_path_rate,
                      attention=attention if attention != "auto" else None,
                      features_only=features_only, include_preprocessing=include_preprocessing,
                      export_form=export_form, class_names=class_names)
        options = _with_defaults(chosen, source)
        if source is not None and attention in (None, "auto") and source.checkpoint.attention_note:
            logger.warning(source.checkpoint.attention_note)  # the one place this is decided
        include_top, num_classes, input_shape, pooling, distillation, drop_path_rate, \
            attention, features_only, include_preprocessing, export_form, class_names = \
            (options[k] for k in chosen)
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
        self.quantizer = None  # the fake quantization of a QAT form (swiftformer_tf.export.qat)

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
        if source is not None:
            self._load_source(source, options)
        elif weights is not None:
            self.load_weights(os.fspath(weights))

    def _load_source(self, source, options):
        if source.model is not None and options == source.options:
            self.set_weights(source.model.get_weights())  # a .keras file as saved, any form
            return
        if source.model is not None and source.model.reparameterized:
            raise CheckpointError(f"{source.path}: holds an export form (reparameterized, e.g. "
                                  f"from swiftformer-train --qat) that cannot be rebuilt with "
                                  f"other options")
        # Another configuration: the weights go over by name.
        checkpoint = source.by_name()
        fresh_heads = (self.include_top and checkpoint.num_classes is not None
                       and checkpoint.num_classes != self.num_classes)
        self.load_report = self.load_checkpoint(checkpoint, skip_heads=fresh_heads)
        # New heads are a choice (fine-tuning) but must never pass unnoticed.
        logger.log(logging.WARNING if fresh_heads else logging.INFO, "%s: %s",
                   checkpoint.path, self.load_report)

    @property
    def reparameterized(self) -> bool:
        """The inference form (see ``export_form``), not the trainable model."""
        return self.export_form is not None

    @classmethod
    def from_checkpoint(cls, source, *, format="auto", variant="auto", **kwargs):
        """A model built to a checkpoint's variant, class count and heads, with its weights
        (``load`` with a checkpoint); ``kwargs`` override constructor options."""
        return load(source, variant=variant, format=format, **kwargs)

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

    def attention_tensors(self, images):
        """Per stage, the tensors its attention L2-normalises ((values, axis) for the query,
        key and token weights) at inference for ``images`` (an NHWC batch of model input):
        what the int8 export form is calibrated on (``forms.calibrate_norm_references``)."""
        x = images
        if self.preprocessing is not None:
            x = self.preprocessing(x)
        for layer in self.stem:
            x = layer(x)
        per_stage = []
        for stage in self.stages:
            x, tensors = stage.attention_tensors(x)
            per_stage.append(tensors)
        return per_stage

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

    @classmethod
    def from_config(cls, config):
        loading.check_saved_options(config)
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


def load(source, *, variant=None, format="auto", **overrides) -> SwiftFormer:
    """A SwiftFormer from any source; the one loader of every command-line tool.

    ``source``: "imagenet:L1" (pinned pretrained weights; "imagenet" with ``variant``), a
    ``.keras`` file, or an official / timm / Hugging Face checkpoint (``.pth``, ``.bin``,
    ``.safetensors``, a model folder). ``variant`` checks the source against a variant;
    ``overrides`` are constructor options to change (``num_classes``, ``input_shape``,
    ``include_preprocessing``, ``drop_path_rate`` ...); the others are the source's.
    Weights are matched by name, strictly; with another ``num_classes`` the heads are newly
    initialised (``model.load_report.fresh_heads``). ``SwiftFormer(weights=source)`` builds
    the same model: this reads the source's variant first.
    """
    overrides = {k: v for k, v in overrides.items() if v not in (None, "auto")}
    source = loading.read_source(source, variant=variant, format=format)
    if source.model is not None and all(
            _same(v, source.options.get(k, v)) for k, v in overrides.items()):
        return source.model  # a .keras file as saved
    return SwiftFormer(source.checkpoint.config, weights=source, **overrides)


_DEFAULTS = dict(include_top=True, num_classes=1000, input_shape=(None, None, 3), pooling=None,
                 distillation=True, drop_path_rate=0.0, attention="normalize",
                 features_only=False, include_preprocessing=False, export_form=None,
                 class_names=None)


def _with_defaults(chosen, source) -> dict:
    """The constructor's options: the caller's, else the source's, else the defaults. A
    checkpoint declares its classes, heads and attention; a .keras file all its options.
    Class names stay with their classes only."""
    from_source = dict(source.options) if source is not None else {}
    if chosen["num_classes"] is not None and from_source.get("num_classes") is not None \
            and int(chosen["num_classes"]) != from_source["num_classes"]:
        from_source.pop("class_names", None)  # other classes: the file's names do not apply
    if chosen["include_top"] is False or chosen["features_only"]:
        from_source.pop("class_names", None)
    options = {}
    for key, value in chosen.items():
        if value is None:
            value = from_source.get(key)
        options[key] = _DEFAULTS[key] if value is None else value
    options["num_classes"] = int(options["num_classes"])
    options["input_shape"] = tuple(options["input_shape"])
    return options


def _same(a, b):
    as_list = (lambda v: list(v) if isinstance(v, tuple) else v)
    return as_list(a) == as_list(b)


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
    def constructor(*, weights=None, include_top=None, num_classes=None, input_shape=None,
                    pooling=None, distillation=None, drop_path_rate=None, attention=None,
                    features_only=None, include_preprocessing=None, class_names=None,
                    name=None):
        return SwiftFormer(variant, weights=weights, include_top=include_top,
                           num_classes=num_classes, input_shape=input_shape, pooling=pooling,
                           distillation=distillation, drop_path_rate=drop_path_rate,
                           attention=attention, features_only=features_only,
                           include_preprocessing=include_preprocessing,
                           class_names=class_names, name=name)

    constructor.__name__ = constructor.__qualname__ = f"SwiftFormer{variant}"
    constructor.__doc__ = (f"SwiftFormer-{variant}; the arguments are those of "
                           f":class:`SwiftFormer` without ``variant``.")
    return constructor


SwiftFormerXS = _variant_constructor("XS")
SwiftFormerS = _variant_constructor("S")
SwiftFormerL1 = _variant_constructor("L1")
SwiftFormerL3 = _variant_constructor("L3")
