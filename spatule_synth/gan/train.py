"""Training of the conditional GAN (``python -m spatule_synth.gan train``).

Seeded: the batches, the noise of every step and the sample noise come from numpy generators of
``(seed, epoch)``; TensorFlow's own randomness (initial weights, dropout) from
``keras.utils.set_random_seed(seed)`` with op determinism on. A run writes, in MODEL_DIR:

* ``checkpoints/``: generator, discriminator, optimisers and the epoch, after every epoch
  (``--resume`` continues from the last one; it is not promised to give the bits of an
  uninterrupted run, since dropout's state is not replayed);
* ``samples/epoch_NNNN.png``: a sample sheet per epoch, one row per class (the same noise every
  epoch, RGBA over a grey checkerboard);
* ``generator.keras`` and ``gan.json`` (classes, crop size, latent size, each class's typical box
  size, and per epoch the losses and the evaluation of `spatule_synth.gan.evaluation`), written at
  the end: a folder without ``gan.json`` is not a finished model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from typing import Callable

import cv2
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from spatule_synth.core.output_dir import atomic_write_bytes
from spatule_synth.gan.crops import CropSet, on_checkerboard, to_uint8
from spatule_synth.gan.evaluation import nearest_distances, two_sample_accuracy
from spatule_synth.gan.model_files import INFO_FILE, INFO_FORMAT, MODEL_FILE
from spatule_synth.gan.model import (LATENT_DIM, SIZES, build_discriminator, build_generator,
                                     diff_augment, discriminator_loss, generator_loss)

SAMPLES_PER_CLASS = 8
EVAL_CROPS = 512  # at most this many real crops (and as many generated, same classes) per evaluation
BATCH = 256  # crops generated at once


class GanTrainingError(ValueError):
    """The training cannot start as asked; the message says why."""


@dataclasses.dataclass(frozen=True)
class GanSettings:
    output_dir: str
    size: int = 32
    epochs: int = 100
    batch_size: int = 32
    seed: int = 0
    eval_every: int = 5  # the two-sample test every this many epochs (and at the last one)
    resume: bool = False
    overwrite: bool = False
    width: int = 16  # the networks' base number of channels

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise GanTrainingError(f"gan size must be one of {SIZES}, got {self.size}")
        if self.epochs < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise GanTrainingError("epochs, batch size and eval interval must be at least 1")


def _prepare_folder(settings: GanSettings) -> None:
    folder = settings.output_dir
    if os.path.isdir(folder) and os.listdir(folder) and not settings.resume:
        ours = {MODEL_FILE, INFO_FILE, "checkpoints", "samples"}
        if not settings.overwrite:
            raise GanTrainingError(f"{folder} is not empty: pass --resume to continue its training or "
                                   "--overwrite to start again")
        if not set(os.listdir(folder)) <= ours:
            raise GanTrainingError(f"{folder} holds files that are not a GAN model's; --overwrite "
                                   "only replaces a GAN model folder: give another --output")
        shutil.rmtree(folder)
    os.makedirs(os.path.join(folder, "samples"), exist_ok=True)


def train_gan(data: CropSet, settings: GanSettings, say: Callable[[str], None] = print) -> dict:
    """Train on ``data`` (module docstring); returns what ``gan.json`` holds."""
    if len(data.crops) < 2:
        raise GanTrainingError(f"{len(data.crops)} training crops: a GAN needs at least 2 labelled objects")
    if data.crops.shape[1] != settings.size:
        raise GanTrainingError(f"crops are {data.crops.shape[1]} px, settings say {settings.size}")
    _prepare_folder(settings)
    tf.keras.utils.set_random_seed(settings.seed)
    tf.config.experimental.enable_op_determinism()
    classes = len(data.classes)
    generator = build_generator(classes, settings.size, settings.width)
    discriminator = build_discriminator(classes, settings.size, settings.width)
    g_opt, d_opt = (tf.keras.optimizers.Adam(2e-4, beta_1=0.5) for _ in range(2))
    epoch = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(generator=generator, discriminator=discriminator,
                                     g_opt=g_opt, d_opt=d_opt, epoch=epoch)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(settings.output_dir, "checkpoints"), 2)
    history_path = os.path.join(settings.output_dir, "checkpoints", "history.json")
    history: list[dict] = []
    if settings.resume and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).expect_partial()
        with open(history_path, encoding="utf-8") as handle:
            history = json.load(handle)[:int(epoch.numpy())]
        say(f"resuming {settings.output_dir} after epoch {int(epoch.numpy())}")
    one_hot = tf.one_hot(data.labels, classes).numpy()

    @tf.function
    def step(real, labels, noise):
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = generator([noise, labels], training=True)
            real_logits = discriminator([diff_augment(real), labels], training=True)
            fake_logits = discriminator([diff_augment(fake), labels], training=True)
            g_loss, d_loss = generator_loss(fake_logits), discriminator_loss(real_logits, fake_logits)
        g_opt.apply_gradients(zip(g_tape.gradient(g_loss, generator.trainable_variables),
                                  generator.trainable_variables))
        d_opt.apply_gradients(zip(d_tape.gradient(d_loss, discriminator.trainable_variables),
                                  discriminator.trainable_variables))
        return g_loss, d_loss

    sample_noise = np.random.default_rng([settings.seed, 1]).normal(
        size=(classes * SAMPLES_PER_CLASS, LATENT_DIM)).astype(np.float32)
    eval_rng = np.random.default_rng([settings.seed, 2])
    eval_index = np.sort(eval_rng.permutation(len(data.crops))[:EVAL_CROPS])
    eval_noise = eval_rng.normal(size=(len(eval_index), LATENT_DIM)).astype(np.float32)
    reference = float(np.median(nearest_distances(data.crops, data.crops, exclude_self=True)))
    first = int(epoch.numpy())
    bar = tqdm(range(first, settings.epochs), initial=first, total=settings.epochs, unit="epoch",
               disable=None)
    for number in bar:
        rng = np.random.default_rng([settings.seed, 3, number])
        order = rng.permutation(len(data.crops))
        losses = []
        for start in range(0, len(order), settings.batch_size):
            batch = order[start:start + settings.batch_size]
            noise = rng.normal(size=(len(batch), LATENT_DIM)).astype(np.float32)
            losses.append([float(v) for v in step(data.crops[batch], one_hot[batch], noise)])
        epoch.assign(number + 1)
        record = {"epoch": number + 1, "generator_loss": float(np.mean([l[0] for l in losses])),
                  "discriminator_loss": float(np.mean([l[1] for l in losses]))}
        record.update(_evaluate(generator, data, eval_index, eval_noise, reference, settings, number + 1))
        history.append(record)
        _sample_sheet(generator, data, sample_noise, os.path.join(
            settings.output_dir, "samples", f"epoch_{number + 1:04d}.png"))
        manager.save(checkpoint_number=number + 1)
        atomic_write_bytes(history_path, json.dumps(history, indent=1).encode("utf-8"))
        bar.set_postfix(g=f"{record['generator_loss']:.2f}", d=f"{record['discriminator_loss']:.2f}",
                        nearest=f"{record['nearest_median']:.3f}")
    bar.close()
    model_path = os.path.join(settings.output_dir, MODEL_FILE)
    generator.save(model_path)
    with open(model_path, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()[:16]
    info = {"format": INFO_FORMAT, "classes": list(data.classes), "size": settings.size, "latent_dim": LATENT_DIM,
            "typical_sizes": {name: list(size) for name, size in data.typical_sizes.items()},
            "training_crops": int(len(data.crops)), "epochs": settings.epochs, "seed": settings.seed,
            "generator_sha256": digest, "real_nearest_median": reference, "evaluation": history}
    atomic_write_bytes(os.path.join(settings.output_dir, INFO_FILE), json.dumps(info, indent=1).encode("utf-8"))
    return info


def generate_crops(generator: tf.keras.Model, labels: np.ndarray, classes: int, noise: np.ndarray) -> np.ndarray:
    """Generated crops in [-1, 1] for ``labels`` (class indices) and ``noise``."""
    if not len(labels):
        return np.zeros((0,) + tuple(generator.output_shape[1:]), np.float32)
    return np.concatenate([generator([tf.constant(noise[start:start + BATCH]),
                                      tf.one_hot(labels[start:start + BATCH], classes)], training=False).numpy()
                           for start in range(0, len(labels), BATCH)])


def _evaluate(generator, data: CropSet, index: np.ndarray, noise: np.ndarray, reference: float,
              settings: GanSettings, epoch: int) -> dict:
    """Generated crops of the classes of the real crops ``index`` (one each), against them."""
    fake = generate_crops(generator, data.labels[index], len(data.classes), noise)
    nearest = nearest_distances(fake, data.crops)
    result = {"nearest_median": float(np.median(nearest)), "nearest_min": float(nearest.min()),
              "real_nearest_median": reference}
    if epoch % settings.eval_every == 0 or epoch == settings.epochs:
        result["two_sample_accuracy"] = two_sample_accuracy(data.crops[index], fake, settings.seed + epoch)
    return result


def _sample_sheet(generator, data: CropSet, noise: np.ndarray, path: str) -> None:
    classes = len(data.classes)
    labels = np.repeat(np.arange(classes), SAMPLES_PER_CLASS)
    crops = to_uint8(generate_crops(generator, labels, classes, noise))
    rows = [np.hstack([on_checkerboard(c) for c in crops[k * SAMPLES_PER_CLASS:(k + 1) * SAMPLES_PER_CLASS]])
            for k in range(classes)]
    sheet = np.vstack(rows)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if ok:
        atomic_write_bytes(path, encoded.tobytes(), durable=False)
