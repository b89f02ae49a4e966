"""The conditional DCGAN: generator (noise + class -> RGBA) and discriminator (RGBA + class ->
real/fake logit), small enough to train on a CPU at 32x32 or 64x64.

Generator: ``[z, one-hot class]`` -> Dense -> 4x4x(8 * width) -> upsampling + 3x3 convolutions
doubling the side (batch norm, leaky ReLU; resize-convolutions, which leave no checkerboard
pattern) -> ``size`` x ``size`` x 4, tanh (RGB and alpha in [-1, 1]). Discriminator: the crop
with the one-hot class broadcast as extra channels -> strided convolutions (leaky ReLU) -> one
logit. Losses: the non-saturating GAN loss with one-sided label smoothing (real targets 0.9).

A few hundred crops are few for a GAN: the discriminator memorises them and the generator stops
learning. `diff_augment` (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training") shifts, re-lights and cuts holes in both the real and the generated crops the
discriminator sees, the same way, so it cannot memorise and the generator is not taught the
augmentations.
"""

from __future__ import annotations

import math

import tensorflow as tf

SIZES = (32, 64)
LATENT_DIM = 64


def build_generator(classes: int, size: int, width: int = 16, latent_dim: int = LATENT_DIM) -> tf.keras.Model:
    steps = int(math.log2(size // 4))
    noise = tf.keras.Input((latent_dim,), name="noise")
    label = tf.keras.Input((classes,), name="class_one_hot")
    x = tf.keras.layers.Concatenate()([noise, label])
    channels = width * 2 ** steps
    x = tf.keras.layers.Dense(4 * 4 * channels, use_bias=False)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.LeakyReLU(0.2)(x)
    x = tf.keras.layers.Reshape((4, 4, channels))(x)
    for step in range(steps):
        channels //= 2
        x = tf.keras.layers.UpSampling2D(2)(x)
        x = tf.keras.layers.Conv2D(max(channels, width), 3, padding="same", use_bias=False)(x)
        x = tf.keras.layers.BatchNormalization()(x)
        x = tf.keras.layers.LeakyReLU(0.2)(x)
    rgba = tf.keras.layers.Conv2D(4, 3, padding="same", activation="tanh", name="rgba")(x)
    return tf.keras.Model([noise, label], rgba, name="generator")


def build_discriminator(classes: int, size: int, width: int = 16) -> tf.keras.Model:
    image = tf.keras.Input((size, size, 4), name="rgba")
    label = tf.keras.Input((classes,), name="class_one_hot")
    planes = tf.keras.layers.Reshape((1, 1, classes))(label)
    planes = tf.keras.layers.UpSampling2D(size)(planes)
    x = tf.keras.layers.Concatenate()([image, planes])
    channels = width
    for _ in range(int(math.log2(size // 4))):
        x = tf.keras.layers.Conv2D(channels, 4, strides=2, padding="same")(x)
        x = tf.keras.layers.LeakyReLU(0.2)(x)
        channels *= 2
    x = tf.keras.layers.Flatten()(x)
    logit = tf.keras.layers.Dense(1, name="logit")(x)
    return tf.keras.Model([image, label], logit, name="discriminator")


def diff_augment(crops: tf.Tensor) -> tf.Tensor:
    """Random brightness and contrast (RGB only), a shift of up to 1/8 of the side and a hole of a
    quarter of the area (made transparent), per crop; differentiable (module docstring)."""
    batch = tf.shape(crops)[0]
    size = crops.shape[1]
    rgb, alpha = crops[..., :3], crops[..., 3:]
    rgb = rgb + (tf.random.uniform([batch, 1, 1, 1]) - 0.5) * 0.5
    mean = tf.reduce_mean(rgb, axis=[1, 2, 3], keepdims=True)
    rgb = (rgb - mean) * tf.random.uniform([batch, 1, 1, 1], 0.75, 1.25) + mean
    crops = tf.concat([rgb, alpha], axis=-1)
    shift = size // 8
    padded = tf.pad(crops, [[0, 0], [shift, shift], [shift, shift], [0, 0]], constant_values=-1.0)
    offsets = tf.random.uniform([batch, 2], 0, 2 * shift + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(size)[None, :]
    cols = offsets[:, 1:] + tf.range(size)[None, :]
    crops = tf.gather(padded, rows, axis=1, batch_dims=1)
    crops = tf.gather(crops, cols, axis=2, batch_dims=1)
    hole = size // 2
    corner = tf.random.uniform([batch, 2], 0, size - hole + 1, dtype=tf.int32)
    grid = tf.range(size)
    inside_y = (grid[None, :] >= corner[:, :1]) & (grid[None, :] < corner[:, :1] + hole)
    inside_x = (grid[None, :] >= corner[:, 1:]) & (grid[None, :] < corner[:, 1:] + hole)
    keep = 1.0 - tf.cast(inside_y[:, :, None] & inside_x[:, None, :], crops.dtype)[..., None]
    return crops * keep + (keep - 1.0)  # holes become -1: transparent black


_BCE = tf.keras.losses.BinaryCrossentropy(from_logits=True)


def discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    return (_BCE(tf.fill(tf.shape(real_logits), 0.9), real_logits)
            + _BCE(tf.zeros_like(fake_logits), fake_logits))


def generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    return _BCE(tf.ones_like(fake_logits), fake_logits)
