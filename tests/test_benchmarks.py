"""benchmarks/: the side-by-side run on small settings, and Keras against PyTorch."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from swiftformer_tf.runtime import arm


@pytest.mark.slow
def test_quick_run_on_small_settings(tmp_path):
    out = tmp_path / "results"
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--quick",
                             "--input-size", "64", "--runs", "3", "--num-calibration", "8",
                             "--no-peer", "--skip", "kecam,torch", "--out", str(out)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    names = set(data["models"])
    assert {"swiftformer_xs_fp32", "swiftformer_xs_fp16", "swiftformer_xs_dynamic",
            "swiftformer_xs_int8", "mobilenet_v2_1.0_fp32", "mobilenet_v2_1.0_int8"} <= names
    xs = data["models"]["swiftformer_xs_fp32"]
    # MACs counted from the graph: 0.6 GMACs at 224, scaled by (64/224)^2
    assert 0.6024 * (64 / 224) ** 2 * 0.9 < xs["gmacs"] < 0.6024 * (64 / 224) ** 2 * 1.1
    mbv2 = data["models"]["mobilenet_v2_1.0_fp32"]["gmacs"]
    assert 0.28 < mbv2 < 0.32  # MobileNetV2 1.0 at 224: 0.30 GMACs
    for row in data["models"].values():
        assert set(row["latency"]) == {"1", "2"} and row["latency"]["1"]["runs"] >= 3
        # the floor is the best probe or the fastest model, never beaten
        assert 0 < row["floor_fraction"] <= 1.0 and row["scaling"] > 0
    rates = data["gemm_rates"]
    assert rates["numpy_fp32_gmacs"] > 1 and rates["xnnpack_int8_gmacs"] > 1
    # the standard probe and the model's own largest GEMMs, in fp32 and int8
    assert len(rates["probes"]) >= 4 and {p["mode"] for p in rates["probes"]} == {"fp32", "int8"}
    int8 = data["models"]["swiftformer_xs_int8"]
    assert int8["partitions"] == 1 and int8["float_tensors"] == 0
    assert int8["cosine_mean"] > 0.99
    assert set(data["other_load"]) == {"before the run", "before timing", "after timing"}
    report = (out / "report.md").read_text()
    assert "## Compute floor" in report and "left out (--no-peer)" in report
    assert "## int8 paths" in report
    assert (out / "latency_vs_top1.png").stat().st_size > 1000
    assert (out / "floor_fraction.png").stat().st_size > 1000
    if arm.is_ready():  # the phone's CPU kernels, emulated: exact counts per file and CPU
        counted = data["arm_instructions"]
        assert set(counted) == {"swiftformer_xs_fp32", "swiftformer_xs_int8"}
        for runs in counted.values():
            assert set(runs) == {"cortex-a76", "i8mm"}
            assert all(r["status"] == "ok" and r["guest_instructions"] > 1e6 for r in runs.values())
        a76 = {name: runs["cortex-a76"]["guest_instructions"] for name, runs in counted.items()}
        assert a76["swiftformer_xs_int8"] < 0.5 * a76["swiftformer_xs_fp32"]
        assert "## Phone CPU kernels, emulated" in report


PEER_PYTHON = os.path.join(ROOT, ".venv-peer", "bin", "python")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isfile(PEER_PYTHON),
                    reason="no .venv-peer here (benchmarks/run.py builds it, downloading ~2 GB; "
                           "tests download nothing)")
def test_quick_run_with_the_int8_peers(tmp_path):
    """The real peers: litert-torch (fp32, PT2E int8) and ai-edge-quantizer on our graph."""
    out = tmp_path / "results"
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--quick",
                             "--input-size", "64", "--runs", "3", "--num-calibration", "8",
                             "--num-check", "16", "--skip", "zoo,torch", "--out", str(out)],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    models = data["models"]
    ours, pt2e, aeq = (models[n] for n in ("swiftformer_xs_int8", "litert_torch_xs_pt2e_int8",
                                           "aeq_xs_int8"))
    # measured at 64 px: ours 1 partition / 0 float tensors / cosine 0.9995; PT2E 21 / 130 /
    # 0.876; ai-edge-quantizer 43 / 0 / 0.995 (the same weights on every path)
    assert ours["partitions"] == 1 and ours["float_tensors"] == 0
    assert pt2e["partitions"] > 1 and pt2e["float_tensors"] > 0
    assert aeq["partitions"] > 1
    assert ours["cosine_mean"] > max(pt2e["cosine_mean"], aeq["cosine_mean"])
    # litert-torch's fp32 conversion of the same weights matches ours
    assert models["litert_torch_xs_fp32"]["cosine_min"] > 0.9999
    peers_compared = {(c["precision"], c["peer"]) for c in data["comparisons"]}
    assert peers_compared == {("fp32", "litert-torch"), ("int8", "litert-torch PT2E"),
                              ("int8", "ai-edge-quantizer")}
    if arm.is_ready():  # the same three comparisons in instructions, per emulated CPU
        counted = {(c["precision"], c["peer"], c["cpu"]) for c in data["arm_comparisons"]}
        assert counted == {(p, peer, cpu) for p, peer in peers_compared
                           for cpu in ("cortex-a76", "i8mm")}


@pytest.mark.slow  # 1 min; default: test_benchmark_guards
def test_keras_against_pytorch_small(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "kvp.json"
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "keras_vs_pytorch.py"),
                             "--size", "64", "--batch", "4", "--rounds", "1", "--threads", "1",
                             "--skip-xla", "--json", str(out)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    # the same weights on both sides: the comparison is of equal models
    assert data["max_logit_diff_keras_vs_torch"] < 1e-4
    for key in ("batch1_latency_ms", "batch4_images_per_s", "train_batch4_images_per_s"):
        assert set(data[key]) == {"keras", "pytorch_eager"}
        assert all(row["median"] > 0 for row in data[key].values())


def test_mac_count_past_two_to_the_31(tmp_path):
    """One 1x1 conv of 3 * 2**31 MACs: the count must not overflow (L3 once came out negative)."""
    import tensorflow as tf

    from floor import count_macs
    kernel = tf.zeros((1, 1, 2048, 3072))
    fn = tf.function(lambda x: tf.nn.conv2d(x, kernel, 1, "VALID"),
                     input_signature=[tf.TensorSpec((1, 32, 32, 2048), tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])
    path = tmp_path / "big_conv.tflite"
    path.write_bytes(converter.convert())
    assert count_macs(str(path)) == 32 * 32 * 2048 * 3072
