"""android_bench: log parsers on verbatim tool output, and the whole wrapper against a
fake-device adb (tests/fake_adb/adb) that really runs the models on this machine."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from android_bench.configs import parse_config, parse_configs
from android_bench.parsing import parse_benchmark_output

FAKE_ADB = os.path.join(ROOT, "tests", "fake_adb", "adb")

# Verbatim benchmark_model output (public gist, via the toolchain fact sheet).
CLASSIC = """\
adb shell taskset f0 /data/local/tmp/benchmark_model --graph=/data/local/tmp/m.tflite --num_threads=1
STARTING!
Log parameter values verbosely: [0]
Num threads: [1]
#threads used for CPU inference: [1]
INFO: Initialized TensorFlow Lite runtime.
The input model file size (MB): 11.983
Initialized session in 20.283ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=2 first=339304 curr=266325 min=266325 max=339304 avg=302814 std=36489
Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=266601 curr=266931 min=265837 max=268116 avg=266473 std=419
Inference timings in us: Init: 20283, First inference: 339304, Warmup (avg): 302814, Inference (avg): 266473
"""

GPU_FULL = """\
INFO: Created TensorFlow Lite delegate for GPU.
VERBOSE: Replacing 58 out of 58 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 1 partitions for the whole graph.
INFO: Initialized OpenCL-based API.
INFO: Created 1 GPU delegate kernels.
INFO: Explicitly applied GPU delegate, and the model graph will be completely executed by the delegate.
INFO: Initialized session in 842.225ms.
INFO: count=13 first=115098 curr=36666 min=32079 max=115098 avg=40199.8 std=21694
INFO: count=1694 first=35688 curr=33419 min=30394 max=42335 avg=35134.9 std=1733
INFO: Inference timings in us: Init: 842225, First inference: 115098, Warmup (avg): 40199.8, Inference (avg): 35134.9
INFO: Overall peak memory footprint (MB) via periodic monitoring: 74.6641
"""

GPU_PARTIAL = """\
INFO: Created TensorFlow Lite delegate for GPU.
ERROR: Following operations are not supported by GPU delegate:
DEQUANTIZE:
TRANSPOSE_CONV: Max version supported: 3. Requested version 4.
123 operations will run on the GPU, and the remaining 156 operations will run on the CPU.
INFO: Explicitly applied GPU delegate, and the model graph will be partially executed by the delegate w/ 7 delegate kernels.
WARNING: some unrelated warning
INFO: count=50 first=9000 curr=8000 min=7900 max=9100 avg=8100 std=100
INFO: Inference timings in us: Init: 1000, First inference: 9000, Warmup (avg): 9000, Inference (avg): 8100
INFO: Memory footprint delta from the start of the tool (MB): init=2.43359 overall=8.67578
INFO: Overall peak memory footprint (MB) via periodic monitoring: 13.1797
"""

NNAPI_NONE = """\
I tflite  : Use NNAPI: [1]
I tflite  : NNAPI accelerators available: [ipuadaptor,nnapi-reference]
I tflite  : Created TensorFlow Lite delegate for NNAPI.
I tflite  : Though NNAPI delegate is explicitly applied, the model graph will not be executed by the delegate
I tflite  : Inference timings in us: Init: 5685, First inference: 18535, Warmup (avg): 14462.3, Inference (avg): 14575.2
"""

LITERT = """\
========== BENCHMARK RESULTS ==========
Model initialization: 12.34 ms
Warmup (first):       8.10 ms
Warmup (avg):         7.90 ms (5 runs)
Inference (avg):      7.51 ms (50 runs)
Inference (min):      7.20 ms
Inference (max):      8.40 ms
Inference (std):      0.21
Throughput:           12.00 MB/s
Memory Usage:
Init footprint:       3.50 MB
Overall footprint:    9.25 MB
Peak memory:          20.75 MB
======================================
"""


def test_classic_output():
    r = parse_benchmark_output(CLASSIC)
    assert r["tool"] == "benchmark_model"
    assert (r["init_ms"], r["first_ms"], r["warmup_avg_ms"], r["avg_ms"]) == \
        (20.283, 339.304, 302.814, 266.473)
    assert (r["min_ms"], r["max_ms"], r["std_ms"], r["runs"]) == (265.837, 268.116, 0.419, 50)


def test_gpu_full_and_memory():
    r = parse_benchmark_output(GPU_FULL)
    assert r["avg_ms"] == pytest.approx(35.1349) and r["runs"] == 1694
    assert r["peak_memory_mb"] == 74.6641
    d = r["delegation"]
    assert (d["delegate"], d["status"], d["partitions"]) == ("GPU", "full", 1)
    assert (d["nodes_delegated"], d["nodes_total"]) == (58, 58)


def test_gpu_partial_with_windows_line_endings():
    r = parse_benchmark_output(GPU_PARTIAL.replace("\n", "\r\n"))
    d = r["delegation"]
    assert (d["delegate"], d["status"], d["partitions"]) == ("GPU", "partial", 7)
    assert d["fallback_ops"] == ["DEQUANTIZE", "TRANSPOSE_CONV"]
    assert (d["nodes_delegated"], d["nodes_total"]) == (123, 279)
    assert (r["memory_init_mb"], r["memory_overall_mb"], r["peak_memory_mb"]) == \
        (2.43359, 8.67578, 13.1797)
    assert r["avg_ms"] == 8.1 and r["min_ms"] == 7.9


def test_nnapi_not_applied_and_litert_format():
    d = parse_benchmark_output(NNAPI_NONE)["delegation"]
    assert (d["delegate"], d["status"]) == ("NNAPI", "none")
    r = parse_benchmark_output(LITERT)
    assert r["tool"] == "benchmark_litert_model"
    assert (r["init_ms"], r["first_ms"], r["warmup_avg_ms"], r["avg_ms"], r["runs"]) == \
        (12.34, 8.10, 7.90, 7.51, 50)
    assert (r["min_ms"], r["max_ms"], r["std_ms"], r["peak_memory_mb"]) == (7.20, 8.40, 0.21, 20.75)
    assert (r["memory_init_mb"], r["memory_overall_mb"]) == (3.5, 9.25)


def test_configs():
    assert parse_config("cpu:4").flags() == ["--num_threads=4", "--use_xnnpack=true"]
    assert parse_config("gpu:fp16").flags() == ["--use_gpu=true", "--gpu_precision_loss_allowed=true"]
    assert parse_config("gpu").flags()[1] == "--gpu_precision_loss_allowed=false"
    assert [c.backend for c in parse_configs("cpu:1,gpu,nnapi")] == ["cpu", "gpu", "nnapi"]
    for bad in ("cpu", "cpu:0", "tpu", "gpu:int8"):
        with pytest.raises(ValueError):
            parse_config(bad)


# -- the wrapper on a fake device -------------------------------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import swiftformer_tf as sf
    from swiftformer_tf.lite.converter import convert
    folder = tmp_path_factory.mktemp("models")
    model = sf.SwiftFormer({"depths": [1, 1, 1, 1], "widths": [8, 16, 24, 32]}, num_classes=5)
    paths = []
    for name, mode in (("swiftformer_xs_fp32.tflite", "none"), ("swiftformer_s_fp16.tflite", "fp16")):
        path = folder / name
        path.write_bytes(convert(model, mode, input_size=(64, 64)).flatbuffer)
        paths.append(str(path))
    binary = folder / "android_aarch64_benchmark_model"
    binary.write_text("#!/bin/false\n")
    broken = folder / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer" * 10)
    return {"models": paths, "binary": str(binary), "broken": str(broken)}


def run_bench(args, tmp_path, timeout=300, **env):
    root = tmp_path / "device"
    root.mkdir(exist_ok=True)
    environment = dict(os.environ, FAKE_ADB_ROOT=str(root), ADB=FAKE_ADB)
    environment.update({k: str(v) for k, v in env.items()})
    return subprocess.run([sys.executable, os.path.join(ROOT, "android_bench", "run.py"), *args],
                          capture_output=True, text=True, env=environment, timeout=timeout)


def test_end_to_end_on_fake_device(models, tmp_path):
    out = tmp_path / "results"
    result = run_bench(["--models", *models["models"], "--configs", "cpu:1,cpu:2,gpu,nnapi",
                        "--benchmark-binary", models["binary"], "--runs", "8", "--warmup", "2",
                        "--out", str(out)], tmp_path, FAKE_ADB_SDK=35)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "NNAPI is deprecated" in result.stdout
    for name in ("results.json", "results.csv", "results.md", "latency_per_config.png",
                 "latency_vs_top1.png"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "results.json").read_text())
    assert data["device"]["device_model"] == "Pixel Fake" and data["device"]["android_sdk"] == 35
    rows = {(r["model"], r["config"]): r for r in data["rows"]}
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows.values())
    cpu = rows[("swiftformer_xs_fp32.tflite", "cpu:1")]
    assert cpu["runs"] == 8 and 0 < cpu["min_ms"] <= cpu["avg_ms"] <= cpu["max_ms"]
    assert cpu["init_ms"] > 0 and cpu["peak_memory_mb"] > 0 and cpu["marks"] == []
    assert cpu["soc"] == "Fake FakeSoC 1" and cpu["abi"] == "arm64-v8a" and cpu["model_size_mb"] > 0
    gpu = rows[("swiftformer_xs_fp32.tflite", "gpu")]
    assert gpu["delegate_status"] == "partial" and gpu["marks"] == ["partial"]
    assert gpu["fallback_ops"] == ["GELU", "SUM"] and gpu["partitions"] == 5
    nnapi = rows[("swiftformer_s_fp16.tflite", "nnapi")]
    assert nnapi["marks"] == ["cpu-fallback", "nnapi-deprecated"]
    table = (out / "results.md").read_text()
    assert "| swiftformer_xs_fp32.tflite |" in table and "(partial)" in table
    assert "(cpu-fallback, nnapi-deprecated)" in table
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 9 and csv_lines[0].startswith("model,config,status")
    # report.py rebuilds the same files
    (out / "results.md").unlink()
    rebuilt = subprocess.run([sys.executable, os.path.join(ROOT, "android_bench", "report.py"),
                              str(out)], capture_output=True, text=True)
    assert rebuilt.returncode == 0 and (out / "results.md").read_text() == table


def test_resume_skips_done_rows(models, tmp_path):
    out = tmp_path / "results"
    args = ["--models", models["models"][0], "--configs", "cpu:1,cpu:2",
            "--benchmark-binary", models["binary"], "--runs", "3", "--out", str(out)]
    assert run_bench(args, tmp_path).returncode == 0
    first = json.loads((out / "results.json").read_text())["rows"]
    again = run_bench(args + ["--resume", "--configs", "cpu:1,cpu:2,cpu:3"], tmp_path)
    assert again.returncode == 0
    assert again.stdout.count("(done)") == 2
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["config"] for r in rows] == ["cpu:1", "cpu:2", "cpu:3"]
    assert rows[0]["avg_ms"] == first[0]["avg_ms"]


@pytest.mark.parametrize("env, extra, message", [
    ({"FAKE_ADB_DEVICES": ""}, [], "no Android device connected"),
    ({"FAKE_ADB_DEVICES": "A1:device:X,B2:device:Y"}, [], "several devices connected"),
    ({"FAKE_ADB_DEVICES": "A1:unauthorized:X"}, [], "unauthorized"),
    ({"FAKE_ADB_DEVICES": "A1:offline:X"}, [], "is offline"),
    ({"FAKE_ADB_DEVICES": "A1:device:X"}, ["--serial", "ZZ"], "device ZZ not found"),
    ({"FAKE_ADB_NOEXEC": "1"}, [], "cannot be made executable"),
    ({}, ["--benchmark-binary", "/nonexistent/benchmark_model"], "benchmark binary not found"),
    ({"ADB": "/nonexistent/adb"}, [], "adb not found: install Android platform-tools"),
])
def test_setup_failures_are_clear(models, tmp_path, env, extra, message):
    args = ["--models", models["models"][0], "--configs", "cpu:1",
            "--benchmark-binary", models["binary"], "--out", str(tmp_path / "r")] + extra
    result = run_bench(args, tmp_path, **env)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_failed_rows_do_not_stop_the_others(models, tmp_path):
    out = tmp_path / "results"
    args = ["--models", models["broken"], models["models"][0], "--configs", "cpu:1,cpu:2",
            "--benchmark-binary", models["binary"], "--runs", "3", "--timeout", "5",
            "--out", str(out)]
    result = run_bench(args, tmp_path, FAKE_ADB_HANG_ON="--num_threads=2")
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    status = {(r["model"], r["config"]): (r["status"], r["reason"]) for r in rows}
    assert status[("broken.tflite", "cpu:1")][0] == "failed"
    assert "Failed to load model" in status[("broken.tflite", "cpu:1")][1]
    assert "timed out" in status[("swiftformer_xs_fp32.tflite", "cpu:2")][1]
    assert status[("swiftformer_xs_fp32.tflite", "cpu:1")][0] == "ok"


def test_disconnect_mid_run(models, tmp_path):
    out = tmp_path / "results"
    args = ["--models", *models["models"], "--configs", "cpu:1,cpu:2",
            "--benchmark-binary", models["binary"], "--runs", "3", "--out", str(out)]
    result = run_bench(args, tmp_path, FAKE_ADB_DISCONNECT_AFTER=1)
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok", "failed", "failed", "failed"]
    assert all("disconnected" in r["reason"] for r in rows[1:])
    assert "device disconnected" in result.stdout


def test_crlf_output_on_device(models, tmp_path):
    out = tmp_path / "results"
    args = ["--models", models["models"][0], "--configs", "cpu:1", "--runs", "3",
            "--benchmark-binary", models["binary"], "--out", str(out)]
    assert run_bench(args, tmp_path, FAKE_ADB_CRLF=1).returncode == 0
    row = json.loads((out / "results.json").read_text())["rows"][0]
    assert row["status"] == "ok" and row["runs"] == 3 and row["avg_ms"] > 0


def test_host_mode(models, tmp_path):
    out = tmp_path / "host"
    result = subprocess.run([sys.executable, os.path.join(ROOT, "android_bench", "run.py"),
                             "--host", "--models", *models["models"], "--configs",
                             "cpu:1,cpu:2,nnapi", "--runs", "5", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 4 and all(r["partitions"] == 1 and r["median_ms"] > 0 for r in ok)
    assert [r["reason"] for r in rows if r["config"] == "nnapi"][0] == "NNAPI exists only on Android"
    assert np.isfinite([r["median_ms"] for r in ok]).all()
