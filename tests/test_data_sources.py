"""One spelling of a data source for every tool: the export's --calibration and fidelity
check, training's and evaluation's --data (swiftformer_tf.data_sources)."""

import numpy as np
import pytest
from PIL import Image

from swiftformer_tf import data_sources
from swiftformer_tf.errors import DataError


def test_every_spelling_parses_and_a_wrong_one_names_the_flag(tmp_path):
    parse = data_sources.parse
    assert parse("builtin").kind == "builtin"
    assert (parse("synthetic").kind, parse("synthetic").count) == ("synthetic", None)
    assert parse("synthetic:600").count == 600
    tfds = parse("tfds:cats_vs_dogs:train[:10%]")
    assert (tfds.kind, tfds.name, tfds.split) == ("tfds", "cats_vs_dogs", "train[:10%]")
    assert parse("tfds:mnist").split is None
    assert parse(f"folder:{tmp_path}").path == str(tmp_path)
    bare = parse(str(tmp_path))  # a bare folder, as older commands wrote it
    assert (bare.kind, bare.path) == ("folder", str(tmp_path))
    for spec, message in (("synthetic:0", "--data synthetic:0: expected synthetic"),
                          ("synthetic:many", "positive whole COUNT"),
                          ("tfds:", "expected tfds:NAME"), ("folder:", "expected folder:DIR"),
                          ("", "--data: expected"),
                          (str(tmp_path / "nowhere"), "nowhere: no such folder, and not a "
                                                      "data source")):
        with pytest.raises(DataError, match=message):
            parse(spec)
    with pytest.raises(DataError, match="--calibration bogus: no such folder"):
        parse("bogus", "--calibration")


def test_one_folder_feeds_calibration_training_and_evaluation_alike(tmp_path):
    """A folder of class subfolders: calibration and the fidelity check read its labels,
    training and evaluation its splits, with the same classes, from either spelling."""
    from swiftformer_tf.export.calibration import ImageSource
    from swiftformer_tf.training import data as data_lib
    rng = np.random.default_rng(0)
    for name in ("cat", "dog", ".ipynb_checkpoints"):  # a hidden folder is no class
        (tmp_path / name).mkdir()
        for i in range(3):
            pixels = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    for spec in (f"folder:{tmp_path}", str(tmp_path)):
        source = ImageSource(spec, (32, 32))
        assert source.description == f"folder {tmp_path} (6 images)"
        labelled = list(source.labelled_check(4, skip=2))
        assert [label for _, label in labelled] == [0, 1, 1, 1]
        assert labelled[0][0].shape == (32, 32, 3)
        train, val = data_lib.resolve(spec, val_split=0.5)
        assert train.class_names == val.class_names == ["cat", "dog"]
        assert train.size + val.size == 6
        evaluation = data_lib.evaluation_split(spec)
        assert evaluation.class_names == ["cat", "dog"] and evaluation.size == 6
    with pytest.raises(DataError, match="builtin photographs have no labels"):
        data_lib.resolve("builtin")
