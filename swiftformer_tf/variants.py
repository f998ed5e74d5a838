"""The SwiftFormer variant table: the single source of truth for every variant.

Architecture values are those of the official code (Amshaker/SwiftFormer,
``models/swiftformer.py``); ``params`` are counted on the official model with the
distillation head; ``gmacs``, ``top1`` and ``iphone14_ms`` are the paper's / README's
figures (ImageNet-1k top-1 with hard distillation, iPhone 14 Neural Engine latency).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Tuple


@dataclasses.dataclass(frozen=True)
class SwiftFormerConfig:
    """Architecture of one SwiftFormer model."""

    depths: Tuple[int, ...]
    widths: Tuple[int, ...]
    mlp_ratio: float = 4.0
    layer_scale_init: float = 1e-5  # attention blocks only; conv blocks start at 1.0
    name: str = "custom"
    # Paper / README figures (None for custom configs).
    params: Optional[int] = None
    gmacs: Optional[float] = None
    top1: Optional[float] = None
    iphone14_ms: Optional[float] = None

    def __post_init__(self):
        depths, widths = tuple(int(d) for d in self.depths), tuple(int(w) for w in self.widths)
        if len(depths) != 4 or len(widths) != 4:
            raise ValueError(
                f"SwiftFormer needs 4 stages: got depths={depths}, widths={widths}")
        if min(depths) < 1 or min(widths) < 1:
            raise ValueError(f"depths and widths must be positive: {depths}, {widths}")
        if widths[0] % 2:
            raise ValueError(f"widths[0] must be even (the stem uses widths[0] // 2): {widths[0]}")
        object.__setattr__(self, "depths", depths)
        object.__setattr__(self, "widths", widths)

    @property
    def stem_widths(self) -> Tuple[int, int]:
        return self.widths[0] // 2, self.widths[0]

    def to_dict(self) -> dict:
        return {"depths": list(self.depths), "widths": list(self.widths),
                "mlp_ratio": self.mlp_ratio, "layer_scale_init": self.layer_scale_init,
                "name": self.name}


VARIANTS = {
    "XS": SwiftFormerConfig(depths=(3, 3, 6, 4), widths=(48, 56, 112, 220), name="XS",
                            params=3_475_360, gmacs=0.6, top1=75.7, iphone14_ms=0.7),
    "S": SwiftFormerConfig(depths=(3, 3, 9, 6), widths=(48, 64, 168, 224), name="S",
                           params=6_092_128, gmacs=1.0, top1=78.5, iphone14_ms=0.8),
    "L1": SwiftFormerConfig(depths=(4, 3, 10, 5), widths=(48, 96, 192, 384), name="L1",
                            params=12_057_920, gmacs=1.6, top1=80.9, iphone14_ms=1.1),
    "L3": SwiftFormerConfig(depths=(4, 4, 12, 6), widths=(64, 128, 320, 512), name="L3",
                            params=28_494_736, gmacs=4.0, top1=83.0, iphone14_ms=1.9),
}


def get_config(variant) -> SwiftFormerConfig:
    """Resolves a variant name ("XS", "s", "l1", "SwiftFormer_L3"), a dict or a config."""
    if isinstance(variant, SwiftFormerConfig):
        return variant
    if isinstance(variant, dict):
        config = SwiftFormerConfig(**variant)
        known = VARIANTS.get(config.name)
        same = known is not None and (known.depths, known.widths, known.mlp_ratio,
                                      known.layer_scale_init) == (
            config.depths, config.widths, config.mlp_ratio, config.layer_scale_init)
        return known if same else dataclasses.replace(config, name="custom")
    if isinstance(variant, str):
        key = variant.upper().replace("SWIFTFORMER", "").strip("_- ")
        if key in VARIANTS:
            return VARIANTS[key]
        raise ValueError(f"unknown SwiftFormer variant {variant!r}; "
                         f"choose one of {', '.join(VARIANTS)} or pass a config")
    raise TypeError(f"variant must be a name, a dict or a SwiftFormerConfig, got {type(variant).__name__}")


def find_variant(depths: Sequence[int], widths: Sequence[int]) -> Optional[str]:
    """The name of the table entry with these depths and widths, if any."""
    for name, cfg in VARIANTS.items():
        if cfg.depths == tuple(depths) and cfg.widths == tuple(widths):
            return name
    return None
