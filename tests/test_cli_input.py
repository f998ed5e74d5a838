"""Bad flags: exit status 2 with a one-line reason, before any work and with nothing written."""

import os
import sys

import pytest
from conftest import console_script, cli_tool


@pytest.mark.parametrize("script, argv, message", [
    ("export", ["--runs", "0"], "--runs: must be at least 1, got 0"),
    ("export", ["--threads", "1", "0"], "--threads: must be at least 1, got 0"),
    ("export", ["--num-check", "-3"], "--num-check: must be at least 1, got -3"),
    ("benchmark", ["m.tflite", "--threads", "0"], "--threads: must be at least 1"),
    ("benchmark", ["m.tflite", "--warmup", "-1"], "--warmup: must be at least 0, got -1"),
    ("evaluate", ["--model", "m.keras", "--data", "synthetic", "--batch-size", "0"],
     "--batch-size: must be at least 1, got 0"),
    ("evaluate", ["--model", "m.keras", "--data", "synthetic", "--image-size",
                              "zero"], "--image-size: expected a whole number, got 'zero'"),
    ("android_bench", ["--models", "m.tflite", "--cooldown", "-1"],
     "--cooldown: must be at least 0, got -1"),
    ("android_bench", ["--models", "m.tflite", "--timeout", "0"],
     "--timeout: must be above 0, got 0"),
    # NaN and infinities parse as floats: every numeric flag refuses them by name
    ("android_bench", ["--models", "m.tflite", "--timeout", "nan"],
     "--timeout: expected a finite number, got 'nan'"),
    ("android_bench", ["--models", "m.tflite", "--cooldown", "nan"],
     "--cooldown: expected a finite number, got 'nan'"),
    ("train", ["--data", "synthetic", "--val-split", "nan"],
     "--val-split: expected a finite number, got 'nan'"),
    ("train", ["--data", "synthetic", "--lr", "inf"],
     "--lr: expected a finite number, got 'inf'"),
    ("train", ["--variant", '{"depths": [1, 1, 1, 2], "widths": [8, 16, 24, 32], '
                           '"mlp_ratio": NaN}', "--data", "synthetic"],
     "--variant: not a valid JSON config (mlp_ratio must be a finite number, got nan)"),
    ("train", ["--data", "synthetic", "--max-steps", "0"],
     "--max-steps: must be at least 1, got 0"),
    ("train", ["--data", "synthetic", "--num-classes", "0"],
     "--num-classes: must be at least 1, got 0"),
    ("export", ["--selective", "nan"], "--selective: expected a finite number"),
    ("train", ["--variant", '{"depths": [1, 1]', "--data", "synthetic"],
     "--variant: not a valid JSON config"),
    ("train", ["--variant", '{"depths": [1, 1], "widths": [8, 8]}', "--data",
                           "synthetic"], "--variant: not a valid JSON config (SwiftFormer needs 4"),
    ("train", ["--data", "synthetic", "--image-size", "0"],
     "--image-size at least 16"),
])
def test_bad_numbers_are_refused_by_the_parser(script, argv, message, tmp_path, capsys,
                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli_tool(script).main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_evaluate_checks_its_json_path_before_evaluating(tmp_path, capsys):
    evaluate = cli_tool("evaluate")
    missing = tmp_path / "no_such_folder" / "result.json"
    assert evaluate.main(["--model", str(tmp_path / "m.keras"), "--data", "synthetic:8",
                          "--json", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"folder {missing.parent} does not exist" in err and err.count("\n") == 1


def test_a_missing_tfds_calibration_set_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    convert = cli_tool("export")
    out = tmp_path / "m.tflite"
    assert convert.main(["--quantize", "int8", "--calibration", "tfds:imagenet2012",
                         "--no-check", "--gpu-check", "off", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    message = [line for line in err.splitlines() if line.startswith("swiftformer-export: error:")]
    assert len(message) == 1 and "tfds:imagenet2012: dataset not available" in message[0]
    assert len(message[0]) < 400 and not out.exists()


def test_a_huge_calibration_image_is_one_line(tmp_path, capsys):
    from PIL import Image
    (tmp_path / "images").mkdir()
    Image.new("1", (20000, 10000)).save(tmp_path / "images" / "huge.png")  # 200 Mpixel, 24 KB
    convert = cli_tool("export")
    assert convert.main(["--quantize", "int8", "--calibration", str(tmp_path / "images"),
                         "--no-check", "--gpu-check", "off",
                         "--output", str(tmp_path / "m.tflite")]) == 2
    errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("swiftformer-export:")]
    assert len(errors) == 1 and "huge.png: image too large to decode" in errors[0]
    assert not (tmp_path / "m.tflite").exists()


# -- the one error wrapper -------------------------------------------------------------------
def _console_scripts():
    """{console script: cli module} as setup.py declares them."""
    import re
    from conftest import ROOT
    text = open(os.path.join(ROOT, "setup.py")).read()
    return dict(re.findall(r'\("([a-z0-9-]+)", "([a-z_]+)"\)', text))


COMMAND_LINE_TOOLS = [f"swiftformer_tf/cli/{module}.py" for module in _console_scripts().values()]
SHIMS = {"tflite/convert.py": "export", "tflite/benchmark.py": "benchmark",
         "tflite/compile_npu.py": "compile_npu", "tflite/setup_software_gpu.py": "setup_software_gpu",
         "tflite/setup_arm_emulator.py": "setup_arm_emulator", "training/train.py": "train",
         "training/evaluate.py": "evaluate", "training/benchmark_qat.py": "benchmark_qat",
         "training/benchmark_synthetic.py": "benchmark_synthetic",
         "android_bench/run.py": "android_bench", "android_bench/report.py": "android_report"}


def test_every_tool_is_a_console_script_and_every_documented_path_a_shim():
    """setup.py installs one console script per module of swiftformer_tf/cli/; the script
    paths the docs used before are two-line shims over the same main, and one of them runs."""
    import ast
    import subprocess
    from conftest import ROOT
    scripts = _console_scripts()
    modules = {f[:-3] for f in os.listdir(os.path.join(ROOT, "swiftformer_tf", "cli"))
               if f.endswith(".py") and f not in ("__init__.py", "installing.py")}
    assert set(scripts.values()) == modules
    assert len(scripts) == len(set(scripts.values())), "two scripts for one tool"
    for name in scripts:
        console_script(f"swiftformer-{name}")  # installed
    for path, module in SHIMS.items():
        tree = ast.parse(open(os.path.join(ROOT, path)).read())
        imports = [(n.module, [a.name for a in n.names]) for n in ast.walk(tree)
                   if isinstance(n, ast.ImportFrom)]
        assert imports == [(f"swiftformer_tf.cli.{module}", ["main"])], path
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tflite", "convert.py"), "--help"],
                            capture_output=True, text=True, timeout=120, cwd="/")
    assert result.returncode == 0 and "usage: swiftformer-export" in result.stdout, result.stderr


@pytest.mark.parametrize("relative_path", COMMAND_LINE_TOOLS)
def test_every_tool_reports_errors_through_the_one_wrapper(relative_path):
    """Each tool's main() hands its work to io_utils.run_command, and none prints errors
    of its own (a second wrapper would drift: other exit codes, tracebacks, no SIGTERM)."""
    import ast
    from conftest import ROOT
    tree = ast.parse(open(os.path.join(ROOT, relative_path)).read())
    functions = {f.name: f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
    calls = {ast.unparse(c.func) for c in ast.walk(functions["main"]) if isinstance(c, ast.Call)}
    # the set-up tools go through installing.main, whose command line calls run_command
    assert calls & {"run_command", "installing.main"}, calls
    assert not {"fail", "_fail"} & set(functions)
    texts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
             and isinstance(n.value, str)]
    assert not [t for t in texts if ": error:" in t], "prints its own error lines"


def test_the_wrapper_gives_one_line_status_2_and_restores_sigterm(capsys, monkeypatch):
    import errno
    import signal

    from swiftformer_tf.errors import SwiftFormerError
    from swiftformer_tf.io_utils import run_command

    def full_disk(_argv):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/out.tflite")

    before = signal.getsignal(signal.SIGTERM)
    assert run_command("tool", full_disk) == 2
    assert capsys.readouterr().err == "tool: error: /data/out.tflite: No space left on device\n"
    assert signal.getsignal(signal.SIGTERM) is before

    def multi_line(_argv):
        raise SwiftFormerError("first\n  second")
    assert run_command("tool", multi_line) == 2
    assert capsys.readouterr().err == "tool: error: first second\n"

    def interrupted(_argv):
        raise KeyboardInterrupt
    assert run_command("tool", interrupted) == 130
    assert capsys.readouterr().err == "tool: interrupted\n"

    def bug(_argv):
        raise ZeroDivisionError("not an expected failure")
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        run_command("tool", bug)
    monkeypatch.setenv("SWIFTFORMER_TRACEBACK", "1")
    with pytest.raises(SwiftFormerError):
        run_command("tool", multi_line)


def test_a_closed_pipe_on_stdout_is_no_error():
    """``compile_npu.py --list-npu | head -1``: the reader goes away; a real closed pipe
    (its read end shut before the tool writes), the tool stops quietly."""
    import subprocess
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([console_script("swiftformer-compile-npu"),
                                 "--list-npu"], stdout=write_end, stderr=subprocess.PIPE,
                                text=True, timeout=300)
    finally:
        os.close(write_end)
    assert result.returncode == 141, result.stderr[-2000:]
    assert "Broken pipe" not in result.stderr and "error" not in result.stderr.lower()


def _tiny_checkpoint(path, variant=None):
    """An official-format checkpoint of a random model, written in code (safetensors)."""
    from safetensors.numpy import save_file

    import swiftformer_tf as sf
    from swiftformer_tf.checkpoints import export_state_dict
    model = sf.SwiftFormer(variant or {"depths": [1, 1, 1, 2], "widths": [8, 16, 24, 32]})
    save_file(export_state_dict(model.weights), str(path))
    return path


def _converter(*args, **popen):
    import subprocess
    from conftest import ROOT
    return subprocess.Popen([console_script("swiftformer-import"), *map(str, args)],
                            env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **popen)


def test_a_full_disk_on_output_is_one_line_and_leaves_nothing(tmp_path):
    """The disk fills while the .keras file is written. Simulated with a file-size limit
    (RLIMIT_FSIZE, SIGXFSZ ignored): the kernel then fails the write with EFBIG exactly
    where a full disk fails it with ENOSPC."""
    import resource
    import signal
    checkpoint = _tiny_checkpoint(tmp_path / "tiny.safetensors")

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, 32 * 1024))

    process = _converter(checkpoint, "-o", tmp_path / "tiny.keras", preexec_fn=small_files)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 2, err
    assert err.strip().splitlines() == [
        f"swiftformer-import: error: {tmp_path / 'tiny.keras'}: cannot write (File too large)"]
    assert os.listdir(tmp_path) == ["tiny.safetensors"]  # no partial, no hidden temporary


def test_sigterm_while_saving_leaves_no_partial_keras_file(tmp_path):
    """swiftformer-import killed while it writes the .keras file (a large model, so that
    the write lasts long enough to be caught) leaves neither the output nor its hidden
    temporary file."""
    import signal
    import time
    checkpoint = _tiny_checkpoint(tmp_path / "l3.safetensors", "L3")
    out = tmp_path / "out"
    out.mkdir()
    process = _converter(checkpoint, "-o", out / "l3.keras")
    deadline = time.time() + 300
    while not [p for p in os.listdir(out) if p.endswith(".tmp.keras")]:
        assert process.poll() is None and time.time() < deadline, "never reached the save"
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert os.listdir(out) == []
