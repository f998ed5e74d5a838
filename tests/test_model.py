"""Constructors, options, shapes, serialisation of the Keras model."""


import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import relative_error

import swiftformer_tf as sf

CONSTRUCTORS = {"XS": sf.SwiftFormerXS, "S": sf.SwiftFormerS, "L1": sf.SwiftFormerL1,
                "L3": sf.SwiftFormerL3}


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("variant", sorted(CONSTRUCTORS))
def test_parameter_counts_equal_official(variant):
    model = CONSTRUCTORS[variant]()
    assert trainable_count(model) == sf.VARIANTS[variant].params
    assert model.num_classes == 1000 and model.distillation
    # without the distillation head: the official distillation=False counts
    no_dist = {"XS": 3_254_360, "S": 5_867_128, "L1": 11_672_920, "L3": 27_981_736}[variant]
    assert trainable_count(sf.SwiftFormer(variant, distillation=False)) == no_dist


def test_variant_table_and_lookup():
    assert list(sf.VARIANTS) == ["XS", "S", "L1", "L3"]
    assert sf.get_config("swiftformer_l1") is sf.VARIANTS["L1"]
    assert sf.VARIANTS["L3"].widths == (64, 128, 320, 512)
    assert sf.VARIANTS["XS"].top1 == 75.7
    with pytest.raises(ValueError, match="unknown SwiftFormer variant 'XL'"):
        sf.SwiftFormer("XL")
    custom = sf.SwiftFormer({"depths": [1, 1, 1, 1], "widths": [8, 16, 24, 32]}, num_classes=3)
    assert custom(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 3)


def test_layer_scale_inits_follow_official():
    model = sf.SwiftFormerXS()
    block0, attn_block = model.stages[0].blocks[0], model.stages[0].blocks[-1]
    assert isinstance(block0, sf.ConvEncoder) and isinstance(attn_block, sf.SwiftFormerEncoder)
    np.testing.assert_array_equal(block0.layer_scale.numpy(), np.ones(48))
    np.testing.assert_array_equal(attn_block.local_representation.layer_scale.numpy(), np.ones(48))
    np.testing.assert_allclose(attn_block.layer_scale_1.numpy(), np.full(48, 1e-5))
    np.testing.assert_allclose(attn_block.layer_scale_2.numpy(), np.full(48, 1e-5))
    assert attn_block.attn.w_g.shape == (48, 1)
    assert [len(s.blocks) for s in model.stages] == [3, 3, 6, 4]


@pytest.mark.parametrize("size", [(224, 224), (97, 131), (33, 64)])
def test_any_input_size_gives_ceil_strides(size):
    model = sf.SwiftFormerXS(features_only=True)
    features = model(np.random.default_rng(0).normal(size=(1, *size, 3)).astype("float32"))
    h, w = size
    for k, feature in enumerate(features):
        for _ in range(k + 2 if k == 0 else 1):
            h, w = -(-h // 2), -(-w // 2)
        assert feature.shape == (1, h, w, sf.VARIANTS["XS"].widths[k])


def test_headless_pooling_and_num_classes():
    x = np.random.default_rng(1).normal(size=(2, 64, 96, 3)).astype("float32")
    assert sf.SwiftFormerS(include_top=False)(x).shape == (2, 2, 3, 224)
    assert sf.SwiftFormerS(include_top=False, pooling="avg")(x).shape == (2, 224)
    assert sf.SwiftFormerS(include_top=False, pooling="max")(x).shape == (2, 224)
    model = sf.SwiftFormerS(weights=None, num_classes=20, input_shape=(256, 256, 3))
    assert model(np.zeros((1, 256, 256, 3), np.float32)).shape == (1, 20)


def test_training_returns_both_heads_and_inference_averages():
    model = sf.SwiftFormerXS(num_classes=7)
    x = np.random.default_rng(2).normal(size=(2, 64, 64, 3)).astype("float32")
    head, dist = model(x, training=True)
    assert head.shape == dist.shape == (2, 7)
    head, dist = model(x, return_both_heads=True)
    averaged = model(x)
    np.testing.assert_allclose(averaged, (np.asarray(head) + np.asarray(dist)) / 2, atol=1e-6)
    single = sf.SwiftFormerXS(num_classes=7, distillation=False)
    assert single(x, training=True).shape == (2, 7)


def test_include_preprocessing_applies_imagenet_mean_std():
    raw = np.random.default_rng(3).uniform(0, 255, size=(1, 48, 40, 3)).astype("float32")
    plain = sf.SwiftFormerXS(num_classes=5)
    with_pre = sf.SwiftFormerXS(num_classes=5, include_preprocessing=True)
    with_pre.set_weights(plain.get_weights())
    normalised = (raw / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    expected = np.asarray(plain(normalised.astype("float32")))
    assert relative_error(with_pre(raw), expected) <= 1e-5


def test_attention_modes_differ_and_legacy_is_sum_of_queries():
    x = np.random.default_rng(4).normal(size=(1, 5, 7, 8)).astype("float32")
    legacy = sf.EfficientAdditiveAttention(8, attention="legacy")
    normalize = sf.EfficientAdditiveAttention(8, attention="normalize")
    legacy.build(x.shape), normalize.build(x.shape)
    normalize.set_weights(legacy.get_weights())
    assert np.abs(np.asarray(legacy(x)) - np.asarray(normalize(x))).max() > 1e-3
    # legacy: global query = sum over tokens of the normalised queries (weights all 1)
    q = np.asarray(legacy.to_query(x))
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    k = np.asarray(legacy.to_key(x))
    k = k / np.maximum(np.linalg.norm(k, axis=-1, keepdims=True), 1e-12)
    g = q.sum(axis=(1, 2), keepdims=True)
    expected = np.asarray(legacy.final(legacy.proj(g * k) + q))
    np.testing.assert_allclose(np.asarray(legacy(x)), expected, rtol=1e-5, atol=1e-5)
    # zero input: the eps keeps the normalisation finite, like F.normalize
    assert np.isfinite(np.asarray(normalize(np.zeros_like(x)))).all()


def test_drop_path_is_stochastic_only_in_training():
    model = sf.SwiftFormerXS(num_classes=4, drop_path_rate=0.5)
    rates = [s.blocks[-1].drop_path_rate for s in model.stages]
    assert rates[0] == pytest.approx(0.5 * 2 / 15) and rates[-1] == pytest.approx(0.5)
    x = np.random.default_rng(5).normal(size=(8, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(model(x)))
    outs = [np.asarray(model(x, training=True)[0]) for _ in range(3)]
    assert any(np.abs(outs[0] - o).max() > 0 for o in outs[1:])


@pytest.mark.parametrize("kwargs, message", [
    ({"input_shape": (224, 224, 1)}, "input_shape must be"),
    ({"pooling": "avg"}, "pooling applies only"),
    ({"include_top": False, "pooling": "sum"}, "pooling must be one of"),
    ({"attention": "softmax"}, "attention must be one of"),
    ({"num_classes": 0}, "num_classes must be positive"),
    ({"drop_path_rate": 1.0}, "drop_path_rate"),
])
def test_bad_options_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sf.SwiftFormerXS(**kwargs)


def test_keras_file_round_trip_and_savedmodel(tmp_path):
    model = sf.SwiftFormerXS(num_classes=11, attention="legacy", include_preprocessing=True,
                             class_names=[f"class {i}" for i in range(11)])
    x = np.random.default_rng(6).uniform(0, 255, size=(2, 70, 50, 3)).astype("float32")
    expected = np.asarray(model(x))
    path = str(tmp_path / "xs.keras")
    model.save(path)
    for loaded in (keras.models.load_model(path), tf.keras.models.load_model(path)):
        assert isinstance(loaded, sf.SwiftFormer) and loaded.attention == "legacy"
        np.testing.assert_array_equal(np.asarray(loaded(x)), expected)
    # weights= builds what load() builds: the file's class count and options, its weights
    for again in (sf.SwiftFormerXS(weights=path), sf.load(path)):
        assert (again.num_classes, again.attention, again.include_preprocessing) == \
            (11, "legacy", True) and again.class_names == model.class_names
        np.testing.assert_array_equal(np.asarray(again(x)), expected)
    # an option passed changes both alike: new heads, the rest of the file's weights
    five = sf.SwiftFormerXS(weights=path, num_classes=5)
    assert (five.num_classes, five.attention, five.load_report.fresh_heads) == (5, "legacy", True)
    assert five.class_names is None  # the names went with the classes
    for a, b in zip(five.forward_features(x), model.forward_features(x)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(sf.CheckpointError, match="xs.keras: is SwiftFormer-XS, not the variant "
                                                 "asked for \\(S\\)"):
        sf.SwiftFormerS(weights=path)
    export_dir = str(tmp_path / "saved_model")
    model.export(export_dir, format="tf_saved_model")
    reloaded = tf.saved_model.load(export_dir)  # keep a reference: it owns the variables
    served = reloaded.serve(tf.constant(x))
    np.testing.assert_allclose(served.numpy(), expected, rtol=1e-5, atol=1e-5)
