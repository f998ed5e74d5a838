"""weights="imagenet": download, cache, verification and offline use, against a loopback
hub (127.0.0.1) that serves a timm-named safetensors file made from the golden XS weights;
and the ImageNet helpers (class names, preprocess_input, decode_predictions)."""

import hashlib
import http.server
import logging
import os
import threading

import numpy as np
import pytest
from conftest import TOLERANCE, cli_tool, nhwc, official_to_timm, relative_error
from safetensors.numpy import save_file

import swiftformer_tf as sf
from swiftformer_tf.checkpoints import pretrained, read_state_dict

REAL_XS = pretrained.IMAGENET["XS"]


class LoopbackHub:
    """Serves files by URL path; ``mode`` "ok", "truncate" (closes the connection half way
    through a body announced whole) or "corrupt" (one byte changed). Counts requests."""

    def __init__(self):
        self.files, self.requests, self.mode = {}, [], "ok"
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hub.requests.append(self.path)
                body = hub.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if hub.mode == "truncate":
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                if hub.mode == "corrupt":
                    body = body[:100] + bytes([body[100] ^ 1]) + body[101:]
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def timm_xs_file(golden_dir, tmp_path_factory):
    """The golden XS weights under timm's names, as timm publishes them (safetensors)."""
    tensors, _ = read_state_dict(os.path.join(golden_dir, "swiftformer_xs.pth"))
    path = tmp_path_factory.mktemp("timm") / "model.safetensors"
    save_file({official_to_timm(k): v for k, v in tensors.items()}, str(path))
    return path.read_bytes()


@pytest.fixture
def hub(timm_xs_file, tmp_path, monkeypatch):
    """The loopback hub serving the XS file at the pinned revision, the XS pin set to that
    file's size and hash, and an empty Keras cache."""
    server = LoopbackHub()
    spec = pretrained.PretrainedFile(REAL_XS.repo, REAL_XS.filename, REAL_XS.revision,
                                     hashlib.sha256(timm_xs_file).hexdigest(), len(timm_xs_file))
    server.files[f"/{spec.repo}/resolve/{spec.revision}/{spec.filename}"] = timm_xs_file
    monkeypatch.setitem(pretrained.IMAGENET, "XS", spec)
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    for name in ("SWIFTFORMER_OFFLINE", "HF_HUB_OFFLINE", "SWIFTFORMER_WEIGHTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    server.spec = spec
    server.cache = tmp_path / "keras_home" / "models"
    yield server
    server.close()


def _cache_listing(hub):
    return sorted(os.listdir(hub.cache)) if hub.cache.exists() else []


def test_imagenet_weights_download_verify_and_match_golden(hub, golden_dir, monkeypatch):
    model = sf.SwiftFormerXS(weights="imagenet")
    assert len(hub.requests) == 1
    assert _cache_listing(hub) == ["swiftformer_xs.dist_in1k.safetensors"]
    assert model.attention == "normalize" and model.num_classes == 1000
    data = np.load(os.path.join(golden_dir, "swiftformer_xs_io.npz"))
    assert relative_error(model(nhwc(data["input_2"])), data["logits_eval_2"]) <= TOLERANCE

    # The cache is hit with no request, online or offline, by every spelling; another class
    # count keeps all but the heads (fine-tuning).
    assert sf.SwiftFormer("XS", weights="imagenet", include_top=False).num_classes == 1000
    ten = sf.SwiftFormerXS(weights="imagenet", num_classes=10)
    assert ten.load_report.fresh_heads and ten.head.kernel.shape == (220, 10)
    monkeypatch.setenv("SWIFTFORMER_OFFLINE", "1")
    assert pretrained.resolve("imagenet:XS") == str(hub.cache / hub.spec.cache_name)
    assert len(hub.requests) == 1


def test_hash_mismatch_deletes_the_download(hub):
    hub.mode = "corrupt"
    with pytest.raises(pretrained.WeightsUnavailableError) as err:
        pretrained.fetch("imagenet", "XS")
    text = str(err.value)
    assert f"expected {hub.spec.sha256}" in text and "the file was deleted" in text
    assert _cache_listing(hub) == []


def test_interrupted_download_leaves_no_file(hub):
    hub.mode = "truncate"
    with pytest.raises(pretrained.WeightsUnavailableError) as err:
        pretrained.fetch("imagenet", "XS")
    assert "\n" not in str(err.value) and hub.spec.url() in str(err.value)
    assert _cache_listing(hub) == []
    hub.mode = "ok"  # the next use downloads it whole
    assert os.path.getsize(pretrained.fetch("imagenet", "XS")) == hub.spec.size
    assert len(hub.requests) == 2


def test_damaged_cache_is_replaced(hub, caplog):
    path = pretrained.fetch("imagenet", "XS")
    with open(path, "r+b") as f:
        f.seek(200)
        f.write(b"\0" * 8)
    with caplog.at_level(logging.WARNING, logger="swiftformer_tf.checkpoints.pretrained"):
        assert pretrained.fetch("imagenet", "XS") == path
    assert "deleted this cached copy" in caplog.text and len(hub.requests) == 2
    assert pretrained.sha256_of(path) == hub.spec.sha256


def test_offline_fails_at_once_saying_what_to_do(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(pretrained.WeightsUnavailableError) as err:
        sf.SwiftFormerXS(weights="imagenet")
    text = str(err.value)
    assert "\n" not in text and "offline mode is set" in text
    for part in (hub.spec.url(), hub.spec.sha256, str(hub.cache / hub.spec.cache_name),
                 "SWIFTFORMER_WEIGHTS_DIR"):
        assert part in text
    assert hub.requests == []


def test_unreachable_hub_gives_one_line(hub, monkeypatch):
    hub.close()  # nothing listens there any more: the connection is refused
    with pytest.raises(pretrained.WeightsUnavailableError) as err:
        pretrained.fetch("imagenet", "XS")
    assert "\n" not in str(err.value) and hub.spec.sha256 in str(err.value)
    assert _cache_listing(hub) == []


def test_weights_dir_for_machines_without_internet(hub, timm_xs_file, tmp_path, monkeypatch):
    folder = tmp_path / "carried_over"
    folder.mkdir()
    (folder / hub.spec.cache_name).write_bytes(timm_xs_file)
    monkeypatch.setenv("SWIFTFORMER_WEIGHTS_DIR", str(folder))
    monkeypatch.setenv("SWIFTFORMER_OFFLINE", "1")
    assert pretrained.fetch("imagenet", "XS") == str(folder / hub.spec.cache_name)
    (folder / hub.spec.cache_name).write_bytes(timm_xs_file[:-1])  # a user's broken copy
    with pytest.raises(pretrained.WeightsUnavailableError, match="replace or remove this file"):
        pretrained.fetch("imagenet", "XS")
    assert (folder / hub.spec.cache_name).exists() and hub.requests == []


def test_unpinned_file_loads_with_a_warning(hub, timm_xs_file, monkeypatch, caplog):
    unpinned = pretrained.PretrainedFile(hub.spec.repo, hub.spec.filename, hub.spec.revision,
                                         None)
    monkeypatch.setitem(pretrained.IMAGENET, "XS", unpinned)
    with caplog.at_level(logging.WARNING, logger="swiftformer_tf.checkpoints.pretrained"):
        pretrained.fetch("imagenet", "XS")
    assert "UNVERIFIED" in caplog.text
    assert hashlib.sha256(timm_xs_file).hexdigest() in caplog.text


def test_names_and_errors():
    assert pretrained.is_pretrained("imagenet") and pretrained.is_pretrained("imagenet:L3")
    assert not pretrained.is_pretrained("model.pth") and not pretrained.is_pretrained(None)
    assert pretrained.resolve("model.pth") == "model.pth"
    with pytest.raises(ValueError, match="names SwiftFormer-XS, the model is L1"):
        sf.SwiftFormer("L1", weights="imagenet:XS")
    with pytest.raises(ValueError, match="no imagenet weights for SwiftFormer-CUSTOM"):
        sf.SwiftFormer({"depths": [1, 1, 1, 1], "widths": [8, 8, 16, 16]}, weights="imagenet")
    with pytest.raises(ValueError, match="name one of XS, S, L1, L3"):
        pretrained.resolve("imagenet")
    for name, spec in pretrained.IMAGENET.items():
        assert spec.repo == f"timm/swiftformer_{name.lower()}.dist_in1k"
        assert spec.sha256 is None or len(spec.sha256) == 64


@pytest.mark.slow  # 80 s (three tools on XS); default: test_imagenet_weights_download_verify_and_match_golden
def test_clis_take_imagenet(hub, tmp_path, capsys, monkeypatch):
    import tensorflow_datasets as tfds
    evaluate = cli_tool("evaluate")
    out = tmp_path / "eval.json"
    with tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.USE_CODE):
        assert evaluate.main(["--model", "imagenet:XS", "--data", "tfds:imagenet2012",
                              "--batch-size", "4", "--image-size", "64", "--json", str(out)]) == 0
    assert "imagenet:XS: top-1" in capsys.readouterr().out and out.exists()

    monkeypatch.setenv("SWIFTFORMER_OFFLINE", "1")  # cached by the evaluation above
    monkeypatch.chdir(tmp_path)
    assert cli_tool("import_checkpoint").main(["imagenet:XS"]) == 0
    assert "format:      timm" in capsys.readouterr().out
    keras_file = tmp_path / "swiftformer_xs.dist_in1k.keras"
    assert keras_file.stat().st_size > 5_000_000

    convert = cli_tool("export")
    tflite = tmp_path / "xs.tflite"
    assert convert.main(["--weights", "imagenet", "--input-size", "64", "--no-check",
                         "--gpu-check", "off", "--output", str(tflite)]) == 0
    report = capsys.readouterr().out
    assert "imagenet" in report and tflite.stat().st_size > 5_000_000
    assert len(hub.requests) == 1

    os.remove(hub.cache / hub.spec.cache_name)
    assert convert.main(["--weights", "imagenet:XS", "--output", str(tmp_path / "x.tflite"),
                         "--no-check"]) == 2
    assert "offline mode is set" in capsys.readouterr().err
    assert not (tmp_path / "x.tflite").exists()
    # Fine-tuning from the ImageNet weights: strict name-based loading, new 10-class heads.
    monkeypatch.delenv("SWIFTFORMER_OFFLINE")
    train = cli_tool("train")
    assert train.main(["--variant", "XS", "--init", "imagenet", "--data", "synthetic:64",
                       "--epochs", "1", "--batch-size", "16", "--image-size", "32",
                       "--max-steps", "1", "--save-every", "0", "--no-augment",
                       "--warmup-epochs", "0", "--output", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "init: " in out and "heads re-initialised for 10 classes" in out
    assert len(hub.requests) == 2


# -- ImageNet helpers --------------------------------------------------------------------------
def test_class_names_follow_the_model_output_order():
    import tensorflow_datasets as tfds
    labels = os.path.join(os.path.dirname(tfds.__file__), "datasets", "imagenet2012",
                          "labels.txt")
    if not os.path.isfile(labels):
        pytest.skip(f"{labels}: not shipped by this tensorflow-datasets")
    with open(labels) as f:
        wnids = f.read().split()
    names = sf.imagenet.class_names()
    assert [wnid for wnid, _ in names] == wnids and len(names) == 1000
    assert names[1] == ("n01443537", "goldfish, Carassius auratus")


def test_decode_predictions_like_keras_applications():
    scores = np.full((2, 1000), -1.0, np.float32)
    scores[0, [1, 2, 3]] = [3.0, 2.0, 1.0]
    scores[1, 999] = 5.0
    decoded = sf.decode_predictions(scores, top=3)
    assert [name for _, name, _ in decoded[0]] == ["goldfish", "great white shark",
                                                    "tiger shark"]
    assert decoded[0][0] == ("n01443537", "goldfish", 3.0)
    assert decoded[1][0][1] == "toilet tissue" and decoded[1][0][2] == 5.0
    with pytest.raises(ValueError, match=r"\(N, 1000\)"):
        sf.decode_predictions(np.zeros((1, 10)))


def test_preprocess_input_is_the_official_eval_transform(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    from_path = sf.preprocess_input(tmp_path / "photo.png")
    assert from_path.shape == (224, 224, 3) and from_path.dtype == np.float32
    # The official transform by hand: bicubic shorter side to 256, centre crop 224.
    resized = np.asarray(Image.fromarray(pixels).resize((341, 256), Image.BICUBIC), np.float32)
    crop = resized[16:240, 58:282]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(from_path, (crop / 255 - mean) / std, atol=1e-5)
    np.testing.assert_allclose(sf.preprocess_input(pixels[None], size=224)[0], from_path,
                               atol=1e-5)
    # An array already at the model's size is only normalised.
    np.testing.assert_allclose(sf.preprocess_input(crop), from_path, atol=1e-5)
    with pytest.raises(ValueError, match="RGB"):
        sf.preprocess_input(np.zeros((4, 4)))


def test_16_bit_images_decode_as_the_training_path_does(tmp_path):
    """A 16-bit PNG: the host decoding (calibration, preprocess_input) and TensorFlow's
    (training, evaluation) give the same 8-bit pixels, not white."""
    import tensorflow as tf
    from PIL import Image
    values = np.linspace(0, 65535, 48 * 40).reshape(40, 48).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "gray16.png")
    with Image.open(tmp_path / "gray16.png") as image:
        assert image.mode.startswith("I")
        host = np.asarray(sf.imagenet.as_rgb(image))
    trained = tf.io.decode_image(tf.io.read_file(str(tmp_path / "gray16.png")), channels=3,
                                 expand_animations=False).numpy()
    np.testing.assert_array_equal(host, trained)
    assert 120 < host.mean() < 135  # a ramp over the whole range, not clipped to 255
