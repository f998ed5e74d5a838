"""The one spelling of a data source, for every tool that reads images (``--data`` of
training and evaluation, ``--calibration`` and the fidelity check of the export):

- ``folder:DIR``: a folder of images; one subfolder per class gives labels (sorted names),
  and a folder with ``train/`` and ``val/`` gives both splits (a bare ``DIR`` is read the
  same way);
- ``tfds:NAME[:SPLIT]``: a TensorFlow Datasets dataset already prepared locally (nothing is
  downloaded);
- ``builtin``: real photographs shipped by scikit-image and matplotlib (no labels);
- ``synthetic[:COUNT]``: the shapes-and-textures dataset generated in code (10 classes).

Each reader (``training.data``, ``export.calibration``) takes what ``parse`` returns.
"""

from __future__ import annotations

import dataclasses
import os
from typing import List, Optional

from swiftformer_tf.errors import DataError

SPELLINGS = "folder:DIR, tfds:NAME[:SPLIT], builtin or synthetic[:COUNT]"


@dataclasses.dataclass(frozen=True)
class DataSource:
    kind: str  # "folder", "tfds", "builtin" or "synthetic"
    text: str  # as the user wrote it, for messages and reports
    path: Optional[str] = None  # folder
    name: Optional[str] = None  # tfds dataset
    split: Optional[str] = None  # tfds split, None for the reader's default
    count: Optional[int] = None  # synthetic images, None for the reader's default


def parse(spec, flag: str = "--data") -> DataSource:
    """``spec`` as a ``DataSource``; a ``DataError`` naming ``flag`` when it is none."""
    if not isinstance(spec, str) or not spec:
        raise DataError(f"{flag}: expected {SPELLINGS}, got {spec!r}")
    kind, _, rest = spec.partition(":")
    if spec == "builtin":
        return DataSource("builtin", spec)
    if kind == "synthetic":
        if rest and not (rest.isdigit() and int(rest) > 0):
            raise DataError(f"{flag} {spec}: expected synthetic[:COUNT] with a positive "
                            f"whole COUNT")
        return DataSource("synthetic", spec, count=int(rest) if rest else None)
    if kind == "tfds":
        name, _, split = rest.partition(":")
        if not name:
            raise DataError(f"{flag} {spec}: expected tfds:NAME[:SPLIT]")
        return DataSource("tfds", spec, name=name, split=split or None)
    if kind == "folder":
        if not rest:
            raise DataError(f"{flag} {spec}: expected folder:DIR")
        return DataSource("folder", spec, path=os.path.expanduser(rest))
    if os.path.isdir(os.path.expanduser(spec)):
        return DataSource("folder", spec, path=os.path.expanduser(spec))
    raise DataError(f"{flag} {spec}: no such folder, and not a data source ({SPELLINGS})")


def class_folders(folder) -> List[str]:
    """The class subfolders of ``folder``, sorted (their order gives the labels). Hidden
    folders (``.ipynb_checkpoints``, ``.git``) are not classes: one would shift every label
    after it."""
    try:
        return sorted(d for d in os.listdir(folder)
                      if os.path.isdir(os.path.join(folder, d)) and not d.startswith("."))
    except OSError as err:
        raise DataError(f"{folder}: unreadable ({err.strerror or err})") from None


def image_files(folder, extensions) -> List[str]:
    """Every image file under ``folder`` (hidden files and folders left out, as they are
    as classes), in a fixed order."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files)
                  if f.lower().endswith(tuple(extensions)) and not f.startswith(".")]
    return found
