"""The official training recipe (Amshaker/SwiftFormer main.py and dist_train.sh), per
variant. Every value is a command-line flag of swiftformer-train."""

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


# Quantization-aware fine-tuning (swiftformer-train --qat) starts from a trained float model: one
# epoch at a small constant rate, no warm-up, AGC, stochastic depth or mixing, and the float
# model's logits as the target of most of the loss (distillation_alpha; measured on the
# synthetic XS: squared logit error took the int8 logit cosine from 0.9982 to 0.9994 in
# 100 steps, soft-target cross-entropy to 0.9990).
QAT_OVERRIDES = {"epochs": 1, "lr": 5e-5, "warmup_epochs": 0, "min_lr": 5e-5,
                 "weight_decay": 0.0, "clip_grad": 0.0, "ema_decay": 0.99, "drop_path": 0.0,
                 "mixup": 0.0, "cutmix": 0.0, "reprob": 0.0, "distillation_alpha": 0.95}


def qat_recipe(variant: str) -> Recipe:
    return dataclasses.replace(recipe_for(variant), **QAT_OVERRIDES)
