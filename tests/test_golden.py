"""The port against reference outputs of the official PyTorch code (../shared/golden)."""

import os

import numpy as np
import pytest
from conftest import TOLERANCE, nhwc, relative_error

import swiftformer_tf as sf

CASES = {"swiftformer_xs": 3, "tiny": 2}  # model -> number of eval inputs


@pytest.fixture(scope="module", params=sorted(CASES))
def golden_case(request, golden_dir):
    name = request.param
    path = os.path.join(golden_dir, f"{name}.pth")
    model, ckpt = sf.load(path), sf.read_checkpoint(path)
    data = np.load(os.path.join(golden_dir, f"{name}_io.npz"))
    return name, model, ckpt, model.load_report, data


def test_checkpoint_detection(golden_case):
    name, model, ckpt, report, _ = golden_case
    assert ckpt.format == report.format == "official"
    if name == "tiny":
        assert ckpt.wrapper_key is None and ckpt.config.name == "custom"
        assert ckpt.config.depths == (1, 2, 2, 1) and ckpt.config.widths == (16, 24, 32, 40)
        assert ckpt.num_classes == 10 and report.used == 180
    else:
        assert ckpt.wrapper_key == "model" and ckpt.config.name == "XS"
        assert ckpt.num_classes == 1000 and report.used == 290  # 316 minus 26 counters
    assert ckpt.distillation and not report.skipped


def test_eval_logits_all_sizes(golden_case):
    name, model, _, _, data = golden_case
    for j in range(CASES[name]):
        expected = data[f"logits_eval_{j}"]
        logits = np.asarray(model(nhwc(data[f"input_{j}"])))
        assert relative_error(logits, expected) <= TOLERANCE, (name, j)
        np.testing.assert_array_equal(logits.argmax(-1), expected.argmax(-1))


def test_both_heads_with_inference_batchnorm(golden_case):
    _, model, _, _, data = golden_case
    head, dist_head = model(nhwc(data["input_0"]), return_both_heads=True)
    assert relative_error(head, data["head_0"]) <= TOLERANCE
    assert relative_error(dist_head, data["dist_head_0"]) <= TOLERANCE


def test_stage_features(golden_case):
    _, model, _, _, data = golden_case
    features = model.forward_features(nhwc(data["input_0"]))
    assert len(features) == 4
    for k, feature in enumerate(features, start=1):
        assert relative_error(feature, nhwc(data[f"features_stage{k}_0"])) <= TOLERANCE, k


def test_features_only_model_matches_golden(golden_dir):
    data = np.load(os.path.join(golden_dir, "swiftformer_xs_io.npz"))
    model = sf.SwiftFormerXS(weights=os.path.join(golden_dir, "swiftformer_xs.pth"),
                             include_top=False, features_only=True)
    features = model(nhwc(data["input_0"]))
    for k, feature in enumerate(features, start=1):
        assert relative_error(feature, nhwc(data[f"features_stage{k}_0"])) <= TOLERANCE, k
