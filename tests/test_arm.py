"""The phone's CPU kernels without a phone: LiteRT's aarch64 build under QEMU user mode
(swiftformer_tf.runtime.arm), on the golden XS (fp32 at 160x192, int8 at 64x64).

`swiftformer-setup-arm` sets the emulator up (CI runs it). Without it these
tests skip, unless SWIFTFORMER_REQUIRE_ARM=1 (set by .ci/run) turns the skip into a failure.
What the runtime computes on ARM is checked against what the x86 interpreter computes on the
same file and input: the emulator proves the ARM kernels' answers and instruction counts,
never their time."""

import json
import os

import pytest
from conftest import TOLERANCE, cli_tool

from swiftformer_tf.runtime import arm, arm_emulator

@pytest.fixture(scope="module")
def emulator():
    if not arm.is_ready():
        message = f"no ARM emulator at {arm_emulator.default_dir()} ({arm.SETUP_HINT})"
        if os.environ.get("SWIFTFORMER_REQUIRE_ARM") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def golden_xs(emulator, golden_xs_exports, golden_xs_int8):
    """The suite's shared exports of the golden XS: fp32 at 160x192, and int8 at 64x64 made
    by swiftformer-export --check-arm cortex-a76 (16 built-in photographs calibrate it, 6
    others are checked on the emulated Cortex-A76)."""
    (paths, _, _), (report, int8) = golden_xs_exports, golden_xs_int8
    assert "arm" in report, "the shared int8 export ran without --check-arm"
    return {"none": paths["none"], "int8": int8, "report": report}


@pytest.fixture(scope="module")
def int8_on_cortex_a76(golden_xs):
    return arm.run_on_arm(golden_xs["int8"], "cortex-a76", profile=True)


def test_fp32_on_cortex_a76_is_x86s_answer(golden_xs):
    run = arm.run_on_arm(golden_xs["none"], "cortex-a76")
    assert run.status == "ok", run.reason
    assert run.vs_host["max_rel_diff_vs_host"] <= TOLERANCE, run.vs_host
    assert {"asimddp", "fphp"} <= set(run.cpu_features)
    # XNNPACK's fp32 GEMMs are NEON FMLA: most of the arithmetic, and no int8 dot products
    assert run.instruction_mix["fp32_fma"] > 0.3 * run.guest_instructions
    assert run.instruction_mix["int8_dot"] == 0


def test_int8_on_cortex_a76_and_i8mm_agree_with_x86(int8_on_cortex_a76, golden_xs):
    i8mm = arm.run_on_arm(golden_xs["int8"], "i8mm", profile=True)
    for run in (int8_on_cortex_a76, i8mm):
        assert run.status == "ok", run.reason
        assert run.vs_host["cosine_vs_host"] >= 0.999 and \
            run.vs_host["top1_agreement_vs_host"] == 1.0, (run.cpu, run.vs_host)
    # each CPU took its own int8 kernels: SDOT on the Cortex-A76, SMMLA where i8mm exists
    a76 = int8_on_cortex_a76.instruction_mix
    assert a76["int8_dot"] > 0.3 * int8_on_cortex_a76.guest_instructions
    assert a76["int8_mmla"] == 0 and "i8mm" not in int8_on_cortex_a76.cpu_features
    assert i8mm.instruction_mix["int8_mmla"] > 0.2 * i8mm.guest_instructions
    assert "i8mm" in i8mm.cpu_features
    assert i8mm.guest_instructions < int8_on_cortex_a76.guest_instructions
    # the profile names the kernels from the runtime's symbols, and accounts for every
    # instruction of the inference: most in the int8 GEMMs, of the kind the CPU has
    for run, isa in ((int8_on_cortex_a76, "neondot"), (i8mm, "i8mm")):
        assert sum(run.by_function.values()) == run.guest_instructions
        gemm = {f: n for f, n in run.by_function.items() if "qs8_qc8w_gemm" in f}
        assert sum(gemm.values()) > 0.4 * run.guest_instructions, list(run.by_function)[:5]
        assert isa in max(gemm, key=gemm.get), gemm
        assert run.by_op_type()["GEMM (1x1 convs, linear layers)"] == sum(gemm.values())


def test_instruction_counts_repeat(int8_on_cortex_a76, golden_xs):
    again = arm.run_on_arm(golden_xs["int8"], "cortex-a76")
    first, second = int8_on_cortex_a76.guest_instructions, again.guest_instructions
    assert first > 1e6 and abs(second - first) <= 1e-3 * first, (first, second)


def test_bench_rows_fail_and_mismatch_with_reasons(golden_xs, tmp_path):
    """android_bench/run.py --host with arm configs: counts and the answer against x86 in
    results.json; fp16 on a CPU without fp16 arithmetic fails with the reason and the matrix
    goes on; QEMU 7.2's wrong SME emulation gives a row marked mismatch; no latency is
    tabled or plotted for these rows."""
    bench = cli_tool("android_bench")
    out = tmp_path / "bench"
    assert bench.main(["--host", "--models", golden_xs["int8"], "--configs",
                       "arm:cortex-a53:fp16,arm:cortex-a76,arm:sme-qemu7", "--out",
                       str(out)]) == 0
    rows = {r["config"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    a53, a76, sme = rows["arm:cortex-a53:fp16"], rows["arm:cortex-a76"], rows["arm:sme-qemu7"]
    assert a53["status"] == "failed" and "SIGILL" in a53["reason"] and \
        "fp16" in a53["reason"], a53
    assert a76["status"] == "ok" and isinstance(a76["guest_instructions"], int)
    assert a76["cosine_vs_host"] >= 0.999 and a76["max_rel_diff_vs_host"] <= 1e-3
    assert a76["marks"] == ["emulated-arm"] and a76.get("median_ms") is None
    assert sme["marks"] == ["emulated-arm", "mismatch"] and sme["cosine_vs_host"] < 0.9, sme
    table = (out / "results.md").read_text()
    assert "MISMATCH" in table and "Latency" not in table
    assert not (out / "latency_per_config.png").exists()


def test_convert_checks_on_arm(golden_xs):
    """swiftformer-export --check-arm: the check images through the ARM kernels, against Keras and
    against x86 on the same file, in the report and its summary line."""
    entry = golden_xs["report"]["arm"][0]
    assert entry["cpu"] == "cortex-a76" and entry["status"] == "ok", entry
    assert entry["vs_keras"]["images"] == 6 and entry["vs_keras"]["cosine_min"] > 0.99
    assert entry["vs_host"]["cosine_vs_host"] >= 0.999
    assert entry["guest_instructions"] > 1e6
    assert entry["summary"].startswith("cortex-a76: 6 images, cosine mean ")


def test_bad_cpu_names_and_no_emulator_are_clear(tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match="cortex-a53, cortex-a76, i8mm, sme"):
        arm.parse_cpu("cortex-a77")
    with pytest.raises(SystemExit):
        cli_tool("export").parse_args(["--check-arm", "a76"])
    assert "--check-arm: unknown emulated ARM CPU 'a76'" in capsys.readouterr().err
    monkeypatch.setenv(arm_emulator.ENV_DIR, str(tmp_path / "none"))
    run = arm.run_on_arm(str(tmp_path / "any.tflite"), "cortex-a76:fp16")
    assert run.status == "unavailable" and "swiftformer-setup-arm" in run.reason
    assert run.cpu == "cortex-a76:fp16"
