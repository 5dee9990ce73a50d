"""Image preprocessing of the training CLI: normalization, CIFAR and ImageNet augmentation.

Two styles (METHOD.md section 5):

* "cifar" (image side <= 64): pad 4 pixels with zeros, random crop back to the side, random
  horizontal flip (torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip). Applied to
  whole batches at once (`cifar_crop_flip`): one gather builds every crop and flip of a batch.
* "imagenet" (side > 64): random resized crop (area 0.08-1 of the image, aspect ratio 3/4-4/3,
  log-uniform, torchvision's sampler with 10 attempts and a central-crop fallback), resized to
  the side with antialiased bilinear resampling, random horizontal flip. Evaluation resizes the
  shorter side to round(side * 256 / 224) and takes the central side x side crop.

All randomness is stateless: every random choice is a function of an explicit seed, so a
pipeline's output depends only on the seeds it is given (the exact-resume property of
`keras_pkkd.data.Source.train_dataset`).

Images stay uint8 (or float in 0..255 after a resize) until `normalize`, which maps them to
float32 (x / 255 - mean) / std per channel.
"""

from __future__ import annotations

import math

import tensorflow as tf

CIFAR_PAD = 4
EVAL_RESIZE_RATIO = 256 / 224
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
CROP_ATTEMPTS = 10

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

NORMALIZATION = {
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
    "imagenet2012": (IMAGENET_MEAN, IMAGENET_STD),
}


def style_for(image_size):
    """The augmentation style of a square input side: "cifar" up to 64 pixels, else "imagenet"."""
    return "cifar" if image_size <= 64 else "imagenet"


def normalize(images, mean, std):
    """float32 (images / 255 - mean) / std, per channel (last axis).

    Args:
        images: uint8 or float tensor in 0..255, channels last (3 channels).
        mean, std: sequences of 3 floats on the 0..1 scale.
    """
    scale = tf.constant([1.0 / (255.0 * s) for s in std], tf.float32)
    offset = tf.constant([-m / s for m, s in zip(mean, std)], tf.float32)
    return tf.cast(images, tf.float32) * scale + offset


def cifar_crop_flip(images, offsets, flips, pad=CIFAR_PAD):
    """Zero-pads a batch by `pad` pixels, crops each image back to its size, flips some.

    Args:
        images: [B, H, W, C] batch (any dtype).
        offsets: int32 [B, 2], each image's (row, column) crop offset in the padded image,
            in [0, 2 * pad].
        flips: bool [B], whether each crop is flipped horizontally.
        pad: padding in pixels on every side.

    Returns:
        [B, H, W, C] tensor of the input's dtype: out[b, r, c] = padded[b, offsets[b, 0] + r,
        offsets[b, 1] + (W - 1 - c if flips[b] else c)].
    """
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offsets = tf.cast(offsets, tf.int32)
    rows = offsets[:, :1] + tf.range(height)[None, :]
    forward = tf.range(width)[None, :]
    cols = offsets[:, 1:] + tf.where(flips[:, None], width - 1 - forward, forward)
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def crop_window(height, width, seed, scale=CROP_SCALE, ratio=CROP_RATIO, attempts=CROP_ATTEMPTS):
    """torchvision's RandomResizedCrop window, drawn statelessly from `seed`.

    Up to `attempts` candidates: area uniform in scale * (height * width), aspect ratio
    (width / height) log-uniform in `ratio`; the first that fits is placed uniformly at random.
    When none fits, the central crop of the largest window whose aspect ratio is within `ratio`.

    Args:
        height, width: int32 scalars, the image size.
        seed: int32/int64 [2] stateless seed.

    Returns:
        int32 scalars (top, left, crop_height, crop_width).
    """
    h_f = tf.cast(height, tf.float64)
    w_f = tf.cast(width, tf.float64)
    u = tf.random.stateless_uniform([attempts, 4], seed=seed, dtype=tf.float64)
    area = h_f * w_f * (scale[0] + u[:, 0] * (scale[1] - scale[0]))
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = tf.exp(log_lo + u[:, 1] * (log_hi - log_lo))
    crop_w = tf.round(tf.sqrt(area * aspect))
    crop_h = tf.round(tf.sqrt(area / aspect))
    fits = (crop_w > 0) & (crop_w <= w_f) & (crop_h > 0) & (crop_h <= h_f)
    top = tf.floor(u[:, 2] * (h_f - crop_h + 1))
    left = tf.floor(u[:, 3] * (w_f - crop_w + 1))
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)

    in_ratio = w_f / h_f
    fb_w = tf.where(in_ratio < ratio[0], w_f,
                    tf.where(in_ratio > ratio[1], tf.round(h_f * ratio[1]), w_f))
    fb_h = tf.where(in_ratio < ratio[0], tf.round(w_f / ratio[0]), h_f)
    fb_top = tf.floor((h_f - fb_h) / 2)
    fb_left = tf.floor((w_f - fb_w) / 2)

    found = tf.reduce_any(fits)
    window = tf.where(found,
                      tf.stack([top[first], left[first], crop_h[first], crop_w[first]]),
                      tf.stack([fb_top, fb_left, fb_h, fb_w]))
    window = tf.cast(window, tf.int32)
    return window[0], window[1], window[2], window[3]


def _split_seed(seed):
    seeds = tf.random.experimental.stateless_split(seed, 2)
    return seeds[0], seeds[1]


def _maybe_flip(image, seed):
    flip = tf.random.stateless_uniform([], seed=seed) < 0.5
    return tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)


def _resize(image, size):
    """Antialiased bilinear resize of one image to [size, size], float32 in 0..255."""
    return tf.image.resize(image, [size, size], method="bilinear", antialias=True)


def imagenet_train_image(image, size, seed):
    """Random resized crop of a decoded image + random flip.

    Args:
        image: uint8 [H, W, 3].
        size: output side (int).
        seed: [2] stateless seed.

    Returns:
        float32 [size, size, 3] in 0..255.
    """
    crop_seed, flip_seed = _split_seed(seed)
    shape = tf.shape(image)
    top, left, h, w = crop_window(shape[0], shape[1], crop_seed)
    crop = image[top:top + h, left:left + w]
    return _maybe_flip(_resize(crop, size), flip_seed)


def imagenet_train_bytes(encoded, size, seed):
    """`imagenet_train_image` of an encoded image; JPEGs decode only the crop window.

    Args:
        encoded: scalar string, a JPEG/PNG/BMP/GIF file's bytes.
        size: output side (int).
        seed: [2] stateless seed.

    Returns:
        float32 [size, size, 3] in 0..255.
    """
    crop_seed, flip_seed = _split_seed(seed)

    def jpeg():
        shape = tf.io.extract_jpeg_shape(encoded)
        top, left, h, w = crop_window(shape[0], shape[1], crop_seed)
        return tf.image.decode_and_crop_jpeg(encoded, tf.stack([top, left, h, w]), channels=3)

    def other():
        image = decode(encoded)
        shape = tf.shape(image)
        top, left, h, w = crop_window(shape[0], shape[1], crop_seed)
        return image[top:top + h, left:left + w]

    crop = tf.cond(tf.io.is_jpeg(encoded), jpeg, other)
    crop.set_shape([None, None, 3])
    return _maybe_flip(_resize(crop, size), flip_seed)


def eval_resize_side(size):
    """The shorter side an evaluation image is resized to before the central crop."""
    return int(round(size * EVAL_RESIZE_RATIO))


def imagenet_eval_image(image, size):
    """Resizes the shorter side to round(size * 256 / 224), then takes the central crop.

    Args:
        image: uint8 [H, W, 3].
        size: output side (int).

    Returns:
        float32 [size, size, 3] in 0..255 (no resampling when the shorter side already has
        the target length: the crop is then exact).
    """
    side = eval_resize_side(size)
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    short = tf.minimum(h, w)
    scale = side / tf.cast(short, tf.float64)
    new_h = tf.cast(tf.round(tf.cast(h, tf.float64) * scale), tf.int32)
    new_w = tf.cast(tf.round(tf.cast(w, tf.float64) * scale), tf.int32)
    new_h = tf.where(h == short, side, new_h)
    new_w = tf.where(w == short, side, new_w)
    resized = tf.cond(
        (new_h == h) & (new_w == w),
        lambda: tf.cast(image, tf.float32),
        lambda: tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear",
                                antialias=True))
    top = (new_h - size) // 2
    left = (new_w - size) // 2
    out = resized[top:top + size, left:left + size]
    out.set_shape([size, size, 3])
    return out


def decode(encoded):
    """Decodes a JPEG/PNG/BMP/GIF file's bytes to uint8 [H, W, 3] (first frame of a GIF)."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def resize_uint8(image, size):
    """Resizes one uint8 image to [size, size] (antialiased bilinear, rounded); unchanged
    when it already has that size."""
    shape = tf.shape(image)

    def resize():
        out = tf.image.resize(image, [size, size], method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)

    out = tf.cond((shape[0] == size) & (shape[1] == size), lambda: image, resize)
    out.set_shape([size, size, 3])
    return out
