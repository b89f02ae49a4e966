"""The segmenter's network, loss and augmentation.

`build_unet`: a small U-Net for CPUs. Four levels of two 3x3 convolutions (``width``, 2x, 4x, 8x
channels; ReLU, no normalisation layer, so training and inference compute the same function from
the first step), max-pooling down, bilinear upsampling + a 3x3 convolution up, skip connections
concatenated, and a 1x1 convolution with a sigmoid: the output is the **probability** map the
`--mask=model` contract asks for, ``(batch, size, size, 1)``. With ``width=12`` (the training's
default) it has 301,621 weights (16: 535,793, at 0.6x the speed); its input is fixed to
``(size, size, 3)``, which tells `load_mask_model` the size.

`dice_bce_loss`: binary cross-entropy plus ``1 - soft Dice`` (over the batch), the usual pair
for masks: cross-entropy gives every pixel a gradient, Dice keeps small objects from being
swamped by background.

`augment`: numpy, drawn from the ``rng`` it is given (so training is seeded), applied to image and
target together: a random zoom of 0.9-1.1 and shift of up to 5 % of the side (a box drawn a
little loose or tight, off centre; edges replicated), horizontal and vertical flips, brightness
(+-0.1), contrast (0.8-1.2), a per-channel gain (+-0.06) and pixel noise (sigma up to 0.02).
"""

from __future__ import annotations

import cv2
import numpy as np
import tensorflow as tf

LEVELS = 4


def build_unet(size: int, width: int = 12) -> tf.keras.Model:
    """The U-Net of the module docstring, for ``size`` x ``size`` RGB in [0, 1]."""
    if size % (2 ** (LEVELS - 1)):
        raise ValueError(f"the segmenter's size must be a multiple of {2 ** (LEVELS - 1)}, got {size}")
    layers = tf.keras.layers
    inputs = tf.keras.Input((size, size, 3), name="crop")
    x = layers.Rescaling(2.0, offset=-1.0)(inputs)
    skips = []
    for level in range(LEVELS):
        channels = width * 2 ** level
        x = layers.Conv2D(channels, 3, padding="same", activation="relu", name=f"down{level}_a")(x)
        x = layers.Conv2D(channels, 3, padding="same", activation="relu", name=f"down{level}_b")(x)
        if level < LEVELS - 1:
            skips.append(x)
            x = layers.MaxPooling2D(2)(x)
    for level in reversed(range(LEVELS - 1)):
        channels = width * 2 ** level
        x = layers.UpSampling2D(2, interpolation="bilinear")(x)
        x = layers.Conv2D(channels, 3, padding="same", activation="relu", name=f"up{level}_in")(x)
        x = layers.Concatenate()([x, skips[level]])
        x = layers.Conv2D(channels, 3, padding="same", activation="relu", name=f"up{level}_a")(x)
        x = layers.Conv2D(channels, 3, padding="same", activation="relu", name=f"up{level}_b")(x)
    outputs = layers.Conv2D(1, 1, activation="sigmoid", name="probability")(x)
    return tf.keras.Model(inputs, outputs, name="segmenter")


def dice_bce_loss(target: tf.Tensor, probability: tf.Tensor) -> tf.Tensor:
    """Binary cross-entropy + (1 - soft Dice), both over the whole batch."""
    probability = tf.clip_by_value(probability, 1e-6, 1.0 - 1e-6)
    bce = -tf.reduce_mean(target * tf.math.log(probability) + (1.0 - target) * tf.math.log(1.0 - probability))
    overlap = tf.reduce_sum(target * probability)
    dice = (2.0 * overlap + 1.0) / (tf.reduce_sum(target) + tf.reduce_sum(probability) + 1.0)
    return bce + 1.0 - dice


def augment(images: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Augmented copies of a batch (module docstring)."""
    size = images.shape[1]
    out_images, out_targets = np.empty_like(images), np.empty_like(targets)
    for k in range(len(images)):
        zoom = rng.uniform(0.9, 1.1)
        shift = rng.uniform(-0.05, 0.05, 2) * size
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), 0.0, zoom)
        matrix[:, 2] += shift
        image = cv2.warpAffine(images[k], matrix, (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        target = cv2.warpAffine(targets[k, :, :, 0], matrix, (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        if rng.random() < 0.5:
            image, target = image[:, ::-1], target[:, ::-1]
        if rng.random() < 0.5:
            image, target = image[::-1], target[::-1]
        mean = image.mean()
        image = (image - mean) * rng.uniform(0.8, 1.2) + mean + rng.uniform(-0.1, 0.1)
        image = image * (1.0 + rng.uniform(-0.06, 0.06, 3)) + rng.normal(0, rng.uniform(0, 0.02), image.shape)
        out_images[k] = np.clip(image, 0.0, 1.0)
        out_targets[k, :, :, 0] = target
    return out_images, out_targets
