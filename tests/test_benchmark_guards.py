"""benchmarks/: the parts that decide what a report may claim: the compute floor, the noise
guard and the peer environment's build. Timings here are made-up lists (labelled), never a
measurement: the point is the arithmetic and the decisions."""

import os
import subprocess
import sys

import pytest
# benchmarks/ is on the path (pytest.ini), as it is for its scripts run by path
import floor
import noise
import peers


def _row(mode, gmacs, median_ms):
    return {"mode": mode, "gmacs": gmacs, "latency": {"1": {"median_ms": median_ms}}}


def test_a_model_faster_than_the_probes_raises_the_floor():
    # synthetic figures: the probes found 40 GMAC/s, a model ran 0.6 GMAC in 12 ms = 50 GMAC/s
    rates = {"xnnpack_fp32_gmacs": 40.0, "xnnpack_int8_gmacs": 100.0}
    models = {"fast": _row("none", 0.6, 12.0), "slow": _row("fp16", 0.6, 30.0),
              "q": _row("int8", 0.6, 10.0)}
    notes = floor.apply_floor(models, rates, "1")
    assert rates["xnnpack_fp32_gmacs"] == pytest.approx(50.0)
    assert rates["probed_xnnpack_fp32_gmacs"] == 40.0
    assert models["fast"]["floor_fraction"] == pytest.approx(1.0)
    assert models["slow"]["floor_fraction"] == pytest.approx(0.4)
    # int8 against the int8 rate: 0.6 GMAC in 10 ms = 60 of 100 GMAC/s
    assert models["q"]["floor_fraction"] == pytest.approx(0.6)
    assert models["q"]["floor_ms"] == pytest.approx(6.0)
    assert len(notes) == 1 and "fast" in notes[0] and "50.0 GMAC/s" in notes[0]
    assert all(row["floor_fraction"] <= 1.0 for row in models.values())


def test_gemm_shapes_and_macs_of_a_real_graph(tmp_path):
    """A converted 1x1 conv and a 3x3 conv: the GEMM view of each and the probe choice."""
    import tensorflow as tf
    k1, k3 = tf.zeros((1, 1, 32, 64)), tf.zeros((3, 3, 64, 48))
    fn = tf.function(lambda x: tf.nn.conv2d(tf.nn.conv2d(x, k1, 1, "VALID"), k3, 1, "SAME"),
                     input_signature=[tf.TensorSpec((1, 20, 10, 32), tf.float32)])
    path = tmp_path / "two_convs.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions(
        [fn.get_concrete_function()]).convert())
    shapes = sorted(floor.matmul_shapes(str(path)))
    assert shapes == [(200, 32, 64, 1), (200, 576, 48, 1)]
    assert floor.count_macs(str(path)) == 200 * 32 * 64 + 200 * 576 * 48
    probes = floor.probe_shapes([str(path)])
    assert probes[0] == floor.STANDARD_SHAPES[0] and probes[1] == (200, 576, 48)


def test_spread_and_overlap():
    # synthetic timings (ms)
    steady = [10.0, 10.1, 10.05, 9.95, 10.0, 10.02, 9.98, 10.1, 9.9, 10.0]
    shaky = [10.0, 14.0, 9.0, 16.0, 10.0, 12.0, 9.5, 15.0, 10.5, 11.0]
    faster = [x * 0.8 for x in steady]
    assert noise.spread(steady) < 0.03 and noise.spread(shaky) > 0.5
    assert not noise.overlaps(steady, faster)
    assert noise.overlaps(shaky, [x * 0.9 for x in shaky])
    guard = noise.NoiseGuard()
    flagged = guard.check_spreads({("a.tflite", 1): steady, ("b.tflite", 1): shaky},
                                  label=lambda key: key[0])
    assert flagged == {("b.tflite", 1)} and not guard.quiet
    assert "1 of 2 timings" in guard.warnings[0] and "b.tflite" in guard.warnings[0]


def test_other_load_sees_a_busy_core():
    """A real spinning process: the guard must see it (one core of os.cpu_count())."""
    quiet = noise.other_load(1.0)
    if quiet is None:
        pytest.skip("no /proc/stat here")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = noise.other_load(1.5)
    finally:
        spinner.kill()
    # The spinner adds a core's worth to a quiet machine; where the suite's other worker
    # already holds the cores, it gets a share of them, and the machine must read busy.
    if quiet < noise.BUSY_LIMIT:
        assert busy > quiet + 0.5 / (os.cpu_count() or 1)
    guard = noise.NoiseGuard(sample_seconds=0.5)
    guard.samples["x"] = busy
    assert busy > noise.BUSY_LIMIT


def test_peer_environment_builds_with_pins_and_marks_completion(tmp_path):
    """The build's commands, with a stand-in for subprocess.run (no 2 GB install here):
    pinned packages, the mark written only after success, an interrupted build redone."""
    python = str(tmp_path / ".venv-peer" / "bin" / "python")
    calls, lines = [], []

    def fake_run(command, **kwargs):
        calls.append(command)
        if command[1:3] == ["-m", "venv"]:
            os.makedirs(os.path.join(command[3], "bin"))
            open(os.path.join(command[3], "pyvenv.cfg"), "w").close()
            open(os.path.join(command[3], "bin", "python"), "w").close()
        return subprocess.CompletedProcess(command, 0, "", "")

    assert peers.ensure_environment(python, lines.append, run=fake_run) == python
    assert calls[1][-len(peers.PEER_REQUIREMENTS):] == list(peers.PEER_REQUIREMENTS)
    assert "torch==2.13.0" in calls[1] and "litert-torch==0.10.0" in calls[1]
    assert os.path.isfile(tmp_path / ".venv-peer" / peers.COMPLETE_MARK)
    assert any("building the peer environment" in l for l in lines)
    assert peers.is_complete(python)

    # a failed install: a reason, no mark, and the next call builds again
    os.remove(tmp_path / ".venv-peer" / peers.COMPLETE_MARK)

    def failing_run(command, **kwargs):
        fake_run(command) if command[1:3] == ["-m", "venv"] else None
        code = 1 if "pip" in command else 0
        return subprocess.CompletedProcess(command, code, "", "ERROR: No matching distribution")

    reason = peers.ensure_environment(python, lines.append, run=failing_run)
    assert reason.startswith("!could not build") and "No matching distribution" in reason
    assert not os.path.isfile(tmp_path / ".venv-peer" / peers.COMPLETE_MARK)


def test_peer_build_never_deletes_a_folder_it_did_not_make(tmp_path):
    other = tmp_path / "project"
    (other / "bin").mkdir(parents=True)
    (other / "keep.txt").write_text("mine")
    reason = peers.ensure_environment(str(other / "bin" / "python"), print,
                                      run=lambda *a, **k: pytest.fail("must not run"))
    assert reason.startswith("!") and (other / "keep.txt").read_text() == "mine"


def test_no_peer_flag_leaves_the_peers_out():
    from benchmarks.run import parse_args
    assert "peer" in parse_args(["--quick", "--no-peer"]).skip
    assert "peer" not in parse_args(["--quick"]).skip
