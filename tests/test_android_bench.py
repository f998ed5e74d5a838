"""android_bench: log parsers on real published tool output (tests/fixtures/benchmark_logs/),
the flags of each tool, and the whole wrapper against a synthetic fake-device adb
(tests/fake_adb/adb) that really runs the models on this machine."""

import json
import os
import re
import shlex
import subprocess

import numpy as np
import pytest
from conftest import console_script, ROOT, cli_tool

from swiftformer_tf.android_bench.configs import parse_config, parse_configs
from swiftformer_tf.android_bench.parsing import failure_reason, parse_benchmark_output
from swiftformer_tf.android_bench.runner import _delegation_fields, _marks
from swiftformer_tf.android_bench.tools import (CLASSIC, LITERT, BenchmarkTool, UnsupportedConfig, detect_tool,
                                 flags_in_help)
from swiftformer_tf.runtime.delegate_log import clean_lines, delegate_name, parse_delegation

FAKE_ADB = os.path.join(ROOT, "tests", "fake_adb", "adb")
bench_cli = cli_tool("android_bench")

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "benchmark_logs")


def real_log(name):
    """A verbatim published log (source in tests/fixtures/benchmark_logs/README.md)."""
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def test_every_fixture_has_its_source_listed():
    listed = open(os.path.join(FIXTURES, "README.md")).read()
    logs = sorted(n for n in os.listdir(FIXTURES) if n.endswith(".log"))
    assert len(logs) >= 15
    assert [n for n in logs if f"`{n}`" not in listed] == []


# -- timings and memory, from real logs -------------------------------------------------------
@pytest.mark.parametrize("name, expected", [
    ("gist_rexhaif_cpu_taskset.log", dict(tool="benchmark_model", init_ms=20.283,
     first_ms=339.304, warmup_avg_ms=302.814, avg_ms=266.473, min_ms=265.837, max_ms=268.116,
     std_ms=0.419, runs=50)),
    ("chromiumos_readme_xnnpack_cpu.log", dict(avg_ms=56.2658, min_ms=54.669, runs=1061,
     peak_memory_mb=93.2383)),
    ("chromiumos_readme_gpu_opencl.log", dict(avg_ms=35.1349, runs=1694, peak_memory_mb=74.6641)),
    ("tf56301_nnapi_partial_logcat.log", dict(init_ms=126.059, avg_ms=12.1676, min_ms=11.787,
     max_ms=13.649, std_ms=0.325, runs=75)),
    # --enable_op_profiling: the statistics are the benchmark's, not the profiler's
    ("tf43541_gpu_full_op_profiling.log", dict(avg_ms=119.375, min_ms=113.737, runs=50)),
    ("tf42507_op_profiling_old_memory.log", dict(avg_ms=33.2094, min_ms=32.641, max_ms=34.005,
     std_ms=0.45, runs=50, memory_init_mb=0.0, memory_overall_mb=12.8672)),
    ("xnnpack999_int8_rpi_op_profiling.log", dict(avg_ms=55.0432, min_ms=53.077, runs=50,
     memory_init_mb=8.97656, memory_overall_mb=18.7227)),
    ("tflite_readme_op_profiling_tail.log", dict(init_ms=38.467, warmup_avg_ms=83.235,
     avg_ms=79.7609, min_ms=None, max_ms=None, std_ms=None, runs=None)),
    # TF 1.x summary line
    ("yuenshome77_tf1_nnapi_library_missing.log", dict(init_ms=12.516, warmup_avg_ms=146.548,
     avg_ms=133.69, min_ms=133.474, max_ms=134.269, std_ms=0.23, runs=10)),
    # LiteRT's tool: [file:line] prefixes, no peak memory
    ("mlcommons1134_litert_gpu_full.log", dict(tool="benchmark_litert_model", init_ms=23744.73,
     first_ms=7441.04, avg_ms=7430.20, min_ms=7416.40, max_ms=7448.86, std_ms=9.92, runs=10,
     memory_init_mb=6391.74, memory_overall_mb=6391.74, peak_memory_mb=None,
     signature="prefill_1024")),
])
def test_timings_from_real_logs(name, expected):
    result = parse_benchmark_output(real_log(name))
    for key, value in expected.items():
        if value is None or isinstance(value, str):
            assert result[key] == value, key
        else:
            assert result[key] == pytest.approx(value, rel=1e-9), key


@pytest.mark.parametrize("name", ["tf58379_gpu_full_windows.log", "tf56301_nnapi_none_logcat.log",
                                  "tf49247_hexagon_failed.log"])
def test_logs_without_a_summary_give_no_timings(name):
    assert parse_benchmark_output(real_log(name))["avg_ms"] is None


# -- delegation, delegate by delegate, from real logs ----------------------------------------
@pytest.mark.parametrize("name, delegate, status, fields", [
    ("tf70664_gpu_replacing_only_logcat.log", "GPU", "full",
     dict(nodes_delegated=290, nodes_total=290, partitions=1)),
    ("chromiumos_readme_gpu_opencl.log", "GPU", "full", dict(nodes_total=58, partitions=1)),
    ("tf43541_gpu_full_op_profiling.log", "GPU", "full", {}),
    ("tf58379_gpu_full_windows.log", "GPU", "full", {}),
    ("discuss27507_gpu_then_xnnpack_app.log", "GPU", "partial",
     dict(nodes_delegated=29, nodes_total=65, partitions=3)),
    ("discuss27507_gpu_then_xnnpack_app.log", "XNNPACK", "partial",
     dict(nodes_delegated=52, nodes_total=65)),
    ("tf56301_gpu_unsupported_op_logcat.log", "GPU", "partial", dict(fallback_ops=["UNPACK"])),
    ("tf57907_gpu_unsupported_ops_linux.log", "GPU", "partial",
     dict(nodes_delegated=97, nodes_total=297,
          fallback_ops=["ARG_MAX", "CAST", "CONCATENATION", "DEQUANTIZE", "FLOOR_DIV",
                        "GATHER_ND", "MUL", "PACK", "RESHAPE", "SUB", "UNPACK"])),
    ("tf49012_gpu_zero_kernels.log", "GPU", "none", {}),
    ("tf56301_nnapi_partial_logcat.log", "NNAPI", "partial", dict(partitions=44)),
    ("tf56301_nnapi_none_logcat.log", "NNAPI", "none", {}),
    ("tf56747_hexagon_then_xnnpack.log", "HEXAGON", "partial",
     dict(nodes_delegated=136, nodes_total=139, partitions=2)),
    ("tf56747_hexagon_then_xnnpack.log", "XNNPACK", "partial", dict(nodes_delegated=12)),
    ("tf49247_hexagon_failed.log", "HEXAGON", "none", {}),
    ("tf83344_qnn_external_none.log", "QNN", "none", dict(nodes_delegated=0, nodes_total=31)),
    ("chromiumos_readme_xnnpack_cpu.log", "XNNPACK", "full", dict(nodes_total=58)),
])
def test_delegation_from_real_logs(name, delegate, status, fields):
    record = parse_delegation(real_log(name))[delegate]
    assert record["status"] == status
    for key, value in fields.items():
        assert record[key] == value, key


def test_rejected_ops_keep_their_reasons():
    record = parse_delegation(real_log("tf57907_gpu_unsupported_ops_linux.log"))["GPU"]
    assert record["fallback_reasons"]["CAST"] == "Not supported cast case"
    assert record["fallback_reasons"]["DEQUANTIZE"] == ""


@pytest.mark.parametrize("name, config, marks", [
    ("tf70664_gpu_replacing_only_logcat.log", "gpu", []),
    ("chromiumos_readme_gpu_opencl.log", "gpu:fp16", []),
    ("discuss27507_gpu_then_xnnpack_app.log", "gpu", ["partial"]),
    ("tf57907_gpu_unsupported_ops_linux.log", "gpu", ["partial"]),
    ("tf49012_gpu_zero_kernels.log", "gpu", ["cpu-fallback"]),
    ("chromiumos_readme_xnnpack_cpu.log", "gpu", ["cpu-fallback"]),  # no sign of the GPU
    ("tf56301_nnapi_partial_logcat.log", "nnapi", ["partial"]),
    ("tf56301_nnapi_none_logcat.log", "nnapi", ["cpu-fallback"]),
    ("tf56301_nnapi_partial_logcat.log", "gpu", ["cpu-fallback"]),  # NNAPI ran, not the GPU
    ("chromiumos_readme_xnnpack_cpu.log", "cpu:4", []),
])
def test_the_requested_delegate_decides_the_mark(name, config, marks):
    config = parse_config(config)
    fields = _delegation_fields(parse_delegation(real_log(name)), config)
    assert _marks(config, fields["delegate_status"], sdk=34) == marks
    assert _marks(config, fields["delegate_status"], sdk=35)[-1:] == \
        (["nnapi-deprecated"] if config.backend == "nnapi" else marks[-1:])


def test_logcat_prefixes_are_removed():
    lines = clean_lines(real_log("ultralytics3172_nnapi_studio_logcat.log"))
    assert "Use NNAPI: [1]" in lines and "Num threads: [4]" in lines
    lines = clean_lines(real_log("tf56301_gpu_unsupported_op_logcat.log"))
    assert "UNPACK: Operation is not supported." in lines
    assert clean_lines(real_log("mlcommons1134_litert_gpu_full.log"))[5] == \
        "Warmup (avg):         7441.04 ms (1 runs)"


def test_failure_reasons_from_real_logs():
    assert failure_reason(real_log("tf49247_hexagon_failed.log"), 1) == \
        "Failed to apply Hexagon delegate. (hexagon_nn_config failed. Error: -1)"
    assert failure_reason(real_log("tf49012_gpu_zero_kernels.log"), 1) == \
        "tensorflow/lite/core/subgraph.cc:1169 node_index >= 0 was not true."
    # A warning of a run that went on: never the reason, even with the summary cut off.
    head = real_log("yuenshome77_tf1_nnapi_library_missing.log").split("Running benchmark")[0]
    assert "nnapi" not in failure_reason(head, 1).lower()
    assert failure_reason(head, 139) == "segmentation fault (SIGSEGV)"


# Synthetic unit cases, written here from the message formats in TFLite's source; they are
# not evidence of real output (the fixtures above are).
@pytest.mark.parametrize("text, status", [
    ("INFO: Created TensorFlow Lite delegate for GPU.\n"
     "ERROR: GPU acceleration is unsupported on this platform.\n", "none"),
    ("ERROR: Could not create GPU delegate: platform may not support delegate\n", "none"),
    ("ERROR: Failed to apply GPU delegate.\n", "none"),
    ("No operations will run on the GPU, and all 81 operations will run on the CPU.\n", "none"),
    ("ERROR: Next operations are not supported by GPU delegate:\nADD: \n"
     "First 0 operations will run on the GPU, and the remaining 81 on the CPU.\n", "none"),
    ("WARNING: 25 cannot be handled by this delegate.  Only the first 30 ops will run on the "
     "GPU, and the remaining 1 on the CPU\n", "partial"),
])
def test_gpu_never_applied_is_none_not_partial(text, status):
    assert parse_delegation(text)["GPU"]["status"] == status


@pytest.mark.parametrize("raw, name", [("TfLiteGpuDelegateV2", "GPU"), ("GPU", "GPU"),
                                       ("TfLiteNnapiDelegate", "NNAPI"),
                                       ("TfLiteXNNPackDelegate", "XNNPACK"),
                                       ("TfLiteHexagonDelegate", "HEXAGON"),
                                       ("TfLiteQnnDelegate", "QNN")])
def test_delegate_names_are_normalised(raw, name):
    assert delegate_name(raw) == name


# -- which tool, which flags ------------------------------------------------------------------
def test_flags_are_read_from_real_help_lines():
    # A line of android_aarch64_benchmark_model --help (tensorflow/tensorflow#55364).
    line = ("--hexagon_lib_path=/data/local/tmp string optional The library path for the "
            "underlying Hexagon libraries.")
    assert flags_in_help(line) == {"hexagon_lib_path"}


LITERT_FLAGS = frozenset({"graph", "num_runs", "warmup_runs", "num_threads", "use_cpu", "use_gpu",
                          "use_npu", "dispatch_library_dir", "require_full_delegation",
                          "use_profiler", "allow_fp16", "report_peak_memory_footprint"})
CLASSIC_FLAGS = frozenset({"graph", "num_runs", "warmup_runs", "num_threads", "use_xnnpack",
                           "use_gpu", "gpu_precision_loss_allowed", "use_nnapi",
                           "enable_op_profiling", "report_peak_memory_footprint"})


def test_tool_detection():
    help_text = "\n".join(f"\t--{f}=x\tbool\toptional\t..." for f in sorted(LITERT_FLAGS))
    assert detect_tool(help_text, "/x/benchmark_model").kind == LITERT
    help_text = "\n".join(f"\t--{f}=x\tbool\toptional\t..." for f in sorted(CLASSIC_FLAGS))
    assert detect_tool(help_text, "/x/benchmark_model").kind == CLASSIC
    assert detect_tool("", "benchmark_litert_model").kind == LITERT
    assert detect_tool("", "android_aarch64_benchmark_model").kind == CLASSIC


def test_classic_flags():
    tool = BenchmarkTool(CLASSIC, CLASSIC_FLAGS)
    assert tool.command_flags(parse_config("cpu:4"), 50, 5) == [
        "--num_threads=4", "--use_xnnpack=true", "--num_runs=50", "--warmup_runs=5",
        "--report_peak_memory_footprint=true"]
    assert "--gpu_precision_loss_allowed=false" in tool.command_flags(parse_config("gpu"), 5, 1)
    assert "--gpu_precision_loss_allowed=true" in tool.command_flags(parse_config("gpu:fp16"), 5, 1)
    assert "--use_nnapi=true" in tool.command_flags(parse_config("nnapi"), 5, 1)
    assert "--enable_op_profiling=true" in tool.command_flags(parse_config("cpu:1"), 5, 1, True)
    old = BenchmarkTool(CLASSIC, CLASSIC_FLAGS - {"gpu_precision_loss_allowed",
                                                  "report_peak_memory_footprint"})
    with pytest.raises(UnsupportedConfig, match="gpu_precision_loss_allowed"):
        old.command_flags(parse_config("gpu"), 5, 1)
    assert not any("peak_memory" in f for f in old.command_flags(parse_config("cpu:1"), 5, 1))


def test_litert_flags_are_only_its_own():
    tool = BenchmarkTool(LITERT, LITERT_FLAGS)
    gpu = tool.command_flags(parse_config("gpu"), 20, 2, op_profiling=True)
    assert gpu[:4] == ["--use_gpu=true", "--allow_fp16=false", "--use_cpu=false",
                       "--require_full_delegation=true"]
    assert "--use_profiler=true" in gpu
    assert "--allow_fp16=true" in tool.command_flags(parse_config("gpu:fp16"), 20, 2)
    assert "--use_cpu=true" in tool.command_flags(parse_config("gpu"), 20, 2, strict=False)
    assert tool.command_flags(parse_config("cpu:2"), 20, 2)[:3] == [
        "--use_cpu=true", "--use_gpu=false", "--num_threads=2"]
    for config in ("cpu:1", "gpu", "gpu:fp16"):
        for flag in tool.command_flags(parse_config(config), 20, 2, op_profiling=True):
            assert flag[2:].split("=")[0] in LITERT_FLAGS, flag
    with pytest.raises(UnsupportedConfig, match="no NNAPI"):
        tool.command_flags(parse_config("nnapi"), 20, 2)
    npu = tool.command_flags(parse_config("npu"), 20, 2, dispatch_dir="/data/local/tmp/d")
    assert npu[:5] == ["--use_npu=true", "--use_gpu=false", "--dispatch_library_dir=/data/local/tmp/d",
                       "--use_cpu=false", "--require_full_delegation=true"]
    assert "--use_cpu=true" in tool.command_flags(parse_config("npu"), 20, 2, strict=False)
    with pytest.raises(UnsupportedConfig, match="no NPU path"):
        BenchmarkTool(CLASSIC, CLASSIC_FLAGS).command_flags(parse_config("npu"), 20, 2)
    # a build that spells precision as --gpu_precision
    other = BenchmarkTool(LITERT, LITERT_FLAGS - {"allow_fp16"} | {"gpu_precision"})
    assert "--gpu_precision=fp32" in other.command_flags(parse_config("gpu"), 20, 2)


def test_configs():
    assert [c.backend for c in parse_configs("cpu:1,gpu,npu,nnapi")] == ["cpu", "gpu", "npu", "nnapi"]
    assert parse_config("npu").delegate == "NPU"
    assert parse_config("gpu:fp16").fp16 and not parse_config("gpu").fp16
    assert [c.delegate for c in parse_configs("cpu:1,gpu,nnapi")] == [None, "GPU", "NNAPI"]
    for bad in ("cpu", "cpu:0", "tpu", "gpu:int8", "npu:fp16"):
        with pytest.raises(ValueError):
            parse_config(bad)


# -- the wrapper on a fake device -------------------------------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import swiftformer_tf as sf
    from swiftformer_tf.export.converter import convert
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


def run_bench(args, tmp_path, **env):
    """``swiftformer-android-bench args`` against the fake device, called in this process (its
    main, as the command line does; a new Python with TensorFlow per call cost 6-14 s):
    (returncode, stdout, stderr) as from subprocess.run. The device side (the fake adb and
    the tools it runs) is still a child process, and reads ``env``."""
    import contextlib
    import io
    root = tmp_path / "device"
    root.mkdir(exist_ok=True)
    environment = dict(FAKE_ADB_ROOT=str(root), ADB=FAKE_ADB)
    environment.update({k: str(v) for k, v in env.items()})
    saved = {k: os.environ.get(k) for k in environment}
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.update(environment)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = bench_cli.main(list(args))
            except SystemExit as exit_:  # argparse's usage errors
                code = exit_.code
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


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
    rebuilt = subprocess.run([console_script("swiftformer-android-report"),
                              str(out)], capture_output=True, text=True)
    assert rebuilt.returncode == 0 and (out / "results.md").read_text() == table


def test_classic_gpu_row_with_only_a_replacing_line(models, tmp_path):
    gpu, status, marks = "full", "full", []
    out = tmp_path / "results"
    result = run_bench(["--models", models["models"][0], "--configs", "gpu", "--runs", "3",
                        "--benchmark-binary", models["binary"], "--out", str(out)], tmp_path,
                       FAKE_ADB_GPU=gpu)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "benchmark tool: benchmark_model (10 flags from its --help)" in result.stdout
    row = json.loads((out / "results.json").read_text())["rows"][0]
    assert (row["delegate_status"], row["marks"]) == (status, marks)
    assert "--gpu_precision_loss_allowed=false" in row["command"]


@pytest.mark.parametrize("gpu, status, marks", [("full", "full", []),
                                               ("partial", "partial", ["partial"]),
                                               ("unavailable", "none", ["cpu-fallback"])])
def test_litert_tool_on_fake_device(models, tmp_path, gpu, status, marks):
    out = tmp_path / "results"
    result = run_bench(["--models", models["models"][0], "--configs", "cpu:2,gpu,gpu:fp16,nnapi",
                        "--benchmark-binary", models["binary"], "--runs", "3", "--op-profiling",
                        "--out", str(out)], tmp_path, FAKE_ADB_TOOL="litert", FAKE_ADB_GPU=gpu)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "benchmark tool: benchmark_litert_model" in result.stdout
    rows = {r["config"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    cpu = rows["cpu:2"]
    assert cpu["status"] == "ok" and cpu["tool"] == "benchmark_litert_model" and cpu["runs"] == 3
    assert "--use_profiler=true" in cpu["command"] and "--use_xnnpack" not in cpu["command"]
    for config, precision in (("gpu", "false"), ("gpu:fp16", "true")):
        row = rows[config]
        assert row["status"] == "ok", row["reason"]
        assert (row["delegate_status"], row["marks"]) == (status, marks)
        assert f"--allow_fp16={precision}" in row["command"]
        # full is proved by the strict run; otherwise the row is the CPU-fallback run
        assert ("--require_full_delegation=true" in row["command"]) == (gpu == "full")
        assert (row["delegate_note"] == "") == (gpu == "full")
    assert rows["nnapi"]["status"] == "failed" and "no NNAPI" in rows["nnapi"]["reason"]


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


def test_output_that_is_not_utf8_does_not_end_the_matrix(models, tmp_path):
    out = tmp_path / "results"
    result = run_bench(["--models", *models["models"], "--configs", "cpu:1", "--runs", "3",
                        "--benchmark-binary", models["binary"], "--out", str(out)], tmp_path,
                       FAKE_ADB_LATIN1=1)
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)


def test_damaged_results_and_bad_out_give_one_line(models, tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "results.json").write_text('{"rows": [')
    base = ["--models", models["models"][0], "--configs", "cpu:1", "--runs", "3",
            "--benchmark-binary", models["binary"]]
    result = run_bench(base + ["--out", str(out), "--resume"], tmp_path)
    assert result.returncode == 2 and "results.json: damaged" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    (out / "results.json").write_text(json.dumps({"rows": [{"model": "m", "config": "cpu:1",
                                                            "status": "ok"}]}))
    report = subprocess.run([console_script("swiftformer-android-report"),
                             str(out)], capture_output=True, text=True)
    assert report.returncode == 2 and "row 0 lacks median_ms" in report.stderr
    (tmp_path / "a_file").write_text("x")
    result = run_bench(base + ["--out", str(tmp_path / "a_file")], tmp_path)
    assert result.returncode == 2 and "is a file, not a folder" in result.stderr


def test_host_mode(models, tmp_path):
    out = tmp_path / "host"
    result = subprocess.run([console_script("swiftformer-android-bench"),
                             "--host", "--models", *models["models"], "--configs",
                             "cpu:1,cpu:2,nnapi", "--runs", "5", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 4 and all(r["partitions"] == 1 and r["median_ms"] > 0 for r in ok)
    assert [r["reason"] for r in rows if r["config"] == "nnapi"][0] == "NNAPI exists only on Android"
    assert np.isfinite([r["median_ms"] for r in ok]).all()


def test_model_names_never_reach_the_device_shell(models, tmp_path):
    """A model's file name is data: it must not run on the phone (``;`` in a name would end
    the command there) nor break it (a space), and same-named models stay apart."""
    import shutil

    from swiftformer_tf.android_bench.runner import DeviceRunner, remote_path
    from swiftformer_tf.android_bench.tools import detect_tool
    names = ["my model.tflite", "x;touch PWNED;y.tflite", "a/same.tflite", "b/same.tflite"]
    paths = []
    for name in names:
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(models["models"][0], path)
        paths.append(str(path))
    out = tmp_path / "results"
    result = run_bench(["--models", *paths, "--configs", "cpu:1", "--benchmark-binary",
                        models["binary"], "--runs", "3", "--warmup", "1", "--out", str(out)],
                       tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["my model.tflite", "x;touch PWNED;y.tflite",
                                          "a/same.tflite", "b/same.tflite"]
    assert all(r["status"] == "ok" for r in rows)
    pushed = sorted(p for p in os.listdir(tmp_path / "device") if p.endswith(".tflite"))
    assert len(pushed) == 4 and all(re.fullmatch(r"[A-Za-z0-9._-]+", p) for p in pushed)
    # The command as a POSIX shell splits it: one word per argument, no command separator.
    runner = DeviceRunner(None, models["binary"], runs=3, warmup=1)
    runner.tool = detect_tool("", models["binary"])
    command = runner.command(remote_path(paths[1]), parse_configs("cpu:1")[0])
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    words = list(lexer)
    assert not {";", "&", "&&", "|", "||"} & set(words), words
    assert words[1] == f"--graph={remote_path(paths[1])}"
