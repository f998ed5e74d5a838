"""The one rule for image files that the tools decode (training, evaluation, calibration):
the size in an image's header is checked before its pixels are decoded.

A few hundred bytes of PNG can declare 20000x20000 pixels (1.2 GB decoded) or 100000x1,
whose aspect ratio the evaluation resize (shorter side to the model's size, aspect kept)
turns into gigabytes. Such a file is refused, or left out where the tool is told to skip
bad images, like a file that cannot be decoded."""

from __future__ import annotations

import re
import warnings
from typing import Optional

MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb warning threshold (~89.5 MP)
MAX_ASPECT_RATIO = 50  # longer side / shorter side; panoramas are under 10


def size_problem(width: int, height: int) -> Optional[str]:
    """Why an image of this size is refused, or None."""
    if width < 1 or height < 1:
        return f"declares {width}x{height} pixels"
    if width * height > MAX_PIXELS:
        return (f"declares {width}x{height} pixels ({width * height / 1e6:.0f} MP; at most "
                f"{MAX_PIXELS / 1e6:.1f} MP are decoded)")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        return (f"declares {width}x{height} pixels, an aspect ratio above "
                f"{MAX_ASPECT_RATIO}:1 (resizing its shorter side would make it huge)")
    return None


def header_problem(path) -> Optional[str]:
    """Why the image file at ``path`` is refused from its header alone, or None (also when
    Pillow cannot read the header: the decoder then says what is wrong)."""
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:  # reads the header, not the pixels
                width, height = image.size
    except Image.DecompressionBombError as err:
        sizes = [int(n) for n in re.findall(r"\d+", str(err))[:1]]
        return (f"declares {sizes[0]:,} pixels (at most {MAX_PIXELS / 1e6:.1f} MP are decoded)"
                if sizes else f"declares too many pixels ({err})")
    except Exception:  # not an image Pillow knows, or damaged: the decoder decides
        return None
    return size_problem(width, height)
