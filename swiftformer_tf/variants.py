"""The SwiftFormer variant table: the single source of truth for every variant.

Architecture values are those of the official code (Amshaker/SwiftFormer,
``models/swiftformer.py``); ``params`` are counted on the official model with the
distillation head; ``gmacs``, ``top1`` and ``iphone14_ms`` are the paper's / README's
figures (ImageNet-1k top-1 with hard distillation, iPhone 14 Neural Engine latency).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence, Tuple

# The plausible range of a SwiftFormer: the largest official variant (L3) has 12 blocks in
# a stage, widths up to 512, MLP ratio 4 and 28.5 M parameters. Files (checkpoints, .keras
# configurations) are untrusted: what they declare is checked against these bounds before
# anything is built, and so is what the whole model would cost, since numbers that are each
# plausible can still declare a model of many gigabytes.
MAX_DEPTH, MAX_WIDTH, MAX_MLP_RATIO = 64, 2048, 16.0
MAX_CLASSES = 100_000
MAX_PARAMETERS = 100_000_000  # 400 MB in float32, 3.5 times SwiftFormer-L3
MAX_ACTIVATION_BYTES = 2 ** 31  # the largest tensor of one image at a fixed input size


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
        depths, widths = _whole_numbers("depths", self.depths), _whole_numbers("widths", self.widths)
        if len(depths) != 4 or len(widths) != 4:
            raise ValueError(
                f"SwiftFormer needs 4 stages: got depths={depths}, widths={widths}")
        if not all(1 <= d <= MAX_DEPTH for d in depths) or \
                not all(1 <= w <= MAX_WIDTH for w in widths):
            raise ValueError(f"depths must be from 1 to {MAX_DEPTH} and widths from 1 to "
                             f"{MAX_WIDTH}: got {list(depths)}, {list(widths)}")
        if widths[0] % 2:
            raise ValueError(f"widths[0] must be even (the stem uses widths[0] // 2): {widths[0]}")
        mlp_ratio = finite_number("mlp_ratio", self.mlp_ratio)
        if not 0 < mlp_ratio <= MAX_MLP_RATIO or min(int(w * mlp_ratio) for w in widths) < 1:
            raise ValueError(f"mlp_ratio must be above 0 (a hidden width of at least 1) and "
                             f"at most {MAX_MLP_RATIO:g}: got {mlp_ratio!r}")
        finite_number("layer_scale_init", self.layer_scale_init)
        object.__setattr__(self, "depths", depths)
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "mlp_ratio", mlp_ratio)

    @property
    def stem_widths(self) -> Tuple[int, int]:
        return self.widths[0] // 2, self.widths[0]

    def to_dict(self) -> dict:
        return {"depths": list(self.depths), "widths": list(self.widths),
                "mlp_ratio": self.mlp_ratio, "layer_scale_init": self.layer_scale_init,
                "name": self.name}


def _whole_numbers(name, values) -> Tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name} must be a list of 4 whole numbers, got {values!r:.80}")
    values = tuple(values)
    if not all(isinstance(v, int) and not isinstance(v, bool) or
               isinstance(v, float) and v.is_integer() for v in values):
        raise ValueError(f"{name} must be a list of 4 whole numbers, got {list(values)!r:.80}")
    return tuple(int(v) for v in values)


def finite_number(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r:.80}")
    return float(value)


def parameter_count(config: "SwiftFormerConfig", num_classes: int = 0,
                    distillation: bool = False) -> int:
    """The model's parameter count (BatchNorm statistics included), from its configuration
    alone: what building it would allocate."""
    c1, c2 = config.stem_widths
    count = 27 * c1 + c1 + 4 * c1 + 9 * c1 * c2 + c2 + 4 * c2  # two conv + BN
    previous = c2
    for index, (width, depth) in enumerate(zip(config.widths, config.depths)):
        hidden = int(width * config.mlp_ratio)
        if index:
            count += 9 * previous * width + width + 4 * width  # downsampling conv + BN
        mlp = width * hidden + hidden + hidden * width + width  # two 1x1 convs
        conv_block = 10 * width + 4 * width + mlp + width  # dw conv, BN, MLP, layer scale
        # local representation (dw conv, BN, two 1x1 convs, layer scale), attention (query,
        # key, w_g, proj, final), the MLP with its BN, two layer scales
        attention_block = 6 * width * width + 28 * width + mlp
        count += (depth - 1) * conv_block + attention_block
        previous = width
    heads = (2 if distillation else 1) * (previous * num_classes + num_classes) \
        if num_classes else 0
    return count + 4 * previous + heads


def check_cost(config: "SwiftFormerConfig", num_classes: int = 0, distillation: bool = False,
               input_size: Optional[Sequence[Optional[int]]] = None):
    """Refuses, before anything is built, a model whose parameters or (at a fixed input
    size) largest activation would exceed the bounds above: ValueError naming the cost."""
    if num_classes > MAX_CLASSES:
        raise ValueError(f"num_classes {num_classes} is more than {MAX_CLASSES:,}")
    parameters = parameter_count(config, num_classes, distillation)
    if parameters > MAX_PARAMETERS:
        raise ValueError(
            f"declares a model of {parameters:,} parameters ({parameters * 4 / 1e9:.1f} GB in "
            f"float32; depths {list(config.depths)}, widths {list(config.widths)}, mlp_ratio "
            f"{config.mlp_ratio:g}, {num_classes} classes): at most {MAX_PARAMETERS:,} are "
            f"accepted")
    if input_size and all(isinstance(n, int) for n in input_size[:2]):
        h, w = input_size[:2]
        largest = max(math.ceil(h / stride) * math.ceil(w / stride) * int(width * config.mlp_ratio)
                      for stride, width in zip((4, 8, 16, 32), config.widths)) * 4
        if largest > MAX_ACTIVATION_BYTES:
            raise ValueError(f"input size {h}x{w} gives this model an activation of "
                             f"{largest / 1e9:.1f} GB per image (at most "
                             f"{MAX_ACTIVATION_BYTES / 1e9:.1f} GB)")


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
