"""A TFLite file an app can use as it is: image classifier metadata (swiftformer-export
--metadata, swiftformer_tf.export.metadata) read by the real client, MediaPipe Tasks'
ImageClassifier, on real photographs at the model's input size."""

import json
import os

import numpy as np
import pytest
from conftest import cli_tool, randomize

mp = pytest.importorskip("mediapipe", reason="MediaPipe's ImageClassifier is the client these "
                                             "tests use (pip install -e '.[test]')")

import swiftformer_tf as sf  # noqa: E402
from swiftformer_tf.export import metadata as md  # noqa: E402
from swiftformer_tf.export.calibration import ImageSource  # noqa: E402
from swiftformer_tf.runtime.interpreter import TFLiteRunner, summarize_graph  # noqa: E402


def photographs(size, count):
    """Built-in check photographs, centre-cropped to ``size`` as 0-255 RGB (uint8)."""
    return [np.clip(np.round(x), 0, 255).astype(np.uint8)
            for x in ImageSource("builtin", size).check(count)]


def mediapipe_categories(path, image, top=5):
    from mediapipe.tasks.python import BaseOptions, vision
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=path),
                                            max_results=top)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB,
                                              data=np.ascontiguousarray(image)))
    return result.classifications[0].categories


def assert_same_top(categories, ours, tolerance):
    """MediaPipe's top classes are ours: its scores are ours at its indices, and they are
    our highest scores. Ties (int8 scores come in steps) may be ordered either way, so the
    classes strictly above MediaPipe's last score must all be among its classes."""
    ours = np.asarray(ours, np.float64).reshape(-1)
    theirs = np.array([c.score for c in categories])
    at_their_indices = ours[[c.index for c in categories]]
    assert np.abs(theirs - at_their_indices).max() <= tolerance, (theirs, at_their_indices)
    assert np.allclose(np.sort(ours)[::-1][:len(categories)], np.sort(theirs)[::-1],
                       atol=tolerance)
    above = set(np.flatnonzero(ours > theirs.min() + tolerance))
    assert above <= {c.index for c in categories}


def test_int8_export_with_metadata_is_read_by_mediapipe(golden_dir, golden_xs_int8, tmp_path,
                                                        capsys):
    out, report_path = tmp_path / "xs_int8_md.tflite", tmp_path / "report.json"
    assert cli_tool("export").main([
        "--weights", os.path.join(golden_dir, "swiftformer_xs.pth"), "--quantize", "int8",
        "--metadata", "--input-size", "64", "--num-calibration", "8", "--num-check", "4",
        "--runs", "2", "--gpu-check", "off", "--output", str(out),
        "--report", str(report_path)]) == 0
    captured = capsys.readouterr()
    # the golden weights come without class names: numbered labels, and a warning
    assert "warning: the model does not know its 1000 class names" in captured.err
    report = json.loads(report_path.read_text())
    meta = report["metadata"]
    assert meta["classes"] == 1000 and meta["labels"].startswith("numbered")
    assert meta["mediapipe"]["images"] == 4 and meta["mediapipe"]["top1_agreement"] == 1.0
    assert "MediaPipe:      ImageClassifier top-1 agreement 100.0%" in captured.out
    graph = report["graph"]  # softmax and the normalisation in the graph, still integer
    assert graph["op_histogram"]["SOFTMAX"] == 1 and graph["float_tensors"] == []
    assert report["include_preprocessing"] is True

    written = md.read_metadata(out.read_bytes())
    assert written["name"] == "SwiftFormer-XS" and written["min_parser_version"] == "1.0.0"
    assert written["version"].startswith("swiftformer-tf ") and written["author"]
    assert written["license"] and written["labels"][:2] == ["class_0", "class_1"]
    image_input = written["subgraph_metadata"][0]["input_tensor_metadata"][0]
    assert image_input["process_units"][0]["options"] == {"mean": [0.0], "std": [1.0]}
    assert image_input["content"]["content_properties"] == {"color_space": "RGB"}

    # real photographs at the model's input size: the same top-5 and scores as our
    # interpreter on the same file, names from the labels file
    runner = TFLiteRunner(out.read_bytes())
    for image in photographs((64, 64), 4):
        ours = runner(image[None].astype(np.float32))
        categories = mediapipe_categories(str(out), image)
        assert_same_top(categories, ours, tolerance=1e-6)
        assert all(c.category_name == f"class_{c.index}" for c in categories)

    # without --metadata the export is as before: no metadata, no softmax, no preprocessing
    plain_report, plain = golden_xs_int8
    assert md.read_metadata(open(plain, "rb").read()) is None
    assert "SOFTMAX" not in plain_report["graph"]["op_histogram"]
    assert plain_report["include_preprocessing"] is False


def test_a_fine_tuned_model_exports_its_own_class_names(tmp_path):
    """A 3-class model made here, saved as .keras with its class names: load() exposes
    them, the export's labels are them, MediaPipe answers with them (fp32: top-3 and
    scores of our interpreter), and the metadata leaves the graph's answers bit-identical."""
    from swiftformer_tf.export.converter import convert
    names = ["cat", "dog", "fox"]
    model = randomize(sf.SwiftFormer({"depths": [1, 1, 1, 2], "widths": [8, 16, 24, 32]},
                                     num_classes=3, class_names=names), seed=3)
    model.save(tmp_path / "three.keras")
    loaded = sf.load(tmp_path / "three.keras", include_preprocessing=True)
    assert loaded.class_names == names and loaded.include_preprocessing
    labels, source, warning = md.labels_for(loaded, str(tmp_path / "three.keras"))
    assert labels == names and source == "the model's class names" and warning is None

    plain = convert(loaded, "none", input_size=(48, 48), softmax=True).flatbuffer
    info = md.model_info(loaded, None, len(labels))
    with_metadata = md.add_classifier_metadata(plain, labels, info)
    assert md.read_metadata(plain) is None
    assert md.read_metadata(with_metadata)["labels"] == names
    assert 0 < len(with_metadata) - len(plain) < 4_000
    assert summarize_graph(with_metadata).op_histogram == summarize_graph(plain).op_histogram
    path = tmp_path / "three.tflite"
    path.write_bytes(with_metadata)
    for image in photographs((48, 48), 3):
        x = image[None].astype(np.float32)
        ours = TFLiteRunner(with_metadata)(x)
        assert np.array_equal(ours, TFLiteRunner(plain)(x))  # bit-identical
        # the Keras model's probabilities: the export is the model, softmax included
        expected = np.asarray(loaded(x, training=False))
        expected = np.exp(expected - expected.max()) / np.exp(expected - expected.max()).sum()
        assert np.abs(ours - expected).max() < 1e-5
        categories = mediapipe_categories(str(path), image, top=3)
        assert [c.category_name for c in categories] == [names[c.index] for c in categories]
        assert_same_top(categories, ours, tolerance=1e-4)


def test_imagenet_weights_get_imagenet_labels():
    labels, source, warning = md.labels_for(sf.SwiftFormer("XS"), "imagenet:XS")
    assert len(labels) == 1000 and labels[0] == "tench" and labels[2] == "great white shark"
    assert source == "ImageNet-1k class names" and warning is None
    info = md.model_info(sf.SwiftFormer("XS"), "imagenet", 1000)
    assert "Amshaker/SwiftFormer" in info.author and info.license.startswith("Apache-2.0")


def test_labels_that_cannot_be_lines_are_refused():
    with pytest.raises(ValueError, match="class name 'a\\\\nb' must be a non-empty line"):
        sf.SwiftFormer("XS", num_classes=2, class_names=["a\nb", "c"])
    with pytest.raises(ValueError, match="class_names has 1 names for 2 classes"):
        sf.SwiftFormer("XS", num_classes=2, class_names=["a"])


@pytest.mark.slow  # 1 min; default: the fine-tuned model's fp32 export through MediaPipe
def test_fp32_export_with_metadata_matches_on_photographs(golden_dir, tmp_path):
    out = tmp_path / "xs_md.tflite"
    assert cli_tool("export").main([
        "--weights", os.path.join(golden_dir, "swiftformer_xs.pth"), "--metadata",
        "--input-size", "224", "--num-check", "4", "--runs", "2", "--gpu-check", "off",
        "--output", str(out)]) == 0
    runner = TFLiteRunner(out.read_bytes())
    for image in photographs((224, 224), 4):
        assert_same_top(mediapipe_categories(str(out), image),
                        runner(image[None].astype(np.float32)), tolerance=1e-4)
