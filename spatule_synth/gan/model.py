"""The conditional DCGAN: generator (noise + class -> RGBA) and discriminator (RGBA + class ->
real/fake logit), small enough to train on a CPU at 32x32 or 64x64.

Generator: ``[z, one-hot class]`` -> Dense -> 4x4x(8 * width) -> transposed convolutions doubling
the side (batch norm, leaky ReLU) -> ``size`` x ``size`` x 4, tanh (RGB and alpha in [-1, 1]).
Discriminator: the crop with the one-hot class broadcast as extra channels -> strided
convolutions (leaky ReLU, dropout) -> one logit. Losses: the non-saturating GAN loss with
one-sided label smoothing (real targets 0.9).
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
    for step in range(steps - 1):
        channels //= 2
        x = tf.keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same", use_bias=False)(x)
        x = tf.keras.layers.BatchNormalization()(x)
        x = tf.keras.layers.LeakyReLU(0.2)(x)
    rgba = tf.keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same", activation="tanh", name="rgba")(x)
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
        x = tf.keras.layers.Dropout(0.2)(x)
        channels *= 2
    x = tf.keras.layers.Flatten()(x)
    logit = tf.keras.layers.Dense(1, name="logit")(x)
    return tf.keras.Model([image, label], logit, name="discriminator")


_BCE = tf.keras.losses.BinaryCrossentropy(from_logits=True)


def discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    return (_BCE(tf.fill(tf.shape(real_logits), 0.9), real_logits)
            + _BCE(tf.zeros_like(fake_logits), fake_logits))


def generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    return _BCE(tf.ones_like(fake_logits), fake_logits)
