"""ImageNet-1k on the host side: the official eval transform, the normalisation and the
class names, as ``keras.applications`` offers them (``preprocess_input``,
``decode_predictions``).

The eval transform is the official one (timm's ``crop_pct=0.875`` recipe used by
SwiftFormer's ``main.py``): bicubic resize of the shorter side to ``size * 256 / 224``,
centre crop ``size``; then the ImageNet mean and std.
"""

from __future__ import annotations

import functools
import os
from typing import List, Tuple

import numpy as np

# Image files by extension: what PIL reads (calibration, preprocess_input), and the part of
# it that TensorFlow's decoder reads too (training and evaluation folders: no TIFF there).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
TF_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLASSES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                            "imagenet_classes.tsv")


def as_rgb(image):
    """A PIL image as 8-bit RGB, decoded as TensorFlow's ``decode_image`` (the training
    path) decodes it: 16-bit images keep their high byte. PIL's own ``convert("RGB")``
    clips them to white instead."""
    from PIL import Image
    if image.mode.startswith("I"):  # "I;16", "I;16B", "I" (16-bit PNGs and TIFFs)
        high_byte = np.clip(np.asarray(image, np.int64) >> 8, 0, 255).astype(np.uint8)
        return Image.fromarray(high_byte).convert("RGB")
    if image.mode == "F":  # float images: 0-1 if they fit, else taken as 0-255
        values = np.asarray(image, np.float64)
        values = values * 255.0 if values.max(initial=0.0) <= 1.0 else values
        return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def eval_transform(image, size: Tuple[int, int]):
    """PIL image -> float32 (H, W, 3) in 0-255: bicubic shorter-side resize, centre crop."""
    from PIL import Image
    height, width = size
    image = as_rgb(image)
    resize_to = int(round(min(height, width) * 256 / 224))
    w, h = image.size
    scale = resize_to / min(w, h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    image = image.resize((new_w, new_h), Image.BICUBIC)
    left, top = (new_w - width) // 2, (new_h - height) // 2
    return np.asarray(image.crop((left, top, left + width, top + height)), np.float32)


def normalize(images):
    """0-255 RGB -> ImageNet-normalised model input."""
    return ((np.asarray(images, np.float32) / 255.0 - np.array(IMAGENET_MEAN, np.float32))
            / np.array(IMAGENET_STD, np.float32))


def load_image(path, size=224):
    """An image file through the official eval transform: float32 (size, size, 3), 0-255."""
    from PIL import Image
    size = (size, size) if isinstance(size, int) else tuple(size)
    with Image.open(os.fspath(path)) as image:
        return eval_transform(image, size)


def preprocess_input(images, size=None):
    """Model input from 0-255 RGB, like ``keras.applications.*.preprocess_input``.

    ``images``: an image path, a PIL image, or an array (H, W, 3) / (N, H, W, 3) of 0-255
    RGB. Paths and PIL images always go through the official eval transform at ``size``
    (default 224). Arrays are taken as already resized and cropped unless ``size`` is given
    and differs from theirs, in which case each goes through the eval transform (as 8-bit).
    Returns float32 normalised with the ImageNet mean and std (the model's input unless it
    was built with ``include_preprocessing=True``, which takes the 0-255 values directly).
    """
    if isinstance(images, (str, os.PathLike)):
        return normalize(load_image(images, size or 224))
    if hasattr(images, "convert") and hasattr(images, "size"):  # a PIL image
        target = size or 224
        return normalize(eval_transform(images, (target, target) if isinstance(target, int)
                                        else tuple(target)))
    array = np.asarray(images)
    if array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise ValueError(f"preprocess_input takes (H, W, 3) or (N, H, W, 3) RGB, got shape "
                         f"{array.shape}")
    if size is not None:
        target = (size, size) if isinstance(size, int) else tuple(size)
        if tuple(array.shape[-3:-1]) != target:
            from PIL import Image
            batch = array.reshape((-1,) + array.shape[-3:])
            as_8bit = np.clip(np.round(batch), 0, 255).astype(np.uint8)
            array = np.stack([eval_transform(Image.fromarray(x), target) for x in as_8bit])
            if np.asarray(images).ndim == 3:
                array = array[0]
    return normalize(array)


@functools.lru_cache(maxsize=1)
def class_names() -> Tuple[Tuple[str, str], ...]:
    """The 1,000 classes in output order: (WordNet id, lemmas), e.g. ("n01440764",
    "tench, Tinca tinca")."""
    with open(CLASSES_FILE, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if not line.startswith("#")]
    assert len(rows) == 1000, f"{CLASSES_FILE}: {len(rows)} classes, expected 1000"
    return tuple((wnid, lemmas) for wnid, lemmas in rows)


def decode_predictions(predictions, top=5) -> List[List[Tuple[str, str, float]]]:
    """Per image, the ``top`` classes as (WordNet id, name, score), best first, like
    ``keras.applications.imagenet_utils.decode_predictions``. The name is the class's
    first lemma ("great white shark"). Scores are what the model gave (logits unless a
    softmax was applied)."""
    scores = np.asarray(predictions)
    if scores.ndim != 2 or scores.shape[1] != 1000:
        raise ValueError(f"decode_predictions expects (N, 1000) ImageNet scores, got shape "
                         f"{scores.shape}")
    if not 1 <= top <= 1000:
        raise ValueError(f"top must be in 1..1000, got {top}")
    names = class_names()
    decoded = []
    for row in scores:
        best = np.argsort(-row, kind="stable")[:top]
        decoded.append([(names[i][0], names[i][1].split(",")[0], float(row[i])) for i in best])
    return decoded

