"""Calibration and check images with the official evaluation preprocessing.

Sources: a folder of images, a TensorFlow Datasets split (already downloaded; nothing is
fetched), ``builtin``: real photographs shipped by scikit-image and matplotlib, or
``synthetic``: the shapes-and-textures images the training proof run learns. Every
image goes through the official eval transform: bicubic resize of the shorter side to
``size * 256 / 224``, centre crop ``size``; :func:`normalize` then applies the ImageNet
mean and std.
"""

from __future__ import annotations

import itertools
import os
from typing import Iterator, List, Optional, Tuple

import numpy as np

from swiftformer_tf import data_sources
from swiftformer_tf.errors import DataError
from swiftformer_tf.image_files import header_problem
from swiftformer_tf.imagenet import IMAGE_EXTENSIONS, eval_transform

# Real photographs (no drawings or synthetic charts), split so that the fidelity check
# never sees a photograph used for calibration.
BUILTIN_CALIBRATION = ["astronaut", "chelsea", "motorcycle_left", "hubble_deep_field", "retina",
                       "ihc", "camera", "moon", "brick", "grass", "gravel", "coins"]
BUILTIN_CHECK = ["rocket", "motorcycle_right", "grace_hopper", "coffee"]


def _builtin_path(name):
    if name == "grace_hopper":
        import matplotlib
        return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data",
                            "grace_hopper.jpg")
    import skimage
    folder = os.path.join(os.path.dirname(skimage.__file__), "data")
    for ext in (".png", ".jpg"):
        if os.path.isfile(os.path.join(folder, name + ext)):
            return os.path.join(folder, name + ext)
    raise DataError(f"builtin photograph '{name}' not found in {folder}")


def _views(image):
    """Deterministic crops and flips of one photograph, so a few photographs give many
    distinct calibration samples (the first view is the plain image)."""
    from PIL import ImageOps
    w, h = image.size
    for fraction, flip in itertools.product((1.0, 0.8, 0.6, 0.45), (False, True)):
        for anchor in ((0.5, 0.5), (0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0)):
            if fraction == 1.0 and anchor != (0.5, 0.5):
                continue
            cw, ch = int(w * fraction), int(h * fraction)
            left, top = int((w - cw) * anchor[0]), int((h - ch) * anchor[1])
            view = image.crop((left, top, left + cw, top + ch))
            yield ImageOps.mirror(view) if flip else view


def _open(path):
    from PIL import Image, UnidentifiedImageError
    problem = header_problem(path)  # the training pipeline's rule (swiftformer_tf.image_files)
    if problem:
        raise DataError(f"{path}: image too large to decode ({problem})")
    try:
        image = Image.open(path)
        image.load()
        return image
    except Image.DecompressionBombError as err:  # PIL's own bound on pixels (~179 M)
        raise DataError(f"{path}: image too large to decode ({err})") from None
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"{path}: unreadable image ({err})") from None


def builtin_images(split="calibration") -> Iterator:
    names = BUILTIN_CALIBRATION if split == "calibration" else BUILTIN_CHECK
    photos = [_open(_builtin_path(n)) for n in names]
    # round-robin over photographs so any prefix mixes them
    for views in itertools.zip_longest(*(_views(p) for p in photos)):
        for view in views:
            if view is not None:
                yield view


def synthetic_images(split="calibration", labelled=False) -> Iterator:
    """The built-in synthetic dataset (swiftformer_tf.synthetic): calibration from the
    training distribution (seed 0), the check on exactly the proof run's validation split
    (1,000 images, seed 1, as ``synthetic_splits`` makes it)."""
    from PIL import Image

    from swiftformer_tf.synthetic import make_dataset
    images, labels = make_dataset(1000, 80, seed=0 if split == "calibration" else 1)
    if labelled:
        return ((Image.fromarray(image), int(label)) for image, label in zip(images, labels))
    return (Image.fromarray(image) for image in images)


def folder_labels(folder, paths) -> Optional[List[int]]:
    """Class indices of ``paths`` when ``folder`` holds one subfolder per class (sorted
    names, as training reads it), else None."""
    classes = data_sources.class_folders(folder)
    if len(classes) < 2 or {"train", "val"} <= set(classes):
        return None
    index = {name: i for i, name in enumerate(classes)}
    labels = [index.get(os.path.relpath(p, folder).split(os.sep)[0]) for p in paths]
    return None if any(label is None for label in labels) else labels


def folder_images(folder) -> List[str]:
    if not os.path.isdir(folder):
        raise DataError(f"{folder}: calibration folder not found")
    try:
        paths = sorted(data_sources.image_files(folder, IMAGE_EXTENSIONS))
    except OSError as err:
        raise DataError(f"{folder}: unreadable ({err})") from None
    if not paths:
        raise DataError(f"{folder}: no images found (looked for "
                        f"{', '.join(IMAGE_EXTENSIONS)})")
    return paths


def tfds_images(source: data_sources.DataSource, labelled=False) -> Iterator:
    """Images of a ``tfds:NAME[:SPLIT]`` source from the local TFDS data dir (never
    downloads); ``labelled``: (image, label or None) pairs."""
    spec, name, split = source.text, source.name, source.split or "train"
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError(f"{spec}: tensorflow-datasets is not installed "
                        f"(pip install tensorflow-datasets)") from None
    from PIL import Image
    try:
        dataset = tfds.load(name, split=split, download=False, shuffle_files=False)
    except Exception as err:  # tfds raises many types for a missing dataset
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise DataError(f"{spec}: dataset not available locally ({first_line}); prepare "
                        f"it with tfds first, nothing is downloaded here") from None
    for example in tfds.as_numpy(dataset):
        image = example.get("image")
        if image is None:
            raise DataError(f"{spec}: examples have no 'image' feature")
        image = np.asarray(image)
        image = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        if labelled:
            label = example.get("label")
            yield image, (None if label is None else int(label))
        else:
            yield image


class ImageSource:
    """Calibration images and disjoint check images, as 0-255 float32 crops."""

    def __init__(self, spec: str, size: Tuple[int, int]):
        """``spec``: a data source (:mod:`swiftformer_tf.data_sources`)."""
        self.source = source = data_sources.parse(spec, "--calibration")
        self.size = tuple(size)
        if source.kind == "builtin":
            self.description = "builtin: real photographs shipped by scikit-image and matplotlib"
        elif source.kind == "synthetic":
            self.description = ("synthetic: the shapes-and-textures images generated in code "
                                "(train split for calibration, validation split for the check)")
        elif source.kind == "tfds":
            self.description = spec
        else:
            self._paths = folder_images(source.path)
            self.description = f"folder {source.path} ({len(self._paths)} images)"

    def _pil_images(self, split):
        kind = self.source.kind
        if kind == "builtin":
            return builtin_images(split)
        if kind == "synthetic":
            return synthetic_images(split)
        if kind == "tfds":
            stream = tfds_images(self.source)
            return stream if split == "calibration" else itertools.islice(stream, 10_000, None)
        return (_open(p) for p in self._paths)

    def calibration(self, count) -> Iterator[np.ndarray]:
        taken = 0
        for image in itertools.islice(self._pil_images("calibration"), count):
            taken += 1
            yield eval_transform(image, self.size)
        if taken == 0:
            raise DataError(f"{self.source.text}: gave no images")

    def check(self, count, skip=0) -> Iterator[np.ndarray]:
        """Held-out images: the builtin check photographs, or a folder's / split's images
        after the ``skip`` used for calibration (builtin ones if none are left)."""
        for image, _ in self.labelled_check(count, skip):
            yield image

    def labelled_check(self, count, skip=0) -> Iterator[Tuple[np.ndarray, Optional[int]]]:
        """:meth:`check`'s images with their class index where the source has labels (the
        synthetic set, a TFDS split with a ``label`` feature, a folder of class
        subfolders), else None."""
        kind = self.source.kind
        if kind == "builtin":
            stream = ((image, None) for image in builtin_images("check"))
        elif kind == "synthetic":
            stream = synthetic_images("check", labelled=True)
        elif kind == "tfds":
            stream = itertools.islice(tfds_images(self.source, labelled=True), skip, None)
        else:
            rest = self._paths[skip:]
            labels = folder_labels(self.source.path, rest) if rest else None
            stream = (zip((_open(p) for p in rest), labels or itertools.repeat(None)) if rest
                      else ((image, None) for image in builtin_images("check")))
        for image, label in itertools.islice(stream, count):
            yield eval_transform(image, self.size), label
