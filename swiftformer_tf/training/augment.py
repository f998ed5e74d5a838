"""Training and evaluation transforms (the official timm 0.5.4 recipe), written with
stateless random ops: every random choice derives from a per-example seed, so that an
interrupted run resumed at the same step sees exactly the same augmented images.

Images are float32 HWC in 0-255 until :func:`normalize`.
"""

from __future__ import annotations

import math

import tensorflow as tf

from swiftformer_tf.imagenet import IMAGENET_MEAN, IMAGENET_STD

FILL = (124.0, 116.0, 104.0)  # timm's fill colour for geometric RandAugment ops


def _seeds(seed, count):
    """``count`` independent stateless seeds from one."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, count))


def _uniform(seed, low=0.0, high=1.0, shape=()):
    return tf.random.stateless_uniform(shape, seed, low, high)


def normalize(image):
    return (image / 255.0 - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)


def eval_transform(image, size):
    """Official eval: bicubic resize of the shorter side to size*256/224, centre crop."""
    height, width = size
    image = tf.cast(image, tf.float32)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    target = tf.cast(tf.round(min(height, width) * 256.0 / 224.0), tf.float32)
    scale = target / tf.reduce_min(shape)
    new = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), [height, width])
    image = tf.image.resize(image, new, method="bicubic", antialias=True)
    top, left = (new[0] - height) // 2, (new[1] - width) // 2
    image = tf.image.crop_to_bounding_box(image, top, left, height, width)
    return tf.clip_by_value(image, 0.0, 255.0)


def random_resized_crop(image, size, seed, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    begin, crop, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
        area_range=scale, aspect_ratio_range=ratio, max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    image = tf.slice(image, begin, crop)
    image = tf.image.resize(tf.cast(image, tf.float32), size, method="bicubic")
    return tf.ensure_shape(tf.clip_by_value(image, 0.0, 255.0), tuple(size) + (3,))


def color_jitter(image, strength, seed):
    """Brightness, contrast and saturation factors in [1 - s, 1 + s] (timm: no hue)."""
    s1, s2, s3 = _seeds(seed, 3)
    image = image * _uniform(s1, 1 - strength, 1 + strength)
    gray_mean = tf.reduce_mean(tf.image.rgb_to_grayscale(image))
    image = gray_mean + (image - gray_mean) * _uniform(s2, 1 - strength, 1 + strength)
    gray = tf.image.rgb_to_grayscale(image)
    image = gray + (image - gray) * _uniform(s3, 1 - strength, 1 + strength)
    return tf.clip_by_value(image, 0.0, 255.0)


# -- RandAugment (rand-m9-mstd0.5-inc1: 2 ops, magnitude ~ N(9, 0.5), each applied w.p. 0.5)
def _blend(image, degenerate, factor):
    return tf.clip_by_value(degenerate + factor * (image - degenerate), 0.0, 255.0)


def _affine(image, matrix):
    """Applies a 3x3 affine map (output -> input coordinates) about the image centre."""
    h, w = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
    centre = tf.convert_to_tensor([[1.0, 0.0, w / 2], [0.0, 1.0, h / 2], [0.0, 0.0, 1.0]])
    back = tf.convert_to_tensor([[1.0, 0.0, -w / 2], [0.0, 1.0, -h / 2], [0.0, 0.0, 1.0]])
    full = centre @ matrix @ back
    transform = tf.reshape(full, [-1])[:8] / full[2, 2]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform[None], output_shape=tf.shape(image)[:2],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")[0]
    inside = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.ones_like(image[..., :1])[None], transforms=transform[None],
        output_shape=tf.shape(image)[:2], fill_value=0.0, interpolation="NEAREST",
        fill_mode="CONSTANT")[0]
    return out + (1.0 - inside) * tf.constant(FILL)


def _equalize(image):
    def channel(c):
        c = tf.cast(c, tf.int32)
        hist = tf.math.bincount(c, minlength=256, maxlength=256, dtype=tf.float32)
        last = tf.reduce_max(tf.where(hist > 0, tf.range(256), 0))
        step = (tf.reduce_sum(hist) - tf.gather(hist, last)) / 255.0
        lut = tf.clip_by_value(tf.floor((tf.cumsum(hist) - hist + step / 2) / tf.maximum(step, 1e-6)), 0, 255)
        return tf.where(step > 0, tf.gather(lut, c), tf.cast(c, tf.float32))
    channels = tf.unstack(tf.clip_by_value(tf.round(image), 0, 255), axis=-1)
    return tf.stack([channel(c) for c in channels], axis=-1)


def _rand_augment_op(index, image, level, sign):
    """One of timm's 15 'increasing' RandAugment ops; ``level`` in [0, 1]."""
    gray = tf.image.rgb_to_grayscale(image)

    def shear(axis):
        s = sign * level * 0.3
        m = [[1.0, s, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] if axis == 0 else \
            [[1.0, 0.0, 0.0], [s, 1.0, 0.0], [0.0, 0.0, 1.0]]
        return lambda: _affine(image, tf.convert_to_tensor(m))

    def translate(axis):
        h, w = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
        t = sign * level * 0.45 * (w if axis == 0 else h)
        m = tf.stack([tf.stack([1.0, 0.0, t if axis == 0 else 0.0]),
                      tf.stack([0.0, 1.0, t if axis == 1 else 0.0]),
                      tf.constant([0.0, 0.0, 1.0])])
        return lambda: _affine(image, m)

    def rotate():
        a = sign * level * 30.0 * math.pi / 180.0
        m = tf.stack([tf.stack([tf.cos(a), -tf.sin(a), 0.0]), tf.stack([tf.sin(a), tf.cos(a), 0.0]),
                      tf.constant([0.0, 0.0, 1.0])])
        return _affine(image, m)

    def autocontrast():
        low = tf.reduce_min(image, axis=[0, 1])
        high = tf.reduce_max(image, axis=[0, 1])
        scale = tf.where(high > low, 255.0 / tf.maximum(high - low, 1e-6), 1.0)
        return tf.where(high > low, (image - low) * scale, image)

    def posterize():
        shift = tf.cast(8 - (4 - tf.cast(level * 4, tf.int32)), tf.float32)
        step = tf.pow(2.0, shift)
        return tf.floor(image / step) * step

    def solarize():
        threshold = 256.0 - level * 256.0
        return tf.where(image >= threshold, 255.0 - image, image)

    def solarize_add():
        return tf.where(image < 128.0, tf.minimum(image + level * 110.0, 255.0), image)

    def sharpness():
        kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
        kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
        smooth = tf.nn.depthwise_conv2d(image[None], kernel, [1, 1, 1, 1], "SAME")[0]
        return _blend(image, smooth, 1.0 + sign * level * 0.9)

    branches = [
        autocontrast,
        lambda: _equalize(image),
        lambda: 255.0 - image,
        rotate,
        posterize,
        solarize,
        solarize_add,
        lambda: _blend(image, gray, 1.0 + sign * level * 0.9),  # colour
        lambda: _blend(image, tf.reduce_mean(gray), 1.0 + sign * level * 0.9),  # contrast
        lambda: _blend(image, tf.zeros_like(image), 1.0 + sign * level * 0.9),  # brightness
        sharpness,
        shear(0), shear(1), translate(0), translate(1),
    ]
    out = tf.switch_case(index, branches)
    return tf.clip_by_value(tf.ensure_shape(out, image.shape), 0.0, 255.0)


RAND_AUGMENT_OPS = 15


def rand_augment(image, seed, num_ops=2, magnitude=9.0, magnitude_std=0.5, prob=0.5):
    for op_seed in _seeds(seed, num_ops):
        s_index, s_mag, s_sign, s_apply = _seeds(op_seed, 4)
        index = tf.random.stateless_uniform((), s_index, 0, RAND_AUGMENT_OPS, dtype=tf.int32)
        level = tf.clip_by_value(
            magnitude + magnitude_std * tf.random.stateless_normal((), s_mag), 0.0, 10.0) / 10.0
        sign = tf.where(_uniform(s_sign) < 0.5, -1.0, 1.0)
        image = tf.cond(_uniform(s_apply) < prob,
                        lambda: _rand_augment_op(index, image, level, sign), lambda: image)
    return image


def random_erasing(image, seed, prob=0.25, area=(0.02, 1 / 3), log_ratio=(math.log(0.3), math.log(3.3))):
    """timm RandomErasing, mode 'pixel', one box: normal noise on the normalised image."""
    s_apply, s_area, s_ratio, s_top, s_left, s_noise = _seeds(seed, 6)
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    target = _uniform(s_area, *area) * tf.cast(h * w, tf.float32)
    ratio = tf.exp(_uniform(s_ratio, *log_ratio))
    eh = tf.cast(tf.round(tf.sqrt(target * ratio)), tf.int32)
    ew = tf.cast(tf.round(tf.sqrt(target / ratio)), tf.int32)
    fits = tf.logical_and(eh < h, ew < w)
    eh, ew = tf.minimum(eh, h - 1), tf.minimum(ew, w - 1)
    top = tf.random.stateless_uniform((), s_top, 0, tf.maximum(h - eh, 1), dtype=tf.int32)
    left = tf.random.stateless_uniform((), s_left, 0, tf.maximum(w - ew, 1), dtype=tf.int32)
    rows, cols = tf.range(h)[:, None], tf.range(w)[None, :]
    box = (rows >= top) & (rows < top + eh) & (cols >= left) & (cols < left + ew)
    noise = tf.random.stateless_normal(tf.shape(image), s_noise)
    erase = tf.logical_and(_uniform(s_apply) < prob, fits)
    return tf.where(tf.logical_and(erase, box[..., None]), noise, image)


def train_transform(image, seed, size, rand_augment_on=True, color_jitter_strength=0.4,
                    erase_prob=0.25):
    """RRC (bicubic) -> flip -> RandAugment or colour jitter -> normalise -> random erasing."""
    s_crop, s_flip, s_aug, s_erase = _seeds(seed, 4)
    image = random_resized_crop(image, size, s_crop)
    image = tf.image.stateless_random_flip_left_right(image, s_flip)
    if rand_augment_on:
        image = rand_augment(image, s_aug)
    elif color_jitter_strength:
        image = color_jitter(image, color_jitter_strength, s_aug)
    image = normalize(image)
    if erase_prob:
        image = random_erasing(image, s_erase, erase_prob)
    return image


def _beta(seed, alpha):
    s1, s2 = _seeds(seed, 2)
    a = tf.random.stateless_gamma((), s1, alpha)
    b = tf.random.stateless_gamma((), s2, alpha)
    return a / (a + b)


def mixup_cutmix(images, targets, seed, mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5):
    """Batch-mode timm Mixup: mixes each batch with its reverse; soft ``targets``."""
    if not mixup_alpha and not cutmix_alpha:
        return images, targets
    s_switch, s_lam, s_y, s_x = _seeds(seed, 4)
    use_cutmix = tf.constant(bool(cutmix_alpha and not mixup_alpha))
    if mixup_alpha and cutmix_alpha:
        use_cutmix = _uniform(s_switch) < switch_prob
    lam_mix = _beta(s_lam, mixup_alpha) if mixup_alpha else tf.constant(1.0)
    lam_cut = _beta(s_lam, cutmix_alpha) if cutmix_alpha else tf.constant(1.0)
    flipped = tf.reverse(images, [0])
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    cut = tf.sqrt(1.0 - lam_cut)
    ch, cw = tf.cast(tf.cast(h, tf.float32) * cut, tf.int32), tf.cast(tf.cast(w, tf.float32) * cut, tf.int32)
    cy = tf.random.stateless_uniform((), s_y, 0, h, dtype=tf.int32)
    cx = tf.random.stateless_uniform((), s_x, 0, w, dtype=tf.int32)
    y0, y1 = tf.clip_by_value(cy - ch // 2, 0, h), tf.clip_by_value(cy + ch // 2, 0, h)
    x0, x1 = tf.clip_by_value(cx - cw // 2, 0, w), tf.clip_by_value(cx + cw // 2, 0, w)
    rows, cols = tf.range(h)[:, None], tf.range(w)[None, :]
    box = tf.cast((rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1), images.dtype)[None, :, :, None]
    lam_box = 1.0 - tf.cast((y1 - y0) * (x1 - x0), tf.float32) / tf.cast(h * w, tf.float32)
    mixed = tf.where(use_cutmix, images * (1 - box) + flipped * box,
                     lam_mix * images + (1 - lam_mix) * flipped)
    lam = tf.where(use_cutmix, lam_box, lam_mix)
    return mixed, lam * targets + (1 - lam) * tf.reverse(targets, [0])
