"""Hugging Face transformers' PyTorch SwiftFormer as an independent reference (legacy
attention), for all four variants, through safetensors, pytorch_model.bin and folders."""

import numpy as np
import pytest
from conftest import TOLERANCE, nhwc, relative_error

import swiftformer_tf as sf

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

NUM_LABELS = 17


def make_hf_model(variant, seed):
    """HF SwiftFormer with random weights in which every tensor matters."""
    config = sf.VARIANTS[variant]
    hf_config = transformers.SwiftFormerConfig(depths=list(config.depths),
                                               embed_dims=list(config.widths),
                                               num_labels=NUM_LABELS)
    model = transformers.SwiftFormerForImageClassification(hf_config).eval()
    gen = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    with torch.no_grad():
        for key, tensor in state.items():
            if key.endswith("num_batches_tracked"):
                continue
            if key.endswith("running_mean"):
                value = torch.randn(tensor.shape, generator=gen) * 0.1
            elif key.endswith("running_var") or "layer_scale" in key:
                value = 0.75 + 0.5 * torch.rand(tensor.shape, generator=gen)
            elif key.endswith("bias"):
                value = torch.randn(tensor.shape, generator=gen) * 0.05
            elif tensor.ndim == 1:  # BN weights
                value = 0.75 + 0.5 * torch.rand(tensor.shape, generator=gen)
            elif key.endswith("w_g"):
                value = torch.randn(tensor.shape, generator=gen)
            else:
                fan_in = int(np.prod(tensor.shape[1:]))
                value = torch.randn(tensor.shape, generator=gen) / fan_in ** 0.5
            tensor.copy_(value)
    return model


@pytest.mark.parametrize("variant, storage", [("XS", "safetensors"), ("S", "bin"),
                                              ("L1", "folder"), ("L3", "safetensors")])
def test_hf_logits_match_in_legacy_mode(variant, storage, tmp_path):
    hf = make_hf_model(variant, seed=len(variant))
    x = np.random.default_rng(0).normal(size=(2, 3, 97, 131)).astype(np.float32)
    with torch.no_grad():
        expected = hf(pixel_values=torch.from_numpy(x)).logits.numpy()
    if storage == "folder":
        hf.save_pretrained(tmp_path)  # model.safetensors + config.json
        path = tmp_path
    elif storage == "bin":
        path = tmp_path / "pytorch_model.bin"
        torch.save(hf.state_dict(), path)
    else:
        from safetensors.torch import save_file
        path = tmp_path / "model.safetensors"
        save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, str(path))
    model = sf.load(path)
    assert (model.load_report.format, model.config.name, model.num_classes) == \
        ("hf", variant, NUM_LABELS)
    assert model.attention == "legacy"  # the HF default, see the converter's note
    logits = np.asarray(model(nhwc(x)))
    assert relative_error(logits, expected) <= TOLERANCE
    np.testing.assert_array_equal(logits.argmax(-1), expected.argmax(-1))
    # the same weights with the current official attention give other logits
    normalize = sf.SwiftFormer(variant, weights=path, attention="normalize")
    assert relative_error(normalize(nhwc(x)), expected) > 1e-3


def test_hf_config_json_must_agree(tmp_path):
    hf = make_hf_model("XS", seed=0)
    hf.save_pretrained(tmp_path)
    config = (tmp_path / "config.json").read_text()
    (tmp_path / "config.json").write_text(config.replace("220", "221"))
    with pytest.raises(sf.CheckpointError, match="config.json .* does not match the weights"):
        sf.read_checkpoint(tmp_path)


@pytest.mark.parametrize("field, value, message", [
    ("batch_norm_eps", 1e-3, "batch_norm_eps=0.001 (this port: 1e-05)"),
    ("hidden_act", "relu", "hidden_act='relu' (this port: 'gelu')"),
    ("model_type", "vit", "describes a 'vit' model, not swiftformer"),
])
def test_hf_config_fields_that_change_the_function_are_checked(tmp_path, field, value, message):
    import json
    hf = make_hf_model("XS", seed=0)
    hf.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(dict(config, **{field: value})))
    with pytest.raises(sf.CheckpointError) as err:
        sf.load(tmp_path)
    assert message in str(err.value)
    (tmp_path / "config.json").write_text("null")
    with pytest.raises(sf.CheckpointError, match="config.json: not a JSON object"):
        sf.load(tmp_path)


def test_training_mode_matches_pytorch_train_mode(tmp_path):
    """Batch statistics, their moving averages and the input gradient against PyTorch's
    train mode: covers the fused BatchNorm and the GELU gradient of the training path."""
    import tensorflow as tf

    from swiftformer_tf.checkpoints import RENAMES, export_state_dict
    hf = make_hf_model("XS", seed=3)
    hf.save_pretrained(tmp_path)
    model = sf.SwiftFormer("XS", weights=tmp_path)
    hf.train()
    x = np.random.default_rng(1).normal(size=(4, 3, 64, 80)).astype(np.float32)
    weights = np.random.default_rng(2).normal(size=(4, NUM_LABELS)).astype(np.float32)

    tx = torch.from_numpy(x).requires_grad_(True)
    expected = hf(pixel_values=tx).logits
    (expected * torch.from_numpy(weights)).sum().backward()
    kx = tf.constant(nhwc(x))
    with tf.GradientTape() as tape:
        tape.watch(kx)
        head, dist = model(kx, training=True)
        logits = (head + dist) / 2
        loss = tf.reduce_sum(logits * weights)
    grad = tape.gradient(loss, kx)
    assert relative_error(logits, expected.detach().numpy()) <= TOLERANCE
    assert relative_error(grad, nhwc(tx.grad.numpy())) <= 1e-4

    official = export_state_dict(model.weights)
    statistics = [k for k in hf.state_dict() if k.endswith(("running_mean", "running_var"))]
    for hf_key in statistics:  # PyTorch updates the running variance with the unbiased one
        np.testing.assert_allclose(official[RENAMES["hf"](hf_key)],
                                   hf.state_dict()[hf_key].numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=hf_key)
    assert len(statistics) == 2 * sum(v.path.endswith("moving_mean") for v in model.weights)
