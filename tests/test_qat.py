"""Quantization-aware fine-tuning: train.py --qat on a small model made in code, its int8
export (learned ranges, one integer XNNPACK partition), against post-training int8 of the
same float model, resume after a stop, and the accuracy columns of the fidelity report."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, load_script, randomize

import swiftformer_tf as sf
from swiftformer_tf.lite import qat

TRAIN = os.path.join(ROOT, "training", "train.py")
SMALL = '{"depths": [1, 1, 1, 2], "widths": [16, 24, 32, 48]}'
convert_cli = load_script("tflite/convert.py")


def run_train(*args, timeout=900):
    return subprocess.run([sys.executable, TRAIN, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def convert_report(tmp_path, name, weights, *extra):
    report = tmp_path / f"{name}.json"
    code = convert_cli.main(["--weights", str(weights), "--quantize", "int8", "--input-size", "32",
                             "--calibration", "synthetic", "--num-calibration", "64",
                             "--num-check", "100", "--gpu-check", "off", "--runs", "2",
                             "--output", str(tmp_path / f"{name}.tflite"), "--report",
                             str(report), *extra])
    assert code == 0
    return json.loads(report.read_text())


@pytest.fixture(scope="module")
def qat_run(tmp_path_factory):
    """A small float model (random weights in which every tensor matters), its QAT
    fine-tune on the synthetic set (stopped after 10 steps, then resumed), and both int8
    exports checked against the float model."""
    folder = tmp_path_factory.mktemp("qat")
    float_path = folder / "float.keras"
    randomize(sf.SwiftFormer(json.loads(SMALL), num_classes=10), seed=5).save(float_path)
    common = ["--init", float_path, "--qat", "--variant", SMALL, "--data", "synthetic:320",
              "--image-size", "32", "--batch-size", "16", "--epochs", "2", "--qat-calibration",
              "64", "--save-every", "5", "--output", folder / "run"]
    first = run_train(*common, "--max-steps", "10")
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = run_train(*common, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ptq = convert_report(folder, "ptq", float_path)
    qat_report = convert_report(folder, "qat", folder / "run" / "model.keras",
                                "--reference", str(float_path))
    return folder, resumed, ptq, qat_report


def test_qat_resumes_and_reports_its_cosine_against_ptq(qat_run):
    _, resumed, ptq, qat_report = qat_run
    assert "resumed from" in resumed.stdout and "at step 10" in resumed.stdout
    assert "(int8 simulated)" in resumed.stdout
    ptq_cosine = ptq["fidelity"]["cosine_mean"]
    qat_cosine = qat_report["fidelity"]["cosine_mean"]
    # both against the same float model on the same held-out images. On this random-weight
    # model QAT does not beat PTQ (measured: 0.996 against 0.996-0.966 depending on the
    # rate; its simulation mirrors the converter to cosine 0.9975 only); on the trained
    # synthetic XS it halves the logit error (training/benchmark_qat.py, README).
    print(f"int8 logit cosine against float: PTQ {ptq_cosine:.5f}, QAT {qat_cosine:.5f}")
    assert qat_report["fidelity"]["reference"].endswith("float.keras")
    assert 0.99 < ptq_cosine < 0.999 and qat_cosine > 0.99, (ptq_cosine, qat_cosine)


def test_qat_export_is_integer_in_one_partition_with_the_same_ops(qat_run):
    _, _, ptq, qat_report = qat_run
    graph = qat_report["graph"]
    assert graph["partitions"] == 1 and not graph["cpu_ops"], graph
    assert graph["float_tensors"] == []
    assert graph["op_histogram"] == ptq["graph"]["op_histogram"]  # nothing added or split
    assert any("learned by quantization-aware training" in a for a in qat_report["approximations"])


def test_qat_model_loads_and_its_simulation_mirrors_the_tflite_model(qat_run):
    import keras

    from swiftformer_tf.lite.calibration import ImageSource
    from swiftformer_tf.lite.runtime import TFLiteRunner
    from swiftformer_tf.imagenet import normalize
    folder, _, _, _ = qat_run
    model = keras.models.load_model(folder / "run" / "model.keras")
    assert qat.is_qat_model(model) and model.activation_ranges.shape[1] == 2
    ranges = np.asarray(model.activation_ranges)
    assert (ranges[:, 0] <= 0).all() and (ranges[:, 1] > ranges[:, 0]).all()
    with open(folder / "qat.tflite", "rb") as f:
        tflite = TFLiteRunner(f.read())
    images = [normalize(x) for x in ImageSource("synthetic", (32, 32)).check(16)]
    simulated = np.concatenate([np.asarray(model(x[None])) for x in images])
    exported = np.concatenate([tflite(x[None]) for x in images])
    with model.quantizer.using("off"):
        float_form = np.concatenate([np.asarray(model(x[None])) for x in images])
    cosine = lambda a, b: float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))  # noqa
    # the fake quantization rounds closer to the int8 model than the same weights in float
    # (measured 0.9975 against 0.9964 before fine-tuning: not yet the converter's rounding
    # everywhere, see qat.py)
    assert cosine(simulated, exported) > cosine(float_form, exported)


def test_fidelity_report_has_accuracy_with_labels(qat_run):
    _, _, ptq, qat_report = qat_run
    for report in (ptq, qat_report):
        check = report["fidelity"]
        assert check["labelled_images"] == 100
        for key in ("reference_top1", "candidate_top1"):
            assert 0.0 <= check[key] <= 1.0
    # the same float model is the reference of both
    assert ptq["fidelity"]["reference_top1"] == qat_report["fidelity"]["reference_top1"]


def test_qat_needs_a_trained_model_and_refuses_a_teacher(tmp_path):
    result = run_train("--qat", "--data", "synthetic:64")
    assert result.returncode == 2 and "--qat fine-tunes a trained model" in result.stderr
    result = run_train("--qat", "--init", "x.keras", "--teacher", "t.keras", "--data", "synthetic")
    assert result.returncode == 2 and "--qat distils from the --init model" in result.stderr
