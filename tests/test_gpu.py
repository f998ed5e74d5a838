"""LiteRT's real GPU accelerator (WebGPU over Vulkan) on this machine: delegation, rejected
ops and numerics of our exports, through the public tools.

With no GPU here, `swiftformer-setup-gpu` provides one (Mesa lavapipe, a
Vulkan driver on the CPU); CI runs it. Without any GPU these tests skip, unless
SWIFTFORMER_REQUIRE_GPU=1 (set by .ci/run) turns the skip into a failure. The first run of
a model compiles its shaders (about a minute on 2 cores); Mesa caches them, so every test
here reuses the same two exports."""

import json
import os
import subprocess

import pytest
from conftest import console_script, TOLERANCE, cli_tool, relative_error

from swiftformer_tf.runtime.gpu import check_gpu
from swiftformer_tf.runtime.interpreter import TFLiteRunner

convert_cli = cli_tool("export")


@pytest.fixture(scope="session")
def rejected_model(tmp_path_factory):
    """A model whose int64 ARG_MAX and ONE_HOT the GPU accelerator rejects."""
    import tensorflow as tf

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
        def __call__(self, x):
            return tf.one_hot(tf.argmax(x, axis=-1), 8) + 2.0 * x

    module = Model()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.__call__.get_concrete_function()], module)
    path = tmp_path_factory.mktemp("rejected") / "argmax_one_hot.tflite"
    path.write_bytes(converter.convert())
    return str(path)


@pytest.fixture(scope="session")
def gpu(rejected_model):
    """Skips (or fails under SWIFTFORMER_REQUIRE_GPU=1) when no GPU accelerator exists."""
    check = check_gpu(rejected_model)
    if check.status == "unavailable":
        message = f"no GPU accelerator here: {check.reason}"
        if os.environ.get("SWIFTFORMER_REQUIRE_GPU") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return check


def test_rejected_ops_are_named(gpu):
    assert gpu.status == "partial"
    assert set(gpu.rejected_ops) == {"ARG_MAX", "ONE_HOT"}
    assert "INT64" in gpu.rejected_ops["ARG_MAX"]
    assert (gpu.gpu_ops, gpu.cpu_ops) == (2, 2)
    assert "rejected: ARG_MAX" in gpu.summary()


@pytest.mark.parametrize("mode, precision, tolerance", [("none", "fp32", TOLERANCE),
                                                        ("fp16", "fp16", 1e-2)])
def test_xs_exports_run_fully_on_the_gpu(gpu, golden_xs_exports, mode, precision, tolerance):
    paths, x, golden = golden_xs_exports
    check = check_gpu(paths[mode], precision, inputs=[x], keep_outputs=True)
    assert check.status == "full", check.summary() + "\n" + check.log[-2000:]
    assert check.rejected_ops == {}
    cpu = TFLiteRunner(open(paths[mode], "rb").read())(x)
    gpu_logits = check.outputs[0]
    assert gpu_logits.shape == cpu.shape == golden.shape
    assert relative_error(gpu_logits, cpu) <= tolerance
    assert gpu_logits.argmax(-1).tolist() == cpu.argmax(-1).tolist() == golden.argmax(-1).tolist()
    if precision == "fp32":  # the GPU in fp32 is exact to the official model too
        assert relative_error(gpu_logits, golden) <= TOLERANCE


def test_convert_reports_gpu_delegation(gpu, golden_dir, tmp_path, capsys):
    out, report = tmp_path / "tiny.tflite", tmp_path / "report.json"
    code = convert_cli.main(["--weights", os.path.join(golden_dir, "tiny.pth"), "--input-size",
                             "64", "--no-check", "--output", str(out), "--report", str(report)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "GPU delegate:   fully delegated to the GPU" in printed
    data = json.loads(report.read_text())["gpu"]
    assert data["status"] == "full" and data["precision"] == "fp32"


def test_android_bench_host_gpu_rows(gpu, golden_xs_exports, rejected_model, tmp_path):
    """The host GPU rows run in a child without TensorFlow (run.py itself imports it, which
    used to end in a segfault), honour fp32, and mark partial rows and software GPUs."""
    paths, _, _ = golden_xs_exports
    out = tmp_path / "host"
    result = subprocess.run([console_script("swiftformer-android-bench"),
                             "--host", "--models", paths["none"], rejected_model, "--configs",
                             "gpu", "--runs", "2", "--warmup", "0", "--out", str(out)],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr + result.stdout
    rows = {r["model"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    xs = rows[os.path.basename(paths["none"])]
    assert xs["status"] == "ok" and xs["delegate_status"] == "full"
    assert xs["gpu_precision"] == "fp32" and xs["runs"] == 2 and xs["median_ms"] > 0
    assert xs["marks"] == (["software-gpu"] if gpu.software else [])
    rejected = rows["argmax_one_hot.tflite"]
    assert rejected["delegate_status"] == "partial"
    assert rejected["fallback_ops"] == ["ARG_MAX", "ONE_HOT"]
    assert rejected["marks"][0] == "partial"
    table = (out / "results.md").read_text()
    if gpu.software:
        assert "latency means nothing" in table and "(partial, software-gpu)" in table
