"""LiteRT's NPU path: ahead-of-time compilation with the vendors' compiler plugins, checked
here with the one that runs on an x86-64 host (Intel OpenVINO, CPU graph backend), the int8
form every NPU compiler takes, and the android_bench ``npu`` rows, on the host through
LiteRT's real NPU accelerator and on the fake device."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import console_script, cli_tool

from swiftformer_tf.runtime import npu

compile_cli = cli_tool("compile_npu")
convert_cli = cli_tool("export")

OPENVINO_CPU = ["--npu-option", "intel_openvino_graph_backends=cpu"]
INTEL = npu.NpuTarget("intel_openvino", "LNL")


@pytest.fixture(scope="module", autouse=True)
def intel_compiler():
    if importlib.util.find_spec("ai_edge_litert_sdk_intel") is None:
        pytest.skip("Intel OpenVINO's compiler plugin is not installed "
                    "(pip install -e '.[npu]' or '.[test]')")


def interpreter_outputs(path, x):
    from swiftformer_tf.runtime.interpreter import load_interpreter
    interpreter = load_interpreter(path)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _openvino_cpu_capabilities():
    import openvino
    return openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def cosine(a, b):
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="session")
def int8_xs(golden_xs_int8):
    """The suite's int8 export of the golden XS (swiftformer-export at 64x64, tests/conftest.py)
    and one of the built-in check photographs, normalised as the model takes it."""
    from swiftformer_tf.imagenet import normalize
    from swiftformer_tf.export.calibration import ImageSource
    _, path = golden_xs_int8
    image = next(ImageSource("builtin", (64, 64)).check(1))
    return path, np.asarray(normalize(image), np.float32)[None]


def test_fp32_and_fp16_compile_whole_and_compute_what_the_interpreter_does(golden_xs_exports,
                                                                           tmp_path):
    paths, x, _ = golden_xs_exports
    for mode in ("none", "fp16"):
        output = str(tmp_path / f"xs_{mode}_npu.tflite")
        result = npu.compile_for_npu(paths[mode], INTEL, output,
                                     {"intel_openvino_graph_backends": "cpu"})
        assert result.status == "full", result.summary()
        assert result.ops_on_npu == result.ops_total > 200 and result.partitions == 1
        assert result.left_on_cpu == {} and os.path.isfile(output)
        run = npu.run_on_npu(output, inputs=[x], keep_outputs=True)
        assert run.status == "full" and run.ops == {npu.DISPATCH_OP: 1}, run.reason
        expected = interpreter_outputs(paths[mode], x)
        error = np.abs(run.outputs[0] - expected).max() / np.abs(expected).max()
        # measured: 3.4e-7 (fp32); the fp16 graph dequantizes its weights to fp32 the same way.
        # On CPUs with native bf16 (AVX512_BF16, AMX) OpenVINO computes float graphs in bf16
        # unless told otherwise (4.6e-3 measured on such a Xeon): the run asks for f32
        # (INFERENCE_PRECISION_HINT), so the bound is the same on every host.
        assert error < 1e-5, (mode, error, _openvino_cpu_capabilities())


def test_int8_form_compiles_whole_in_one_xnnpack_partition(int8_xs, tmp_path):
    from swiftformer_tf.runtime.interpreter import summarize_graph
    path, x = int8_xs
    graph = summarize_graph(path)
    # max - min is max(x) + max(x * -1): no REDUCE_MIN (which OpenVINO rejects as "op type 89")
    assert "REDUCE_MIN" not in graph.op_histogram and graph.op_histogram["REDUCE_MAX"] == 8
    assert graph.partitions == 1 and not graph.cpu_ops and graph.float_tensors == []
    result = compile_cli.main([path, "--npu", "intel_openvino:lnl", *OPENVINO_CPU,
                               "--report", str(tmp_path / "npu.json")])
    assert result == 0
    report = json.loads((tmp_path / "npu.json").read_text())[0]
    assert report["status"] == "full" and report["partitions"] == 1, report["summary"]
    assert report["ops_on_npu"] == report["ops_total"] == sum(graph.op_histogram.values())
    compiled = report["output"]
    assert compiled.endswith("swiftformer_xs_int8_intel_openvino_LNL.tflite")
    run = npu.run_on_npu(compiled, inputs=[x], keep_outputs=True)
    # OpenVINO's int8 kernels round differently from XNNPACK's: close, not equal
    # (deterministic for a given file and input)
    assert run.status == "full" and cosine(run.outputs[0], interpreter_outputs(path, x)) > 0.99


def test_litert_benchmark_tool_requires_full_delegation_and_gets_it(int8_xs, tmp_path):
    """LiteRT's own benchmark tool (the Python one in the wheel), NPU only, with
    --require_full_delegation: passes on the compiled int8 export."""
    from ai_edge_litert.aot.vendors.intel_openvino.intel_openvino_backend import \
        get_dispatch_dir
    path, _ = int8_xs
    compiled = npu.compile_for_npu(path, INTEL, str(tmp_path / "int8_npu.tflite"),
                                   {"intel_openvino_graph_backends": "cpu"})
    result = subprocess.run(
        [sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model",
         f"--model={compiled.output}", "--use_npu", "--no_cpu", "--require_full_delegation",
         "--num_runs=2", "--warmup_runs=1", f"--dispatch_library_path={get_dispatch_dir()}",
         f"--result_json={tmp_path / 'bench.json'}"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert bench["fully_accelerated"] and bench["accelerators"] == ["NPU"]


def test_convert_cli_compiles_beside_its_output(golden_dir, tmp_path, capsys):
    output = tmp_path / "tiny.tflite"
    assert convert_cli.main(["--weights", os.path.join(golden_dir, "tiny.pth"),
                             "--input-size", "64", "--no-check", "--gpu-check", "off",
                             "--output", str(output), "--report", str(tmp_path / "r.json"),
                             "--npu", "intel_openvino:PTL", *OPENVINO_CPU]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    compiled = tmp_path / "tiny_intel_openvino_PTL.tflite"
    assert report["npu"][0]["output"] == str(compiled) and compiled.stat().st_size > 0
    assert report["npu"][0]["status"] == "full"
    assert "NPU:            intel_openvino:PTL: fully compiled" in capsys.readouterr().out


def test_targets_come_from_the_installed_litert(capsys):
    from ai_edge_litert.aot.vendors.qualcomm import target as qualcomm
    targets = npu.available_targets()
    assert targets["qualcomm"] == [m.value for m in qualcomm.SocModel if m.name != "ALL"]
    assert {"mediatek", "google_tensor", "intel_openvino"} <= set(targets)
    assert npu.parse_target("QUALCOMM:sm8650") == npu.NpuTarget("qualcomm", "SM8650")
    assert npu.parse_target("google_tensor:tensor_g4").soc == "Tensor_G4"
    assert npu.sdk_module("qualcomm") == "ai_edge_litert_sdk_qualcomm"
    assert compile_cli.main(["--list-npu"]) == 0
    listing = capsys.readouterr().out
    assert "SM8650" in listing and "intel_openvino:  [ai-edge-litert-sdk-intel: installed]" in listing


@pytest.mark.parametrize("argv, message", [
    (["--npu", "apple:A17"], "unknown vendor 'apple'; this LiteRT knows google_tensor,"),
    (["--npu", "qualcomm:SM9999"], "unknown qualcomm SoC 'SM9999'; this LiteRT knows SA8255,"),
    (["--npu", "intel_openvino:LNL", "--npu-option", "novalue"], "expected NAME=VALUE"),
])
def test_bad_targets_give_one_line(argv, message, golden_xs_exports, capsys):
    paths, _, _ = golden_xs_exports
    assert compile_cli.main([paths["none"], *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_a_missing_vendor_compiler_is_named(golden_xs_exports, tmp_path, capsys):
    if importlib.util.find_spec("ai_edge_litert_sdk_qualcomm"):
        pytest.skip("Qualcomm's SDK package is installed here")
    paths, _, _ = golden_xs_exports
    # convert.py checks before it converts anything
    assert convert_cli.main(["--output", str(tmp_path / "m.tflite"),
                             "--npu", "qualcomm:SM8650"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("swiftformer-export: error: no compiler for qualcomm:SM8650 here: its SDK "
                          "package ai-edge-litert-sdk-qualcomm is not installed"), err
    assert not (tmp_path / "m.tflite").exists()
    # Intel's NPU graph backend needs Intel's NPU compiler, which the openvino wheel lacks
    import openvino
    if os.path.exists(os.path.join(os.path.dirname(openvino.__file__), "libs",
                                   "libopenvino_intel_npu_compiler_loader.so")):
        return
    assert compile_cli.main([paths["none"], "--npu", "intel_openvino:LNL"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot load libopenvino_intel_npu_compiler_loader.so" in err and \
        "intel_openvino_graph_backends=cpu" in err and len(err.splitlines()) == 1, err
    assert not os.path.exists(paths["none"].replace(".tflite", "_intel_openvino_LNL.tflite"))


# -- android_bench npu rows -----------------------------------------------------------------
@pytest.fixture(scope="session")
def bench_models(golden_xs_exports, tmp_path_factory):
    paths, _, _ = golden_xs_exports
    folder = tmp_path_factory.mktemp("npu_bench")
    compiled = str(folder / "swiftformer_xs_fp32_intel_openvino_LNL.tflite")
    npu.compile_for_npu(paths["none"], INTEL, compiled, {"intel_openvino_graph_backends": "cpu"})
    return {"plain": paths["none"], "compiled": compiled, "folder": folder}


def test_host_npu_rows(bench_models, tmp_path):
    out = tmp_path / "host"
    result = subprocess.run([console_script("swiftformer-android-bench"),
                             "--host", "--models", bench_models["compiled"], bench_models["plain"],
                             "--configs", "npu", "--runs", "2", "--warmup", "1", "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["model"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    compiled = rows[os.path.basename(bench_models["compiled"])]
    assert compiled["status"] == "ok" and compiled["delegate_status"] == "full"
    assert compiled["marks"] == ["npu-full", "host-openvino-cpu"] and compiled["median_ms"] > 0
    plain = rows[os.path.basename(bench_models["plain"])]
    assert "not-precompiled" in plain["marks"]
    assert "`host-openvino-cpu`" in (out / "results.md").read_text()


def test_npu_rows_on_the_fake_device_use_litert_for_real(bench_models, tmp_path):
    """The fake device runs --use_npu through LiteRT's real NPU accelerator here: the strict
    run (CPU forbidden) passes for the compiled model; without the pushed dispatch library
    the row fails and says why."""
    from ai_edge_litert.aot.vendors.intel_openvino.intel_openvino_backend import \
        get_dispatch_dir
    from test_android_bench import run_bench
    libs = tmp_path / "npu_libs"
    libs.mkdir()
    for name in os.listdir(get_dispatch_dir()):
        os.symlink(os.path.join(get_dispatch_dir(), name), libs / name)
    binary = tmp_path / "benchmark_litert_model"
    binary.write_text("#!/bin/false\n")
    out = tmp_path / "results"
    args = ["--models", bench_models["compiled"], "--configs", "npu,cpu:1",
            "--benchmark-binary", str(binary), "--runs", "2", "--warmup", "1"]
    result = run_bench(args + ["--npu-libs", str(libs), "--out", str(out)], tmp_path,
                       FAKE_ADB_TOOL="litert")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "pushed 1 NPU libraries to /data/local/tmp/swiftformer_npu" in result.stdout
    rows = {r["config"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    row = rows["npu"]
    assert row["status"] == "ok" and row["marks"] == ["npu-full"], row
    assert "--require_full_delegation=true" in row["command"] and \
        "--dispatch_library_dir=/data/local/tmp/swiftformer_npu" in row["command"] and \
        row["command"].startswith("LD_LIBRARY_PATH=/data/local/tmp/swiftformer_npu:")
    assert rows["cpu:1"]["status"] == "failed" and "DISPATCH_OP" in rows["cpu:1"]["reason"]
    # without the dispatch library the row fails and says so
    out2 = tmp_path / "results2"
    result = run_bench(args[:3] + ["npu"] + args[4:] + ["--out", str(out2)], tmp_path,
                       FAKE_ADB_TOOL="litert")
    row = json.loads((out2 / "results.json").read_text())["rows"][0]
    assert row["status"] == "failed" and "dispatch" in row["reason"].lower(), row
