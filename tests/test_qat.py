"""Quantization-aware fine-tuning: train.py --qat on a small model made in code, its int8
export (learned ranges, one integer XNNPACK partition), against post-training int8 of the
same float model, resume after a stop, and the accuracy columns of the fidelity report."""

import json
import subprocess

import numpy as np
import pytest
from conftest import console_script, cli_tool, randomize

import swiftformer_tf as sf
from swiftformer_tf.export import qat

SMALL = '{"depths": [1, 1, 1, 2], "widths": [16, 24, 32, 48]}'
convert_cli = cli_tool("export")


def run_train(*args, timeout=900):
    return subprocess.run([console_script("swiftformer-train"), *map(str, args)], capture_output=True,
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


def small_float_model():
    """Random weights in which every tensor matters, with layer scales as small as a trained
    SwiftFormer's (randomize() draws them near 1, where the attention's L2 normalisations
    dominate and int8 is ill-conditioned: measured, the same int8 file on XNNPACK and on
    TFLite's built-in kernels agrees to logit cosine 0.9967 only, 0.9998 with these)."""
    model = randomize(sf.SwiftFormer(json.loads(SMALL), num_classes=10), seed=5)
    for variable in model.weights:
        if "layer_scale" in variable.path:
            variable.assign(np.asarray(variable) * 0.05)
    return model


@pytest.fixture(scope="module")
def qat_run(tmp_path_factory):
    """A small float model, its QAT fine-tune on the synthetic set (stopped after 10 steps,
    then resumed), and both int8 exports checked against the float model."""
    folder = tmp_path_factory.mktemp("qat")
    float_path = folder / "float.keras"
    small_float_model().save(float_path)
    # distillation only: this random model's answers are not the synthetic labels, which
    # a labels term would teach it (measured: QAT cosine 0.9978 with alpha 0.95, against
    # PTQ's 0.9985)
    common = ["--init", float_path, "--qat", "--variant", SMALL, "--data", "synthetic:320",
              "--image-size", "32", "--batch-size", "16", "--epochs", "2", "--qat-calibration",
              "64", "--distillation-alpha", "1.0", "--save-every", "5",
              "--output", folder / "run"]
    first = run_train(*common, "--max-steps", "10")
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = run_train(*common, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ptq = convert_report(folder, "ptq", float_path)
    qat_report = convert_report(folder, "qat", folder / "run" / "model.keras",
                                "--reference", str(float_path))
    return folder, resumed, ptq, qat_report


@pytest.mark.slow  # shares a 4-minute QAT run; default: test_qat_needs_a_trained_model_and_refuses_a_teacher, test_tflite's int8 tests
def test_qat_resumes_and_reports_its_cosine_against_ptq(qat_run):
    _, resumed, ptq, qat_report = qat_run
    assert "resumed from" in resumed.stdout and "at step 10" in resumed.stdout
    assert "(int8 simulated)" in resumed.stdout
    ptq_cosine = ptq["fidelity"]["cosine_mean"]
    qat_cosine = qat_report["fidelity"]["cosine_mean"]
    # both against the same float model on the same 100 held-out images (measured: PTQ
    # 0.99845, QAT 0.99882)
    print(f"int8 logit cosine against float: PTQ {ptq_cosine:.5f}, QAT {qat_cosine:.5f}")
    assert qat_report["fidelity"]["reference"].endswith("float.keras")
    assert 0.997 < ptq_cosine < 0.9992, ptq_cosine
    assert qat_cosine > ptq_cosine + 1e-4, (ptq_cosine, qat_cosine)


@pytest.mark.slow  # shares a 4-minute QAT run; default: test_qat_needs_a_trained_model_and_refuses_a_teacher, test_tflite's int8 tests
def test_qat_export_is_integer_in_one_partition_with_the_same_ops(qat_run):
    _, _, ptq, qat_report = qat_run
    graph = qat_report["graph"]
    assert graph["partitions"] == 1 and not graph["cpu_ops"], graph
    assert graph["float_tensors"] == []
    assert graph["op_histogram"] == ptq["graph"]["op_histogram"]  # nothing added or split
    assert any("learned by quantization-aware training" in a for a in qat_report["approximations"])


@pytest.mark.slow  # shares a 4-minute QAT run; default: test_qat_needs_a_trained_model_and_refuses_a_teacher, test_tflite's int8 tests
def test_qat_model_loads_and_its_simulation_mirrors_the_tflite_model(qat_run):
    import keras

    from swiftformer_tf.export.calibration import ImageSource
    from swiftformer_tf.runtime.interpreter import TFLiteRunner
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
    # the fake quantization rounds as the int8 model does, far closer than the same weights
    # in float (the rest is rounding ties and kernel order: XNNPACK and TFLite's built-in
    # kernels differ from each other as much)
    print(f"cosine to the int8 model: simulated {cosine(simulated, exported):.6f}, "
          f"float form {cosine(float_form, exported):.6f}")
    assert cosine(simulated, exported) > 0.999
    assert 1 - cosine(simulated, exported) < 0.5 * (1 - cosine(float_form, exported))


@pytest.mark.slow  # shares a 4-minute QAT run; default: test_qat_needs_a_trained_model_and_refuses_a_teacher, test_tflite's int8 tests
def test_float_export_of_a_qat_model_saturates_its_normalisations(qat_run):
    """The fp32 / fp16 export of a QAT model is its float form, where no int8 saturation
    keeps the Newton normalisations in range: images beyond the calibrated ones must still
    give finite logits close to the float model's (before the clip: NaN)."""
    import keras

    from swiftformer_tf.imagenet import normalize
    from swiftformer_tf.export.calibration import ImageSource
    from swiftformer_tf.export.converter import convert
    from swiftformer_tf.runtime.interpreter import TFLiteRunner
    folder, _, _, _ = qat_run
    model = keras.models.load_model(folder / "run" / "model.keras")
    float_model = keras.models.load_model(folder / "float.keras")
    images = np.stack([3.0 * normalize(x) for x in ImageSource("synthetic", (32, 32)).check(8)])
    runner = TFLiteRunner(convert(model, "none", (32, 32)).flatbuffer)
    exported = np.concatenate([runner(x[None]) for x in images])
    assert np.isfinite(exported).all()
    reference = np.asarray(float_model(images))
    cosine = (exported * reference).sum(1) / np.linalg.norm(exported, axis=1) / np.linalg.norm(
        reference, axis=1)
    assert cosine.min() > 0.99, cosine


@pytest.mark.slow  # shares a 4-minute QAT run; default: test_qat_needs_a_trained_model_and_refuses_a_teacher, test_tflite's int8 tests
def test_benchmark_runtime_floor_runs_both_int8_files_on_two_runtimes(qat_run):
    folder, _, ptq, _ = qat_run
    benchmark = cli_tool("benchmark_qat")
    floor = benchmark.runtime_floor(folder / "float.keras", {
        "ptq": folder / "ptq.tflite", "qat": folder / "qat.tflite"}, size=32, count=100)
    for row in floor.values():
        # the same file on XNNPACK and on the built-in kernels: nearly always one answer
        assert 0.9 <= row["xnnpack_vs_builtin_agreement"] <= 1.0, row
    # on the built-in kernels, PTQ agrees with float about as the report's XNNPACK run does
    assert abs(floor["ptq"]["agreement_builtin_kernels"] - ptq["fidelity"]["top1_agreement"]) <= 0.03


@pytest.mark.slow  # shares a 4-minute QAT run; default: test_qat_needs_a_trained_model_and_refuses_a_teacher, test_tflite's int8 tests
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
