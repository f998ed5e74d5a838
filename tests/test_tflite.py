"""TFLite export: fidelity of every mode, integer-only int8, delegate partitions, the
convert and benchmark command lines and their errors."""

import json
import os

import numpy as np
import pytest
from conftest import console_script, ROOT, TOLERANCE, cli_tool, nhwc, randomize, relative_error

import swiftformer_tf as sf
from swiftformer_tf.errors import ExportError
from swiftformer_tf.export.converter import convert
from swiftformer_tf.forms import l2_normalize_prescaled
from swiftformer_tf.layers import l2_normalize
from swiftformer_tf.runtime.interpreter import TFLiteRunner, summarize_graph

convert_cli = cli_tool("export")
benchmark_cli = cli_tool("benchmark")


# 30 s each; default: test_fp32_and_fp16_match_official_golden (XS: the same graph checks
# on the shared export, its answer against the official model's)
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["XS", "S", "L1", "L3"])
def test_fp32_reproduces_keras_for_every_variant(variant):
    model = randomize(sf.SwiftFormer(variant), seed=len(variant))
    result = convert(model, "none", input_size=(97, 131))
    graph = summarize_graph(result.flatbuffer)
    assert graph.partitions == 1 and not graph.cpu_ops
    assert graph.input_shape == [1, 97, 131, 3]  # static batch 1
    # folded: no BatchNorm arithmetic left beyond the attention, one head
    assert graph.op_histogram["FULLY_CONNECTED"] == 1
    assert graph.op_histogram["MUL"] == 32 and "SUB" not in graph.op_histogram
    x = np.random.default_rng(0).normal(size=(1, 97, 131, 3)).astype(np.float32)
    expected = np.asarray(model(x))
    assert relative_error(TFLiteRunner(result.flatbuffer)(x), expected) <= TOLERANCE


def test_fp32_and_fp16_match_official_golden(golden_xs_exports):
    paths, x, golden = golden_xs_exports
    with open(paths["none"], "rb") as f:
        flatbuffer = f.read()
    assert relative_error(TFLiteRunner(flatbuffer)(x), golden) <= TOLERANCE
    graph = summarize_graph(flatbuffer)
    assert graph.partitions == 1 and not graph.cpu_ops
    assert graph.input_shape == [1, 160, 192, 3]  # static batch 1
    # folded: no BatchNorm arithmetic left beyond the attention, one head
    assert graph.op_histogram["FULLY_CONNECTED"] == 1
    assert graph.op_histogram["MUL"] == 32 and "SUB" not in graph.op_histogram
    with open(paths["fp16"], "rb") as f:
        fp16 = TFLiteRunner(f.read())(x)  # fp16 weights, computed in fp32
    cosine = float((fp16 * golden).sum() / np.linalg.norm(fp16) / np.linalg.norm(golden))
    assert cosine > 0.999 and relative_error(fp16, golden) < 1e-2, cosine


def test_dynamic_size_runs_at_two_sizes(golden_dir, golden_xs_exports):
    model = sf.load(os.path.join(golden_dir, "tiny.pth"))
    result = convert(model, "none", dynamic_size=True)
    assert summarize_graph(result.flatbuffer).input_shape == [1, -1, -1, 3]
    data = np.load(os.path.join(golden_dir, "tiny_io.npz"))
    runner = TFLiteRunner(result.flatbuffer)
    for j in range(2):
        x = nhwc(data[f"input_{j}"])[:1]
        assert relative_error(runner(x), data[f"logits_eval_{j}"][:1]) <= TOLERANCE
    # Its latency is measured at 224x224, not on the 1x1 input it is allocated with.
    from swiftformer_tf.runtime.interpreter import measure_latency
    timing = measure_latency(result.flatbuffer, 1, runs=2, warmup=1)
    assert timing.input_shape == [1, 224, 224, 3]
    # a static model is measured at its own size
    with open(golden_xs_exports[0]["none"], "rb") as f:
        static = f.read()
    assert measure_latency(static, 1, runs=2, warmup=1).input_shape == [1, 160, 192, 3]


def test_flex_ops_are_refused():
    import tensorflow as tf

    from swiftformer_tf.export.converter import _run_converter, configure
    fn = tf.function(lambda x: tf.math.cumprod(x, axis=1),
                     input_signature=[tf.TensorSpec((1, 4), tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    with pytest.raises(ExportError, match="not TFLite builtins"):
        _run_converter(configure(converter, "none", None).convert)


def test_prescaled_normalisation_is_exact_in_float_over_a_wide_range():
    """The int8 export's key normalisation, in float: exact for tokens whose spread is
    down to 1/64 of the calibrated one, and 0 for a zero token (as F.normalize)."""
    rng = np.random.default_rng(0)
    scales = np.geomspace(1e-3, 1, 400)[:, None]
    heavy_tailed = rng.exponential(size=(400, 48)) ** (np.arange(400) % 2)[:, None]
    x = rng.normal(size=(400, 48)) * scales * heavy_tailed
    x[0] = 0
    x = x.astype(np.float32)
    spread = x.max(1) - x.min(1)
    square = ((x[1:] / spread[1:, None]) ** 2).sum(1).max()
    approx = np.asarray(l2_normalize_prescaled(x, -1, spread.max(), square / 2.5))
    exact = np.asarray(l2_normalize(x, -1))
    in_range = spread >= spread.max() / 64
    assert in_range.sum() > 200
    assert np.abs(approx - exact)[in_range].max() < 1e-6
    assert np.all(approx[0] == 0)


def test_int8_is_integer_in_few_partitions_and_faithful(golden_xs_int8):
    report, path = golden_xs_int8  # convert.py --quantize int8 at 64x64 (tests/conftest.py)
    graph = report["graph"]
    assert graph["partitions"] <= 3 and not graph["cpu_ops"], graph
    assert graph["float_tensors"] == []  # nothing float between QUANTIZE and DEQUANTIZE
    assert graph["input_dtype"] == "float32" and "GELU" not in graph["op_histogram"]
    assert {"RSQRT", "MAXIMUM", "SQUARE"}.isdisjoint(graph["op_histogram"])
    # the keys' pre-scaling, max(x) + max(-x) per stage: no REDUCE_MIN, which NPU compilers reject
    assert graph["op_histogram"]["REDUCE_MAX"] == 8 and "REDUCE_MIN" not in graph["op_histogram"]
    assert any("sigmoid" in a for a in report["approximations"])
    assert report["calibration"].startswith("builtin")
    # measured on the golden (random but non-trivial) weights and real photographs
    assert report["fidelity"]["cosine_min"] >= 0.99
    assert report["size_bytes"] < 0.35 * 13e6 and os.path.getsize(path) == report["size_bytes"]


def test_int8_io_and_other_modes(golden_dir):
    model = sf.load(os.path.join(golden_dir, "tiny.pth"))
    rng = np.random.default_rng(0)
    images = [rng.normal(size=(64, 64, 3)).astype(np.float32) for _ in range(8)]
    x = images[0][None]
    expected = np.asarray(model(x))
    # fp16: test_fp32_and_fp16_match_official_golden; dynamic: test_dynamic_range_mode
    for mode, io in (("int8", True), ("int16x8", False)):
        result = convert(model, mode, input_size=(64, 64), int8_io=io, calibration=images)
        graph = summarize_graph(result.flatbuffer)
        logits = TFLiteRunner(result.flatbuffer)(x)
        cosine = float((logits * expected).sum() / np.linalg.norm(logits) / np.linalg.norm(expected))
        assert cosine > 0.98, (mode, cosine)
        if mode == "int8":
            assert graph.input_dtype == graph.output_dtype == "int8"
            assert graph.float_tensors == []
        if mode == "int16x8":
            assert graph.input_dtype == "float32" and graph.float_tensors == []


@pytest.mark.slow  # 15-20 s, a mode few use; default: test_int8_io_and_other_modes (same path)
def test_dynamic_range_mode(golden_dir):
    model = sf.load(os.path.join(golden_dir, "tiny.pth"))
    x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
    result = convert(model, "dynamic", input_size=(64, 64))
    logits, expected = TFLiteRunner(result.flatbuffer)(x), np.asarray(model(x))
    cosine = float((logits * expected).sum() / np.linalg.norm(logits) / np.linalg.norm(expected))
    assert cosine > 0.999, cosine


@pytest.mark.slow  # 1-2 minutes: selective mode converts the model once per kept layer
def test_debug_csv_and_selective_float(golden_dir, tmp_path):
    csv_path = tmp_path / "layers.csv"
    argv = ["--weights", os.path.join(golden_dir, "tiny.pth"), "--quantize", "int8",
            "--input-size", "64", "--num-calibration", "16", "--num-check", "6",
            "--debug-csv", str(csv_path), "--selective", "0.99999", "--runs", "3",
            "--output", str(tmp_path / "t.tflite"), "--report", str(tmp_path / "r.json")]
    assert convert_cli.main(argv) == 0
    header, *rows = csv_path.read_text().splitlines()
    assert "rmse_over_scale" in header and "tensor_name" in header and len(rows) > 20
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["kept_float"]  # the target forced some layers back to float
    assert report["graph"]["float_tensors"]  # and the report says so


def test_random_weights_warning_and_summary(capsys, tmp_path):
    out = tmp_path / "xs.tflite"
    # --gpu-check off: a GPU build compiles shaders (a minute); test_gpu.py covers its line
    assert convert_cli.main(["--input-size", "64", "--num-check", "2", "--runs", "2",
                             "--gpu-check", "off", "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert "RANDOMLY INITIALISED SwiftFormer-XS" in captured.err
    for field in ("size:", "ops:", "XNNPACK:", "fidelity:", "host latency:"):
        assert field in captured.out
    assert out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--weights", "missing.pth"], "missing.pth: no such file"),
    (["--calibration", "{empty}", "--quantize", "int8"], "no images found"),
    (["--calibration", "{nowhere}", "--quantize", "int8"], "nowhere: no such folder, and not a data source"),
    (["--calibration", "{broken}", "--quantize", "int8"], "unreadable image"),
    (["--output", "{nowhere}/x.tflite"], "does not exist"),
    (["--weights", "{notckpt}"], "not a PyTorch checkpoint"),
])
def test_bad_input_gives_one_line_error_and_no_file(argv, message, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notckpt.pth").write_text("text")
    fill = {"empty": tmp_path / "empty", "nowhere": tmp_path / "nowhere",
            "broken": tmp_path / "broken", "notckpt": tmp_path / "notckpt.pth"}
    argv = [a.format(**fill) for a in argv]
    if "--output" not in argv:
        argv += ["--output", str(tmp_path / "out.tflite")]
    assert convert_cli.main(argv + ["--input-size", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("swiftformer-export: error:") and message in err[-1]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tflite") or ".tmp" in p]


def test_unknown_mode_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        convert_cli.parse_args(["--quantize", "int4"])
    assert exit_info.value.code == 2 and "invalid choice: 'int4'" in capsys.readouterr().err


def test_benchmark_cli_interleaves_and_writes_csv(golden_xs_exports, tmp_path, capsys):
    paths = [golden_xs_exports[0][mode] for mode in ("none", "fp16")]
    csv_path = tmp_path / "bench.csv"
    assert benchmark_cli.main(paths + ["--threads", "1", "2", "--runs", "6",
                                       "--csv", str(csv_path)]) == 0
    out = capsys.readouterr().out
    assert "interleaved" in out and "ratio" in out
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "model,threads,runs,min_ms,median_ms,max_ms,ratio_to_first"
    assert len(lines) == 5
    first = lines[1].split(",")
    assert first[-1] == "1.0" and float(first[3]) <= float(first[4]) <= float(first[5])
    assert benchmark_cli.main([str(tmp_path / "none.tflite")]) == 2


def test_sigterm_leaves_no_litter(golden_dir, tmp_path):
    """A conversion killed with SIGTERM mid-way removes its SavedModel folder and writes no
    output, as Ctrl-C does."""
    import signal
    import subprocess
    import time
    temp, out = tmp_path / "temp", tmp_path / "out"
    temp.mkdir(), out.mkdir()
    env = dict(os.environ, TMPDIR=str(temp), PYTHONPATH=ROOT)
    process = subprocess.Popen(
        [console_script("swiftformer-export"), "--weights",
         os.path.join(golden_dir, "swiftformer_xs.pth"), "--no-check", "--gpu-check", "off",
         "--output", str(out / "xs.tflite")], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not any(p.startswith("swiftformer_tflite_") for p in os.listdir(temp)):
        assert process.poll() is None and time.time() < deadline, "never reached conversion"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 128 + signal.SIGTERM
    assert os.listdir(temp) == [] and os.listdir(out) == []
