"""Files a user downloads or receives are untrusted: checkpoints, .keras files, images and
.tflite files that declare sizes far beyond what they hold are refused from what they
declare, before anything is allocated, with one line naming the file and the problem.
Every hostile input here is made in a few lines of code."""

import json
import os
import re
import resource
import time
import zipfile
import zlib

import numpy as np
import pytest
from conftest import cli_tool

import swiftformer_tf as sf

TINY = {"depths": [1, 1, 1, 2], "widths": [8, 16, 24, 32]}


def _bounded(started, rss_before, seconds=30, megabytes=1500):
    """The work a refusal took: under the issue's 30 s of CPU and 1.5 GB of memory."""
    assert time.process_time() - started < seconds
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before
    assert grown < megabytes, f"peak memory grew by {grown:.0f} MB"


def _start():
    return time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- checkpoints: the model they declare, not each number alone ------------------------------
def _official_tensors(golden_dir):
    return dict(sf.read_checkpoint(os.path.join(golden_dir, "tiny.pth")).tensors)


def _save_pth(tensors, path):
    import torch
    torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
                for k, v in tensors.items()}, path)


def test_one_stage_cannot_declare_the_mlp_ratio_of_all(golden_dir, tmp_path):
    tensors = _official_tensors(golden_dir)
    last = "network.6.0.linear"  # stage 4's attention block of the tiny model: width 40
    tensors[f"{last}.fc1.weight"] = np.zeros((40 * 625, 40, 1, 1), np.float32)  # 4 MB
    tensors[f"{last}.fc1.bias"] = np.zeros(40 * 625, np.float32)
    tensors[f"{last}.fc2.weight"] = np.zeros((40, 40 * 625, 1, 1), np.float32)
    _save_pth(tensors, tmp_path / "ratio.pth")
    started = _start()
    with pytest.raises(sf.CheckpointError, match=r"ratio.pth: stage 1's MLP is 64 wide for "
                                                 r"width 16, not the 10000"):
        sf.load(tmp_path / "ratio.pth")
    _bounded(*started)


def test_a_small_file_cannot_declare_a_huge_model(tmp_path):
    """Every number inside the per-number limits (64 blocks a stage, width 2048, each width
    carried by real tensors): ~120 KB declaring a model of 4 x 64 blocks of width 2048."""
    import torch
    tensors = {}
    for stage in range(4):
        for block in range(63):
            tensors[f"network.{2 * stage}.{block}.layer_scale"] = torch.zeros(1)
        last = f"network.{2 * stage}.63"
        tensors[f"{last}.layer_scale_1"] = torch.zeros(2048)
        tensors[f"{last}.linear.fc1.weight"] = torch.zeros(1, 2048, 1, 1)  # MLP ratio 1/2048
    path = tmp_path / "huge.pth"
    torch.save(tensors, path)
    assert path.stat().st_size < 200_000
    started = _start()
    with pytest.raises(sf.CheckpointError) as err:
        sf.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: declares a model of 242,409,728 parameters") and \
        "at most 100,000,000 are accepted" in message, message
    _bounded(*started)
    # the same sizes as zero-stride views of one element: refused as they are read
    tensors = {k: (torch.zeros(1).expand(v.shape) if v.numel() > 1 else v)
               for k, v in tensors.items()}
    torch.save(tensors, path)
    with pytest.raises(sf.CheckpointError, match=f"{path}: tensor of size .* declares more "
                                                 f"elements than its storage holds"):
        sf.load(path)


def test_the_mlp_ratio_itself_is_bounded():
    with pytest.raises(ValueError, match="mlp_ratio must be above 0 .* at most 16"):
        sf.SwiftFormer(dict(TINY, mlp_ratio=100))
    with pytest.raises(ValueError, match="mlp_ratio must be a finite number, got nan"):
        sf.SwiftFormer(dict(TINY, mlp_ratio=float("nan")))
    with pytest.raises(ValueError, match="num_classes 2000000000 is more than 100,000"):
        sf.SwiftFormer(TINY, num_classes=2_000_000_000)
    # the parameter count the bound uses is the one Keras builds
    from swiftformer_tf.variants import parameter_count
    model = sf.SwiftFormer("XS")
    assert parameter_count(model.config, 1000, True) == model.count_params() == 3_481_320


# -- .keras files: sizes, members and options checked before Keras builds anything -----------
@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory):
    path = tmp_path_factory.mktemp("keras") / "tiny.keras"
    sf.SwiftFormer(TINY, num_classes=3).save(path)
    return path


def _rewrite(source, target, config=None, members=None):
    """``source`` with its config.json's options changed (``config``) or members replaced."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "config.json" and config is not None:
                whole = json.loads(data)
                whole["config"].update(config)
                data = json.dumps(whole).encode()
            if members and info.filename in members:
                continue
            zout.writestr(info, data)
        for name, writer in (members or {}).items():
            writer(zout, name)
    return target


@pytest.mark.parametrize("change, message", [
    ({"variant": dict(TINY, depths=[5000, 1, 1, 2])}, "depths must be from 1 to 64"),
    ({"variant": dict(TINY, mlp_ratio=100000)}, "mlp_ratio must be above 0"),
    ({"num_classes": 2_000_000_000}, "num_classes 2000000000 is more than 100,000"),
    ({"variant": dict(TINY, depths=5)}, "depths must be a list of 4 whole numbers, got 5"),
    ({"weights": "imagenet"}, "sets 'weights': a saved model's configuration cannot load"),
    ({"weights": "/etc/passwd"}, "sets 'weights'"),
    ({"run_this": 1}, "unknown SwiftFormer option(s) in the configuration: 'run_this'"),
])
def test_a_keras_config_is_bounded_before_anything_is_built(tiny_keras, tmp_path, change,
                                                             message):
    path = _rewrite(tiny_keras, tmp_path / "hostile.keras", config=change)
    started = _start()
    with pytest.raises(sf.CheckpointError) as err:
        sf.load(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value), err.value
    _bounded(*started, seconds=10)
    # keras.models.load_model goes through the same from_config: it raises, never builds
    import keras
    with pytest.raises(Exception, match="depths|mlp_ratio|num_classes|weights|unknown"):
        keras.models.load_model(path, compile=False)
    # the constructor's weights= reads .keras files the same way
    with pytest.raises(sf.CheckpointError, match=message.split(":")[0][:20]):
        sf.SwiftFormer(TINY, num_classes=3, weights=str(path))


def test_a_fifo_named_by_weights_is_never_opened(tiny_keras, tmp_path):
    os.mkfifo(tmp_path / "fifo")
    path = _rewrite(tiny_keras, tmp_path / "fifo.keras", config={"weights": str(tmp_path / "fifo")})
    with pytest.raises(sf.CheckpointError, match="sets 'weights'"):
        sf.load(path)


def test_a_deflate_bomb_member_is_refused_before_it_is_read(tiny_keras, tmp_path):
    def deflated(archive, name):  # 64 MB of spaces deflate to ~64 KB
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w") as f:
            for _ in range(64):
                f.write(b" " * 2 ** 20)
    path = _rewrite(tiny_keras, tmp_path / "bomb.keras", members={"config.json": deflated})
    assert path.stat().st_size < 1_000_000
    started = _start()
    with pytest.raises(sf.CheckpointError, match=r"bomb.keras: its config.json inflates to "
                                                 r"67,108,864 bytes \(at most 4,194,304\)"):
        sf.load(path)
    _bounded(*started, seconds=5, megabytes=60)
    path = _rewrite(tiny_keras, tmp_path / "weights_bomb.keras",
                    members={"model.weights.h5": deflated})
    with pytest.raises(sf.CheckpointError, match="its model.weights.h5 inflates to 67,108,864 "
                                                 "bytes, more than the 51,014 parameters"):
        sf.load(path)


def test_a_teacher_that_is_unsafe_is_named_and_leaves_no_run_folder(tmp_path, capsys):
    import keras
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Lambda(lambda x: x[:, 0, 0, :2] * 0)(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "teacher.keras")
    train = cli_tool("train")
    out = tmp_path / "run"
    assert train.main(["--variant", json.dumps(TINY), "--data", "synthetic:32", "--epochs", "1",
                       "--batch-size", "8", "--image-size", "32", "--teacher",
                       str(tmp_path / "teacher.keras"), "--output", str(out)]) == 2
    errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("swiftformer-train:")]
    assert len(errors) == 1 and f"--teacher {tmp_path / 'teacher.keras'}: " in errors[0]
    assert "Lambda" in errors[0] or "safe_mode" in errors[0], errors[0]
    assert not out.exists()


# -- images: one rule from the header, for training, evaluation and calibration -------------
def _png(path, width, height):
    """A real grayscale PNG of zeros, written row by row (never whole in memory)."""
    def chunk(kind, data):
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))
    packer = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    rows_per_piece = max(1, 2 ** 22 // len(row))
    pieces = []
    for start in range(0, height, rows_per_piece):
        pieces.append(packer.compress(row * min(rows_per_piece, height - start)))
    pieces.append(packer.flush())
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", b"".join(pieces)) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def hostile_images(tmp_path_factory):
    """Three classes of ordinary images, one with a 20000x20000 PNG (~400 KB), one with a
    100000x1 PNG (an aspect ratio that the shorter-side resize blows up)."""
    from PIL import Image
    folder = tmp_path_factory.mktemp("images")
    for name in ("cat", "dog", "fox"):
        (folder / name).mkdir()
        for i in range(3):
            Image.new("RGB", (40, 30), (40 * i, 80, 120)).save(folder / name / f"{i}.png")
    _png(folder / "cat" / "huge.png", 20000, 20000)
    _png(folder / "dog" / "thin.png", 100000, 1)
    assert (folder / "cat" / "huge.png").stat().st_size < 1_000_000
    return folder


def test_evaluation_refuses_or_skips_huge_images(hostile_images, tiny_keras, tmp_path, capsys):
    evaluate = cli_tool("evaluate")
    out = tmp_path / "result.json"
    base = ["--model", str(tiny_keras), "--data", f"folder:{hostile_images}", "--image-size",
            "32", "--json", str(out)]
    started = _start()
    assert evaluate.main(base) == 2
    errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("swiftformer-evaluate:")]
    assert len(errors) == 1 and "huge.png: cannot decode this image (declares " in errors[0]
    assert "and 1 more unreadable" in errors[0] and not out.exists()
    assert evaluate.main(base + ["--bad-images", "skip"]) == 0
    assert json.loads(out.read_text())["images"] == 9
    err = capsys.readouterr().err
    assert "leaving out 2 unreadable image(s) of 11" in err and "aspect ratio above 50:1" in err
    _bounded(*started, seconds=60)


def test_calibration_refuses_by_the_same_rule(hostile_images):
    from swiftformer_tf.errors import DataError
    from swiftformer_tf.export.calibration import ImageSource
    for name, message in (("dog", "thin.png: image too large to decode (declares 100000x1 "
                                  "pixels, an aspect ratio above 50:1"),
                          ("cat", "huge.png: image too large to decode (declares 400,000,000 "
                                  "pixels (at most 89.5 MP are decoded)")):
        with pytest.raises(DataError, match=re.escape(message)):
            list(ImageSource(str(hostile_images / name), (32, 32)).calibration(10))


# -- .tflite files declaring huge inputs -----------------------------------------------------
@pytest.fixture(scope="module")
def huge_input_tflite(tmp_path_factory):
    import tensorflow as tf
    fn = tf.function(lambda x: tf.reduce_mean(x * 2.0, axis=(1, 2)),
                     input_signature=[tf.TensorSpec((1, 6000, 6000, 3), tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    path = tmp_path_factory.mktemp("tflite") / "huge_input.tflite"
    path.write_bytes(converter.convert())
    return path


def test_a_tflite_with_a_huge_input_is_one_line(huge_input_tflite, capsys, tmp_path):
    benchmark = cli_tool("benchmark")
    assert benchmark.main([str(huge_input_tflite), "--runs", "2"]) == 2
    errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("swiftformer-benchmark:")]
    assert len(errors) == 1 and errors[0].startswith("swiftformer-benchmark: error: ")
    assert "declares shape [1, 6000, 6000, 3] (108,000,000 values" in errors[-1]
    # android_bench --host: the row fails with the reason, the matrix is written
    bench = cli_tool("android_bench")
    out = tmp_path / "bench"
    assert bench.main(["--host", "--models", str(huge_input_tflite), "--configs", "cpu:1",
                       "--runs", "2", "--out", str(out)]) == 1
    row = json.loads((out / "results.json").read_text())["rows"][0]
    assert row["status"] == "failed" and "declares shape [1, 6000, 6000, 3]" in row["reason"]


def test_resume_takes_results_without_a_device(huge_input_tflite, tmp_path, capsys):
    out = tmp_path / "bench"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"host": True, "device": None, "rows": []}))
    bench = cli_tool("android_bench")
    assert bench.main(["--host", "--models", str(huge_input_tflite), "--configs", "cpu:1",
                       "--runs", "1", "--out", str(out), "--resume"]) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert len(json.loads((out / "results.json").read_text())["rows"]) == 1


# -- out of memory: one line naming what was too large ---------------------------------------
def test_out_of_memory_is_one_line(capsys):
    import tensorflow as tf

    from swiftformer_tf.io_utils import run_command

    def numpy_oom(argv):
        return np.empty((100000, 100000, 100000), np.float32)  # 3.6 PiB: refused at once

    def tf_oom(argv):
        raise tf.errors.ResourceExhaustedError(
            None, None, "OOM when allocating tensor with shape[64,192,1500,1500] and type float")

    assert run_command("tool.py", numpy_oom, []) == 2
    assert run_command("tool.py", tf_oom, []) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(l.startswith("tool.py: error: out of memory: ") for l in lines)
    assert "Unable to allocate 3.55 PiB for an array with shape (100000, 100000, 100000)" \
        in lines[0] and "shape[64,192,1500,1500]" in lines[1]


# -- the phone's shell ------------------------------------------------------------------------
@pytest.mark.parametrize("mask", ["f0; touch X;", "$(touch X)f0", "0", "f0 f1", "0xg", ""])
def test_cpu_mask_is_a_hex_mask_or_refused(mask, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli_tool("android_bench").parse_args(["--models", "m.tflite", "--cpu-mask",
                                                        mask])
    assert exit_info.value.code == 2
    assert "--cpu-mask: expected a non-zero hexadecimal CPU mask" in capsys.readouterr().err
    from swiftformer_tf.android_bench.runner import DeviceRunner
    with pytest.raises(ValueError, match="--cpu-mask"):
        DeviceRunner(adb=None, binary="b", runs=1, warmup=0, cpu_mask=mask or " ")
    assert os.listdir(tmp_path) == []


def test_a_valid_cpu_mask_reaches_the_command():
    from swiftformer_tf.android_bench.runner import checked_cpu_mask
    assert checked_cpu_mask("f0") == "f0" and checked_cpu_mask("0x3") == "0x3"


# -- configuration files and settings -------------------------------------------------------
def test_hugging_face_config_of_wrong_types_or_depth(tmp_path):
    from test_huggingface import make_hf_model
    make_hf_model("XS", seed=0).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(dict(config, depths=5)))
    with pytest.raises(sf.CheckpointError, match="'depths' must be a list of whole numbers, "
                                                 "got 5"):
        sf.load(tmp_path)
    (tmp_path / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(sf.CheckpointError, match="config.json: unreadable"):
        sf.load(tmp_path)


def test_weights_dir_that_is_a_file_is_named(tmp_path, monkeypatch):
    (tmp_path / "weights").write_text("")
    monkeypatch.setenv("SWIFTFORMER_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("SWIFTFORMER_OFFLINE", "1")
    with pytest.raises(sf.CheckpointError, match=re.escape(
            f"SWIFTFORMER_WEIGHTS_DIR={tmp_path}/weights: a file, not a folder")):
        sf.load("imagenet:XS")


def test_an_empty_output_name_is_refused_and_nothing_is_overwritten(golden_dir, tmp_path,
                                                                    monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.keras").write_text("kept")
    cli = cli_tool("import_checkpoint")
    assert cli.main([os.path.join(golden_dir, "tiny.pth"), "-o", ""]) == 2
    assert "the output must end in .keras" in capsys.readouterr().err
    assert (tmp_path / "tiny.keras").read_text() == "kept"
