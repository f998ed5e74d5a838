"""Bad flags: exit status 2 with a one-line reason, before any work and with nothing written."""

import os

import pytest
from conftest import load_script


@pytest.mark.parametrize("script, argv, message", [
    ("tflite/convert.py", ["--runs", "0"], "--runs: must be at least 1, got 0"),
    ("tflite/convert.py", ["--threads", "1", "0"], "--threads: must be at least 1, got 0"),
    ("tflite/convert.py", ["--num-check", "-3"], "--num-check: must be at least 1, got -3"),
    ("tflite/benchmark.py", ["m.tflite", "--threads", "0"], "--threads: must be at least 1"),
    ("tflite/benchmark.py", ["m.tflite", "--warmup", "-1"], "--warmup must not be negative"),
    ("training/evaluate.py", ["--model", "m.keras", "--data", "synthetic", "--batch-size", "0"],
     "--batch-size: must be at least 1, got 0"),
    ("training/evaluate.py", ["--model", "m.keras", "--data", "synthetic", "--image-size",
                              "zero"], "--image-size: expected a whole number, got 'zero'"),
    ("android_bench/run.py", ["--models", "m.tflite", "--cooldown", "-1"],
     "--cooldown must not be negative"),
    ("android_bench/run.py", ["--models", "m.tflite", "--timeout", "0"],
     "--timeout must be positive"),
    ("training/train.py", ["--variant", '{"depths": [1, 1]', "--data", "synthetic"],
     "--variant: not a valid JSON config"),
    ("training/train.py", ["--variant", '{"depths": [1, 1], "widths": [8, 8]}', "--data",
                           "synthetic"], "--variant: not a valid JSON config (SwiftFormer needs 4"),
    ("training/train.py", ["--data", "synthetic", "--image-size", "0"],
     "--image-size at least 16"),
])
def test_bad_numbers_are_refused_by_the_parser(script, argv, message, tmp_path, capsys,
                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        load_script(script).main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_evaluate_checks_its_json_path_before_evaluating(tmp_path, capsys):
    evaluate = load_script("training/evaluate.py")
    missing = tmp_path / "no_such_folder" / "result.json"
    assert evaluate.main(["--model", str(tmp_path / "m.keras"), "--data", "synthetic:8",
                          "--json", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"folder {missing.parent} does not exist" in err and err.count("\n") == 1


def test_a_missing_tfds_calibration_set_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    convert = load_script("tflite/convert.py")
    out = tmp_path / "m.tflite"
    assert convert.main(["--quantize", "int8", "--calibration", "tfds:imagenet2012",
                         "--no-check", "--gpu-check", "off", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    message = [line for line in err.splitlines() if line.startswith("convert.py: error:")]
    assert len(message) == 1 and "tfds:imagenet2012: dataset not available" in message[0]
    assert len(message[0]) < 400 and not out.exists()


def test_a_huge_calibration_image_is_one_line(tmp_path, capsys):
    from PIL import Image
    (tmp_path / "images").mkdir()
    Image.new("1", (20000, 10000)).save(tmp_path / "images" / "huge.png")  # 200 Mpixel, 24 KB
    convert = load_script("tflite/convert.py")
    assert convert.main(["--quantize", "int8", "--calibration", str(tmp_path / "images"),
                         "--no-check", "--gpu-check", "off",
                         "--output", str(tmp_path / "m.tflite")]) == 2
    errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("convert.py:")]
    assert len(errors) == 1 and "huge.png: image too large to decode" in errors[0]
    assert not (tmp_path / "m.tflite").exists()
