"""Generated instances as cutouts (``--gan_model=MODEL_DIR``): the generator of
``python -m spatule_synth.gan train`` makes ``--gan_instances`` crops, spread evenly over its
classes, in the parent before the workers start (the workers never import TensorFlow).

Each crop's alpha is its mask (>= 0.5 after scaling); the crop is scaled so that its letterbox
square matches the class's typical box (`spatule_synth.gan.crops`), so instances are pasted at
the size of the real objects, with `CUTOUT_MARGIN` px of context (its edge pixels repeated). An
instance whose mask is empty is left out and reported. Each instance is its own identity
(``gan:<generator digest>:<index>``); the split puts them all in train unless ``--gan_in_eval``
(`spatule_synth.generate.run.split_pools`), so eval measures photographed objects.
Noise comes from the ``gan_noise`` stream of the seed: the same pool for any number of workers.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from spatule_synth.core.boxes import Box
from spatule_synth.core.problems import Problem, ProblemLog
from spatule_synth.core.transform import CUTOUT_MARGIN
from spatule_synth.formats.label_map import LabelMap
from spatule_synth.gan.model_files import MODEL_FILE, GanModelError, read_gan_info
from spatule_synth.generate.cutouts import Cutout, CutoutPart
from spatule_synth.generate.random_streams import stream

GAN_PREFIX = "gan:"


def gan_cutouts(folder: str, count: int, label_map: LabelMap, seed: int, problems: ProblemLog) -> list[Cutout]:
    """The generated instances (module docstring)."""
    info = read_gan_info(folder)
    classes = info["classes"]
    missing = [name for name in classes if label_map.id_of(name) is None]
    if missing:
        raise GanModelError(f"--gan_model={folder}: its classes {missing} are not in the label map "
                            f"({', '.join(label_map.names)})")
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  (slow; parent only)
    try:
        generator = tf.keras.models.load_model(os.path.join(folder, MODEL_FILE), compile=False)
    except (OSError, ValueError) as error:
        raise GanModelError(f"--gan_model={folder}: cannot load {MODEL_FILE} ({error})") from None
    labels = np.arange(count) % len(classes)
    noise = stream(seed, "gan_noise").normal(size=(count, int(info["latent_dim"]))).astype(np.float32)
    crops = np.concatenate([generator([tf.constant(noise[start:start + 256]),
                                       tf.one_hot(labels[start:start + 256], len(classes))], training=False).numpy()
                            for start in range(0, count, 256)])
    rgba = np.clip(np.round((crops + 1.0) * 127.5), 0, 255).astype(np.uint8)
    cutouts = []
    for index, (crop, label) in enumerate(zip(rgba, labels)):
        name = classes[int(label)]
        cutout = _cutout(crop, name, label_map.id_of(name), info, folder, index)
        if cutout is None:
            problems.report(Problem("gan_empty", f"{folder}#{index}", f"generated {name} instance "
                                    f"#{index} has an empty mask (alpha < 0.5 everywhere); left out"))
            continue
        cutouts.append(cutout)
    return cutouts


def _cutout(crop: np.ndarray, class_name: str, class_id: int, info: dict, folder: str,
            index: int) -> Cutout | None:
    width, height = info["typical_sizes"][class_name]
    side = max(1, max(width, height))  # the letterbox square's side: the class's longer box side
    scaled = cv2.resize(crop, (side, side), interpolation=cv2.INTER_LINEAR)
    mask = np.where(scaled[..., 3] >= 128, 255, 0).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return None
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    pixels = cv2.copyMakeBorder(np.ascontiguousarray(scaled[..., :3]), CUTOUT_MARGIN, CUTOUT_MARGIN,
                                CUTOUT_MARGIN, CUTOUT_MARGIN, cv2.BORDER_REPLICATE)
    mask = cv2.copyMakeBorder(mask, CUTOUT_MARGIN, CUTOUT_MARGIN, CUTOUT_MARGIN, CUTOUT_MARGIN,
                              cv2.BORDER_CONSTANT, value=0)
    pixels = np.ascontiguousarray(pixels[y0:y1 + 2 * CUTOUT_MARGIN, x0:x1 + 2 * CUTOUT_MARGIN])
    mask = np.ascontiguousarray(mask[y0:y1 + 2 * CUTOUT_MARGIN, x0:x1 + 2 * CUTOUT_MARGIN])
    box = Box(CUTOUT_MARGIN, CUTOUT_MARGIN, CUTOUT_MARGIN + x1 - x0, CUTOUT_MARGIN + y1 - y0)
    identity = f"{GAN_PREFIX}{info['generator_sha256']}:{index}"
    return Cutout(identity, identity, pixels, mask, box, (CutoutPart(class_name, class_id, mask, 0),),
                  f"{folder}#{index}", origin="gan")
