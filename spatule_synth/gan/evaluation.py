"""Honest measures of generated crops, written by the training command every epoch.

* **Nearest training crop** (`nearest_distances`): each sample's RMS distance (RGBA in [0, 1]) to
  its closest training crop, next to the same measure for each training crop to its closest other
  training crop. Samples much closer to a training crop than real crops are to each other are
  memorised copies, not new instances.
* **Classifier two-sample test** (`two_sample_accuracy`): a small CNN is trained to tell real
  crops from generated ones on half of each and scored on the other half. Held-out accuracy near
  0.5: hard to tell apart; near 1.0: easy (an untrained generator scores about 1.0).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

BLOCK = 256  # samples compared with every reference at once


def nearest_distances(samples: np.ndarray, references: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """For each sample (crops in [-1, 1]), the RMS distance in [0, 1] units to the closest
    reference (``exclude_self``: samples are the references; each skips itself)."""
    b = ((references.reshape(len(references), -1).astype(np.float64) + 1.0) / 2.0)
    b_norms = (b * b).sum(1)
    found = np.empty(len(samples))
    for start in range(0, len(samples), BLOCK):  # memory: BLOCK x len(references) at a time
        a = (samples[start:start + BLOCK].reshape(-1, b.shape[1]).astype(np.float64) + 1.0) / 2.0
        squared = np.maximum((a * a).sum(1)[:, None] + b_norms[None, :] - 2.0 * a @ b.T, 0.0) / b.shape[1]
        if exclude_self:
            rows = np.arange(len(a))
            squared[rows, start + rows] = np.inf
        found[start:start + len(a)] = squared.min(axis=1)
    return np.sqrt(found)  # rounding leaves about 1e-8 for identical crops


def _classifier(size: int, seed: int) -> tf.keras.Model:
    """Its own seeded initial weights: the test never touches TensorFlow's global random state
    (which would change the GAN training it measures)."""
    def init(k: int):
        return tf.keras.initializers.GlorotUniform(seed=seed * 3 + k)
    return tf.keras.Sequential([
        tf.keras.Input((size, size, 4)),
        tf.keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", kernel_initializer=init(0)),
        tf.keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", kernel_initializer=init(1)),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(1, kernel_initializer=init(2)),
    ])


def two_sample_accuracy(real: np.ndarray, fake: np.ndarray, seed: int, epochs: int = 20) -> float:
    """Held-out accuracy of a small CNN telling ``real`` from ``fake`` crops (module docstring);
    as many of each are used, halves for training and for scoring. Give ``fake`` the class mix of
    ``real``, or the classifier can tell them apart by class alone."""
    count = min(len(real), len(fake))
    if count < 4:
        return float("nan")
    rng = np.random.default_rng(seed)
    real = real[rng.permutation(len(real))[:count]]
    fake = fake[rng.permutation(len(fake))[:count]]
    half = count // 2
    train_x = np.concatenate([real[:half], fake[:half]])
    train_y = np.concatenate([np.ones(half), np.zeros(half)]).astype(np.float32)
    test_x = np.concatenate([real[half:], fake[half:]])
    test_y = np.concatenate([np.ones(count - half), np.zeros(count - half)]).astype(np.float32)
    model = _classifier(real.shape[1], seed)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                  loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))
    order = rng.permutation(len(train_x))
    model.fit(train_x[order], train_y[order], batch_size=32, epochs=epochs, verbose=0, shuffle=False)
    predicted = model.predict(test_x, verbose=0)[:, 0] > 0
    return float(np.mean(predicted == (test_y > 0.5)))
