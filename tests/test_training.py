"""Training: data pipelines (tfds mock data, folders), the recipe's pieces, distribution,
resume after SIGKILL, the NaN stop, and a short run that learns."""

import json
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import console_script

from swiftformer_tf.training import data as data_lib
from swiftformer_tf.training.trainer import EpochCosineSchedule, _no_decay, adaptive_clip

TINY = '{"depths": [1, 1, 1, 2], "widths": [8, 16, 24, 32]}'


def run_train(*args, timeout=600):
    return subprocess.run([console_script("swiftformer-train"), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def test_imagenet_pipeline_on_tfds_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=10, policy=tfds.testing.MockPolicy.USE_CODE):
        train, val = data_lib.resolve("tfds:imagenet2012")
        assert train.num_classes == 1000 and train.size == 10
        for enabled in (True, False):
            aug = data_lib.Augmentation(rand_augment=True, mixup=0.8, cutmix=1.0, enabled=enabled)
            images, targets, labels = next(iter(data_lib.train_dataset(train, 4, 224, aug, 0, 0)))
            assert images.shape == (4, 224, 224, 3) and images.dtype == tf.float32
            assert targets.shape == (4, 1000) and labels.dtype == tf.int32
            np.testing.assert_allclose(tf.reduce_sum(targets, -1), 1.0, rtol=1e-5)
            assert ((labels >= 0) & (labels < 1000)).numpy().all()
            assert np.isfinite(images.numpy()).all() and abs(float(tf.reduce_mean(images))) < 3
        images, labels = next(iter(data_lib.eval_dataset(val, 5, 224)))
        assert images.shape == (5, 224, 224, 3) and labels.shape == (5,)


def test_missing_imagenet_says_how_to_get_it(tmp_path):
    with pytest.raises(data_lib.DataError, match="manual download.*downloads/manual"):
        data_lib.resolve("tfds:imagenet2012", data_dir=str(tmp_path))
    result = run_train("--data", "tfds:imagenet2012", "--data-dir", tmp_path)
    assert result.returncode == 2 and "Nothing is downloaded" in result.stderr


def test_folder_dataset_with_val_split(tmp_path):
    from PIL import Image
    for label, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (tmp_path / label).mkdir()
        for i in range(5):
            Image.new("RGB", (30 + i, 20), colour).save(tmp_path / label / f"{i}.png")
    train, val = data_lib.resolve(f"folder:{tmp_path}", val_split=0.2)
    assert (train.size, val.size, train.class_names) == (8, 2, ["blue", "red"])
    images, labels = next(iter(data_lib.eval_dataset(val, 2, 16, normalize=False)))
    assert images.shape == (2, 16, 16, 3)
    with pytest.raises(data_lib.DataError, match="dataset folder not found"):
        data_lib.resolve(f"folder:{tmp_path / 'nope'}")


def _image_folder(folder, classes, per_class=3):
    from PIL import Image
    for index, label in enumerate(classes):
        (folder / label).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (24 + i, 20), (40 * index, 80, 120)).save(folder / label / f"{i}.png")


def test_folder_datasets_refuse_what_would_shift_or_fake_labels(tmp_path):
    _image_folder(tmp_path / "ok", ["cat", "dog"])
    (tmp_path / "ok" / ".ipynb_checkpoints").mkdir()  # not a class: would become class 0
    train, val = data_lib.resolve(f"folder:{tmp_path / 'ok'}", val_split=0.5)
    assert train.class_names == ["cat", "dog"] and train.size + val.size == 6
    _image_folder(tmp_path / "one", ["cat"])
    with pytest.raises(data_lib.DataError, match="at least two.*found 1: cat"):
        data_lib.resolve(f"folder:{tmp_path / 'one'}")
    _image_folder(tmp_path / "empty", ["cat", "dog"])
    (tmp_path / "empty" / "eel").mkdir()
    with pytest.raises(data_lib.DataError, match="empty/eel: class folder without images"):
        data_lib.resolve(f"folder:{tmp_path / 'empty'}")


def test_evaluate_scores_every_image_of_a_folder(tmp_path, capsys):
    import swiftformer_tf as sf
    from conftest import cli_tool
    sf.SwiftFormer(json.loads(TINY), num_classes=2).save(tmp_path / "tiny.keras")
    _image_folder(tmp_path / "data", ["cat", "dog"], per_class=5)
    evaluate = cli_tool("evaluate")
    out = tmp_path / "result.json"
    assert evaluate.main(["--model", str(tmp_path / "tiny.keras"), "--data",
                          f"folder:{tmp_path / 'data'}", "--image-size", "32",
                          "--json", str(out)]) == 0
    assert json.loads(out.read_text())["images"] == 10  # all of them, not a 10 % split
    _image_folder(tmp_path / "split" / "train", ["cat", "dog"], per_class=4)
    _image_folder(tmp_path / "split" / "val", ["cat", "dog"], per_class=2)
    assert evaluate.main(["--model", str(tmp_path / "tiny.keras"), "--data",
                          f"folder:{tmp_path / 'split'}", "--image-size", "32",
                          "--json", str(out)]) == 0
    assert json.loads(out.read_text())["images"] == 4  # its val/
    out.unlink()
    sf.SwiftFormer(json.loads(TINY), num_classes=3).save(tmp_path / "three.keras")
    assert evaluate.main(["--model", str(tmp_path / "three.keras"), "--data",
                          f"folder:{tmp_path / 'data'}", "--json", str(out)]) == 2
    assert "has 3 output classes" in capsys.readouterr().err and not out.exists()


def test_an_unreadable_image_is_named_and_left_out_on_request(tmp_path, capsys):
    """tf.data stops on a file it cannot decode with an error that names no file; the tools
    name it (--bad-images stop, the default) or leave it out and say so (skip)."""
    import swiftformer_tf as sf
    from conftest import cli_tool
    sf.SwiftFormer(json.loads(TINY), num_classes=2).save(tmp_path / "tiny.keras")
    _image_folder(tmp_path / "data", ["cat", "dog"], per_class=4)
    broken = tmp_path / "data" / "dog" / "2b.png"  # sorts between good files
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))  # a PNG signature, then no image
    evaluate = cli_tool("evaluate")
    out = tmp_path / "result.json"
    base = ["--model", str(tmp_path / "tiny.keras"), "--data", f"folder:{tmp_path / 'data'}",
            "--image-size", "32", "--json", str(out)]
    assert evaluate.main(base) == 2
    errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("swiftformer-evaluate:")]
    assert len(errors) == 1 and f"{broken}: cannot decode this image (" in errors[0]
    assert "remove it, or pass --bad-images skip" in errors[0] and not out.exists()
    assert evaluate.main(base + ["--bad-images", "skip"]) == 0
    assert json.loads(out.read_text())["images"] == 8
    assert f"leaving out 1 unreadable image(s) of 9: {broken} (" in capsys.readouterr().err

    train = cli_tool("train")
    run = ["--variant", TINY, "--data", f"folder:{tmp_path / 'data'}", "--val-split", "0.25",
           "--epochs", "1", "--batch-size", "2", "--image-size", "32", "--save-every", "0",
           "--no-augment", "--warmup-epochs", "0"]
    assert train.main(run + ["--output", str(tmp_path / "stop")]) == 2
    errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("swiftformer-train:")]
    assert len(errors) == 1 and f"{broken}: cannot decode this image (" in errors[0]
    assert not (tmp_path / "stop" / "model.keras").exists()
    assert train.main(run + ["--bad-images", "skip", "--output", str(tmp_path / "skip")]) == 0
    assert "leaving out 1 unreadable image(s) of " in capsys.readouterr().err
    assert (tmp_path / "skip" / "model.keras").exists()
    # the trained model keeps its classes' names (a TFLite export with --metadata writes them)
    assert sf.load(tmp_path / "skip" / "model.keras").class_names == ["cat", "dog"]


@pytest.mark.slow  # 100 s (five runs); default: test_an_unreadable_image_is_named_and_left_out_on_request (train.py --output)
def test_a_run_folder_belongs_to_one_run(tmp_path, capsys):
    from conftest import cli_tool
    train = cli_tool("train")
    base = ["--variant", TINY, "--data", "synthetic:64", "--epochs", "1", "--batch-size", "16",
            "--image-size", "32", "--max-steps", "1", "--save-every", "0", "--no-augment",
            "--warmup-epochs", "0"]
    run = tmp_path / "run"
    assert train.main(base + ["--output", str(run)]) == 0
    capsys.readouterr()
    first = (run / "log.csv").read_text()
    cases = [  # (extra flags, what the one-line error says)
        ([], "holds a run already; --resume continues it, --overwrite starts over"),
        (["--resume", "--seed", "1"], "--resume with a different seed than the run in"),
    ]
    for extra, message in cases:
        assert train.main(base + extra + ["--output", str(run)]) == 2
        assert message in capsys.readouterr().err
    assert (run / "log.csv").read_text() == first  # untouched by the refused runs
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    assert train.main(base + ["--output", str(tmp_path / "notes")]) == 2
    assert "not empty and not a run folder" in capsys.readouterr().err
    (run / "run_config.json").write_text("[")
    assert train.main(base + ["--resume", "--output", str(run)]) == 2
    assert "run_config.json: unreadable" in capsys.readouterr().err
    (run / "run_config.json").write_text("{}")
    assert train.main(base + ["--seed", "1", "--overwrite", "--output", str(run)]) == 0
    assert json.loads((run / "run_config.json").read_text())["seed"] == 1
    assert len((run / "log.csv").read_text().splitlines()) == len(first.splitlines())


def test_epochs_replay_exactly_from_any_batch():
    train, _ = data_lib.synthetic_splits(48, 8, size=40)
    aug = data_lib.Augmentation(rand_augment=True, mixup=0.8, cutmix=1.0)
    full = list(data_lib.train_dataset(train, 8, 32, aug, seed=3, epoch=2))
    resumed = list(data_lib.train_dataset(train, 8, 32, aug, seed=3, epoch=2, skip_batches=4))
    assert len(full) == 6 and len(resumed) == 2
    for a, b in zip(full[4:], resumed):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x.numpy(), y.numpy())
    other = list(data_lib.train_dataset(train, 8, 32, aug, seed=3, epoch=3))
    assert not np.array_equal(full[0][0].numpy(), other[0][0].numpy())


def test_schedule_and_parameter_groups():
    schedule = EpochCosineSchedule(2e-3, epochs=300, steps_per_epoch=10, warmup_epochs=5,
                                   warmup_lr=1e-6, min_lr=1e-5)
    lr = lambda epoch: float(schedule(epoch * 10 + 3))  # noqa: E731
    assert lr(0) == pytest.approx(1e-6)
    assert lr(1) == pytest.approx(1e-6 + (2e-3 - 1e-6) / 5)
    assert lr(5) == pytest.approx(1e-5 + 0.5 * (2e-3 - 1e-5) * (1 + np.cos(np.pi * 5 / 300)))
    assert lr(299) == pytest.approx(1e-5, rel=0.01)
    import swiftformer_tf as sf
    model = sf.SwiftFormer({"depths": [1, 1, 1, 1], "widths": [8, 16, 24, 32]}, num_classes=3)
    decayed = {v.path.split("/")[-1] for v in model.trainable_variables if not _no_decay(v)}
    assert decayed == {"kernel", "layer_scale", "layer_scale_1", "layer_scale_2", "w_g"}
    from swiftformer_tf.training.trainer import _unit_axes
    dwconv = model.stages[0].blocks[0].local_representation.dwconv.kernel
    assert _unit_axes(dwconv) == [0, 1, 3]  # one unit per channel, as torch's (C, 1, 3, 3)


def test_adaptive_gradient_clipping():
    import keras
    dense = keras.layers.Dense(2)
    dense.build((None, 3))
    dense.kernel.assign(np.ones((3, 2)))
    grad = tf.constant([[10.0, 0.001], [10.0, 0.001], [10.0, 0.001]])
    clipped = adaptive_clip([grad], [dense.kernel], clip=0.01)[0].numpy()
    # unit = output column: norm sqrt(3); clipped to 0.01 * sqrt(3) where larger
    np.testing.assert_allclose(np.linalg.norm(clipped[:, 0]), 0.01 * np.sqrt(3), rtol=1e-5)
    np.testing.assert_allclose(clipped[:, 1], 0.001)


@pytest.mark.slow  # 2.5 min; default: test_a_run_folder_belongs_to_one_run (--resume checks)
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    common = ["--variant", TINY, "--data", "synthetic:240", "--epochs", "2", "--batch-size", "16",
              "--image-size", "32", "--save-every", "3", "--deterministic", "--warmup-epochs", "1"]
    reference = run_train(*common, "--output", tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr[-2000:]
    run_dir = tmp_path / "killed"
    process = subprocess.Popen([console_script("swiftformer-train"), *common, "--output", str(run_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = run_dir / "checkpoints" / "ckpt-6.index"  # mid-epoch 1 (15 steps per epoch)
    deadline = time.time() + 300
    while not target.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert target.exists()
    steps_saved = sorted(int(p.name.split("-")[1].split(".")[0])
                         for p in (run_dir / "checkpoints").glob("ckpt-*.index"))
    assert max(steps_saved) < 30  # it really was killed before the end
    resumed = run_train(*common, "--output", run_dir, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    import re
    step = int(re.search(r"resumed from \S+ at step (\d+)", resumed.stdout).group(1))
    assert step in steps_saved and step >= 3  # lost at most the steps since that save
    import keras
    a = keras.models.load_model(tmp_path / "ref" / "model.keras")
    b = keras.models.load_model(run_dir / "model.keras")
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-5, atol=1e-7, err_msg=x.path)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, capsys):
    from conftest import cli_tool
    train = cli_tool("train")
    assert train.main(["--variant", TINY, "--data", "synthetic:32", "--epochs", "1",
                       "--batch-size", "8", "--image-size", "32", "--save-every", "1",
                       "--lr", "1e30", "--warmup-epochs", "0", "--clip-grad", "0",
                       "--output", str(tmp_path)]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("swiftformer-train: error:")
    assert "loss became" in message and "Last good checkpoint" in message
    assert not (tmp_path / "model.keras").exists()


@pytest.mark.slow  # 5 min; default: test_two_replicas_keep_the_global_batch_statistics trains, test_evaluate_scores_every_image_of_a_folder
def test_short_run_learns_and_tflite_evaluates_alike(tmp_path):
    result = run_train("--variant", "XS", "--data", "synthetic:1280", "--epochs", "6",
                       "--batch-size", "32", "--image-size", "64", "--warmup-epochs", "0",
                       "--no-augment", "--ema-decay", "0.99", "--save-every", "0",
                       "--output", tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "log.csv") as f:
        import csv
        rows = list(csv.DictReader(f))
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < losses[0] - 0.2, losses
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["val_top1"] >= 0.25, summary  # chance is 0.1
    assert (tmp_path / "model_ema.keras").exists() and (tmp_path / "tensorboard").is_dir()
    assert "done:" in result.stdout and "val top-1" in result.stdout
