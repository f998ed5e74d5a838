"""The official training recipe (Amshaker/SwiftFormer main.py and dist_train.sh), per
variant. Every value is a command-line flag of training/train.py."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Recipe:
    epochs: int = 300
    batch_size: int = 128  # per replica, like the official per-GPU batch
    image_size: int = 224
    lr: float = 2e-3  # not scaled with the batch
    weight_decay: float = 0.025  # none on biases and BatchNorm parameters
    opt_eps: float = 1e-8
    warmup_epochs: int = 5
    warmup_lr: float = 1e-6
    min_lr: float = 1e-5
    clip_grad: float = 0.01  # adaptive gradient clipping (AGC)
    smoothing: float = 0.1
    ema_decay: float = 0.99996
    rand_augment: bool = True  # rand-m9-mstd0.5-inc1
    color_jitter: float = 0.4  # used only without RandAugment
    crop_scale_min: float = 0.08
    reprob: float = 0.25  # random erasing, pixel mode
    mixup: float = 0.8
    cutmix: float = 1.0
    mixup_switch_prob: float = 0.5
    distillation_alpha: float = 0.5  # hard distillation
    drop_path: float = 0.0


VARIANT_OVERRIDES = {
    "XS": {"rand_augment": False, "mixup": 0.0, "cutmix": 0.0},
    "S": {"mixup": 0.0, "cutmix": 0.0},
    "L1": {},
    "L3": {},
}


def recipe_for(variant: str) -> Recipe:
    return dataclasses.replace(Recipe(), **VARIANT_OVERRIDES.get(variant, {}))
