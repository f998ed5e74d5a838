"""A synthetic 10-class image dataset of shapes and textures, generated in code.

Each class is a shape or a texture drawn in a random colour, at a random position, size
and orientation, on a noisy random background; telling them apart needs both local texture
and global shape, which is what a small vision model should learn quickly.
"""

from __future__ import annotations

import numpy as np

CLASSES = ("circle", "square", "triangle", "cross", "ring", "horizontal_stripes",
           "vertical_stripes", "checkerboard", "dots", "diagonal_stripes")


def _canvas(rng, size):
    background = rng.uniform(0, 255, 3)
    noise = rng.normal(0, 12, (size, size, 3))
    return np.clip(background + noise, 0, 255), background


def _colour(rng, background):
    # a colour far enough from the background to be visible
    for _ in range(20):
        colour = rng.uniform(0, 255, 3)
        if np.abs(colour - background).sum() > 150:
            return colour
    return 255 - background


def draw(label: int, rng: np.random.Generator, size: int) -> np.ndarray:
    image, background = _canvas(rng, size)
    colour = _colour(rng, background)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    name = CLASSES[label]
    if name in ("circle", "square", "triangle", "cross", "ring"):
        radius = rng.uniform(0.18, 0.35) * size
        cy, cx = rng.uniform(radius, size - radius, 2)
        dy, dx = yy - cy, xx - cx
        angle = rng.uniform(0, np.pi)
        ry = dy * np.cos(angle) - dx * np.sin(angle)
        rx = dy * np.sin(angle) + dx * np.cos(angle)
        if name == "circle":
            mask = dy ** 2 + dx ** 2 <= radius ** 2
        elif name == "ring":
            d = np.sqrt(dy ** 2 + dx ** 2)
            mask = (d <= radius) & (d >= 0.6 * radius)
        elif name == "square":
            mask = (np.abs(ry) <= radius * 0.8) & (np.abs(rx) <= radius * 0.8)
        elif name == "cross":
            arm = radius * 0.3
            mask = ((np.abs(ry) <= arm) & (np.abs(rx) <= radius)) | \
                   ((np.abs(rx) <= arm) & (np.abs(ry) <= radius))
        else:  # triangle
            mask = (ry <= radius * 0.6) & (ry >= -radius + 1.7 * np.abs(rx))
    else:
        period = rng.uniform(0.12, 0.25) * size
        phase = rng.uniform(0, period)
        if name == "horizontal_stripes":
            mask = ((yy + phase) % period) < period / 2
        elif name == "vertical_stripes":
            mask = ((xx + phase) % period) < period / 2
        elif name == "diagonal_stripes":
            mask = ((xx + yy + phase) % period) < period / 2
        elif name == "checkerboard":
            mask = (((yy + phase) // period + (xx + phase) // period) % 2) == 0
        else:  # dots
            cell = period
            mask = ((yy + phase) % cell - cell / 2) ** 2 + ((xx + phase) % cell - cell / 2) ** 2 \
                <= (cell * 0.25) ** 2
    image[mask] = colour + rng.normal(0, 8, (int(mask.sum()), 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def make_dataset(count: int, size: int = 64, seed: int = 0, num_classes: int = len(CLASSES)):
    """(images uint8 [count, size, size, 3], labels int32 [count]); balanced classes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype=np.int32) % num_classes
    rng.shuffle(labels)
    images = np.stack([draw(int(label), rng, size) for label in labels])
    return images, labels
