"""Datasets for training and evaluation: TFDS (never downloaded here), a folder of class
subfolders, or the built-in synthetic shapes; deterministic per-epoch pipelines that a
resumed run can replay from any step."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
from typing import Callable, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from swiftformer_tf import data_sources
from swiftformer_tf.errors import DataError, UnreadableImages
from swiftformer_tf.image_files import header_problem
from swiftformer_tf.imagenet import TF_IMAGE_EXTENSIONS
from swiftformer_tf.training import augment


@dataclasses.dataclass
class Split:
    """One split: a function giving a dataset of (uint8 image, int32 label) in a fixed
    order, its size and the class names."""

    make: Callable[[], tf.data.Dataset]
    size: int
    class_names: List[str]
    paths: Optional[List[str]] = None  # image files of a folder split, in order
    labels: Optional[List[int]] = None

    @property
    def num_classes(self):
        return len(self.class_names)


def _missing_tfds(name, data_dir, err):
    if name.startswith("imagenet2012"):
        manual = os.path.join(os.path.expanduser(data_dir or "~/tensorflow_datasets"),
                              "downloads", "manual")
        return DataError(
            f"tfds:{name} is not prepared in {data_dir or '~/tensorflow_datasets'}. ImageNet needs "
            f"a manual download: put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in "
            f"{manual}, then run `tfds build {name} --data_dir "
            f"{data_dir or '~/tensorflow_datasets'}`; or pass --data folder:DIR with one "
            f"subfolder per class. Nothing is downloaded by this tool.")
    return DataError(f"tfds:{name} is not available locally ({str(err)[:160]}); prepare it with "
                     f"`tfds build {name}` first. Nothing is downloaded by this tool.")


def tfds_split(name, split, data_dir=None) -> Split:
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError("tensorflow-datasets is not installed (pip install -e '.[train]')") from None
    read_config = tfds.ReadConfig(interleave_cycle_length=1)  # a fixed file order
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        probe = builder.as_dataset(split=split, shuffle_files=False, as_supervised=True,
                                   read_config=read_config)
    except Exception as err:  # tfds raises several types for missing data
        raise _missing_tfds(name, data_dir, err) from None
    try:
        size = builder.info.splits[split].num_examples
    except Exception:  # no split metadata (e.g. tfds.testing.mock_data): count
        size = int(probe.reduce(0, lambda n, _: n + 1))
    names = builder.info.features["label"].names

    def make():
        ds = builder.as_dataset(split=split, shuffle_files=False, as_supervised=True,
                                read_config=read_config)
        return ds.map(lambda x, y: (x, tf.cast(y, tf.int32)))
    return Split(make, size, names)


def _list_folder(folder) -> Tuple[List[str], List[int], List[str]]:
    """Images and labels of a folder with one subfolder per class (sorted names give the
    label indices). Hidden folders (``.ipynb_checkpoints``, ``.git``) are not classes: one
    would shift every label after it."""
    if not os.path.isdir(folder):
        raise DataError(f"{folder}: dataset folder not found")
    classes = data_sources.class_folders(folder)
    if len(classes) < 2:
        raise DataError(f"{folder}: expected one subfolder per class, at least two (or train/ "
                        f"and val/); found {len(classes)}: {', '.join(classes) or 'none'}")
    paths, labels = [], []
    for index, name in enumerate(classes):
        found = data_sources.image_files(os.path.join(folder, name), TF_IMAGE_EXTENSIONS)
        paths += found
        labels += [index] * len(found)
        if not found:
            raise DataError(f"{os.path.join(folder, name)}: class folder without images "
                            f"({', '.join(TF_IMAGE_EXTENSIONS)}); remove it or add images")
    return paths, labels, classes


def _checked_path(path):
    """The path, once its header passed swiftformer_tf.image_files' size rule (in the
    pipeline, before the file is decoded)."""
    name = path.item() if isinstance(path, np.ndarray) else path  # 0-d array when eager
    problem = header_problem(name.decode() if isinstance(name, bytes) else str(name))
    if problem:
        raise ValueError(problem)
    return path


def _decode(path, label):
    path = tf.ensure_shape(tf.numpy_function(_checked_path, [path], tf.string), ())
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return image, label


def _files_split(paths, labels, classes) -> Split:
    def make():
        ds = tf.data.Dataset.from_tensor_slices((paths, np.asarray(labels, np.int32)))
        return ds.map(_decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return Split(make, len(paths), classes, list(paths), list(labels))


# -- unreadable image files ------------------------------------------------------------------
# tf.data stops on the first file it cannot decode with a TensorFlow error that names no
# file. The files are found with the pipeline's own decode (what TensorFlow cannot read is
# what counts), then named; --bad-images skip leaves them out instead.
def _decode_error(path) -> Optional[str]:
    problem = header_problem(path)
    if problem:
        return problem
    try:
        _decode(path, 0)
    except tf.errors.OpError as err:
        text = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", err.message.splitlines()[0])
        return re.sub(r"\s*\[Op:\w+\].*$", "", text).strip() or type(err).__name__
    return None


def find_unreadable(paths, progress=None) -> List[Tuple[str, str]]:
    """(path, reason) of every file among ``paths`` that the input pipeline cannot read or
    decode, in one parallel pass; ``progress`` wraps the pass's iterator (a progress bar)."""
    def check(path):
        image, _ = _decode(path, 0)
        return path, tf.shape(image)[0]

    ds = tf.data.Dataset.from_tensor_slices(list(paths)).map(
        check, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    passes = ds.as_numpy_iterator()
    readable = {p.decode() for p, _ in (progress(passes) if progress else passes)}
    failed = [p for p in paths if p not in readable]
    return [(p, _decode_error(p) or "unreadable") for p in failed]


def _warn(message):
    print(message, file=sys.stderr)


def without_unreadable(split: Split, progress=None, warn=_warn) -> Split:
    """``split`` less the image files it cannot decode (named in a warning)."""
    if split.paths is None:
        return split  # TFDS and synthetic data come decoded
    bad = dict(find_unreadable(split.paths, progress))
    if not bad:
        return split
    shown = "; ".join(f"{p} ({r})" for p, r in list(bad.items())[:3])
    warn(f"warning: leaving out {len(bad)} unreadable image(s) of {split.size}: {shown}"
         + (" ..." if len(bad) > 3 else ""))
    kept = [(p, y) for p, y in zip(split.paths, split.labels) if p not in bad]
    if not kept:
        raise UnreadableImages(list(bad.items()), hint="no image of this split can be read")
    return _files_split([p for p, _ in kept], [y for _, y in kept], split.class_names)


@contextlib.contextmanager
def naming_unreadable(*splits, progress=None):
    """Turns the input pipeline's error on an undecodable file into ``UnreadableImages``
    naming it (found by one pass over the folder splits' files, run only after the error)."""
    try:
        yield
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError,
            tf.errors.PermissionDeniedError, tf.errors.DataLossError, tf.errors.UnknownError):
        paths = [p for split in splits if split is not None and split.paths for p in split.paths]
        bad = find_unreadable(paths, progress) if paths else []
        if not bad:
            raise
        raise UnreadableImages(bad) from None


def folder_splits(folder, val_split=0.1, seed=0) -> Tuple[Split, Split]:
    """A folder with train/ and val/ inside, or class subfolders split by ``val_split``."""
    if os.path.isdir(os.path.join(folder, "train")) and os.path.isdir(os.path.join(folder, "val")):
        train = _list_folder(os.path.join(folder, "train"))
        val = _list_folder(os.path.join(folder, "val"))
        if train[2] != val[2]:
            raise DataError(f"{folder}: train/ and val/ have different class folders")
        return _files_split(*train), _files_split(*val)
    paths, labels, classes = _list_folder(folder)
    order = np.random.default_rng(seed).permutation(len(paths))
    n_val = int(round(len(paths) * val_split))
    if not 0 < n_val < len(paths):
        raise DataError(f"{folder}: --val-split {val_split} leaves no train or no val images")
    val_idx, train_idx = sorted(order[:n_val]), sorted(order[n_val:])
    pick = lambda idx: ([paths[i] for i in idx], [labels[i] for i in idx], classes)  # noqa: E731
    return _files_split(*pick(train_idx)), _files_split(*pick(val_idx))


def folder_eval_split(folder) -> Split:
    """Every image of a folder to evaluate: its ``val/`` when it has one (a training folder
    with ``train/`` and ``val/``), else all of its class subfolders."""
    val = os.path.join(folder, "val")
    return _files_split(*_list_folder(val if os.path.isdir(val) else folder))


def synthetic_splits(train_count=6000, val_count=1000, size=80, seed=0) -> Tuple[Split, Split]:
    from swiftformer_tf.synthetic import CLASSES, make_dataset
    splits = []
    for count, offset in ((train_count, 0), (val_count, 1)):
        images, labels = make_dataset(count, size, seed=seed * 2 + offset)
        splits.append(Split(lambda i=images, l=labels: tf.data.Dataset.from_tensor_slices((i, l)),
                            count, list(CLASSES)))
    return splits[0], splits[1]


def resolve(spec, data_dir=None, val_split=0.1, seed=0, eval_split=None) -> Tuple[Split, Split]:
    """A data source (:mod:`swiftformer_tf.data_sources`) -> (train, val)."""
    source = data_sources.parse(spec, "--data")
    if source.kind == "tfds":
        name = source.name
        val_name = eval_split or ("validation" if name.startswith("imagenet") else "test")
        return (tfds_split(name, source.split or "train", data_dir),
                tfds_split(name, val_name, data_dir))
    if source.kind == "folder":
        return folder_splits(source.path, val_split, seed)
    if source.kind == "synthetic":
        count = source.count or 6000
        return synthetic_splits(count, max(count // 6, 100), seed=seed)
    raise DataError(f"--data {spec}: the builtin photographs have no labels to train or "
                    f"evaluate on; use folder:DIR, tfds:NAME[:SPLIT] or synthetic")


def evaluation_split(spec, data_dir=None) -> Split:
    """What a data source evaluates on: a folder's ``val/`` (or all of it), a TFDS split
    (default ``validation``), synthetic's validation images."""
    source = data_sources.parse(spec, "--data")
    if source.kind == "tfds":
        return tfds_split(source.name, source.split or "validation", data_dir)
    if source.kind == "folder":  # all of it (its val/ if it has one), not a training split
        return folder_eval_split(source.path)
    return resolve(spec, data_dir)[1]


@dataclasses.dataclass
class Augmentation:
    rand_augment: bool = True
    color_jitter: float = 0.4
    crop_scale_min: float = 0.08
    reprob: float = 0.25
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_switch_prob: float = 0.5
    smoothing: float = 0.1
    enabled: bool = True


def train_dataset(split: Split, batch_size: int, size: int, aug: Augmentation, seed: int,
                  epoch: int, skip_batches: int = 0) -> tf.data.Dataset:
    """The batches of ``epoch`` (drop remainder), starting after ``skip_batches``.

    Order and augmentation depend only on (seed, epoch, position), so the same epoch can
    be replayed from any batch after a restart.
    """
    num_classes = split.num_classes
    ds = split.make().shuffle(min(split.size, 20_000), seed=seed * 100_003 + epoch,
                              reshuffle_each_iteration=False)
    steps = split.size // batch_size
    base = tf.constant([seed, epoch], tf.int64)

    def transform(position, example):
        image, label = example
        item_seed = tf.random.experimental.stateless_fold_in(base, position)
        if aug.enabled:
            image = augment.train_transform(
                image, item_seed, (size, size), aug.rand_augment, aug.color_jitter, aug.reprob)
        else:
            image = augment.normalize(augment.eval_transform(image, (size, size)))
        on, off = 1.0 - aug.smoothing + aug.smoothing / num_classes, aug.smoothing / num_classes
        target = tf.one_hot(label, num_classes, on_value=on, off_value=off)
        return tf.ensure_shape(image, (size, size, 3)), target, label

    ds = ds.enumerate().skip(skip_batches * batch_size)
    ds = ds.map(transform, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True).take(steps - skip_batches)
    if aug.enabled and (aug.mixup or aug.cutmix):
        def mix(index, batch):
            images, targets, labels = batch
            seed_ = tf.random.experimental.stateless_fold_in(base + 7, index + skip_batches)
            images, targets = augment.mixup_cutmix(images, targets, seed_, aug.mixup, aug.cutmix,
                                                   aug.mixup_switch_prob)
            return images, targets, labels
        ds = ds.enumerate().map(mix, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(split: Split, batch_size: int, size: int, normalize=True) -> tf.data.Dataset:
    def transform(image, label):
        image = augment.eval_transform(image, (size, size))
        return (augment.normalize(image) if normalize else image), label
    return split.make().map(transform, num_parallel_calls=tf.data.AUTOTUNE) \
        .batch(batch_size).prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(split: Split, batch_size: int) -> int:
    steps = split.size // batch_size
    if steps < 1:
        raise DataError(f"the training split has {split.size} images, fewer than one batch "
                        f"of {batch_size}")
    return steps


