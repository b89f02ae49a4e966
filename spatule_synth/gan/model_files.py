"""A trained GAN's folder: ``generator.keras`` (the Keras generator) and ``gan.json`` (classes,
crop and latent size, typical box size per class, training history), written last by
`spatule_synth.gan.train.train_gan`, so a folder without ``gan.json`` is not a finished model."""

from __future__ import annotations

import json
import os

MODEL_FILE = "generator.keras"
INFO_FILE = "gan.json"
INFO_FORMAT = 1


class GanModelError(ValueError):
    """A model folder that cannot be used; the message says why."""


def read_gan_info(folder: str) -> dict:
    """``gan.json`` of ``folder``; `GanModelError` if it is missing or not a GAN description."""
    path = os.path.join(folder, INFO_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            info = json.load(handle)
    except (OSError, ValueError) as error:
        raise GanModelError(f"--gan_model={folder}: cannot read {INFO_FILE} ({error}); give a folder "
                            "written by python -m spatule_synth.gan train (it is written last)") from None
    required = ("classes", "latent_dim", "typical_sizes", "generator_sha256")
    if (not isinstance(info, dict) or info.get("format") != INFO_FORMAT
            or any(key not in info for key in required) or not info["classes"]
            or any(name not in info["typical_sizes"] for name in info["classes"])):
        raise GanModelError(f"--gan_model={folder}: {path} is not a GAN model description (it needs "
                            f"format {INFO_FORMAT} and {', '.join(required)} for every class)")
    return info
