"""Every random number of a run comes from a named stream: ``stream(seed, name, *keys)``.

numpy's `SeedSequence` pads its entropy with zeros, so ``[seed, 0, 182]`` and ``[seed, 0, 182, 0]``
seed the *same* generator: two streams keyed by bare integer lists can silently coincide (the
background order of cycle 0 once equalled image 182's stream). Here each stream's entropy is
``[seed, STREAM_ID, number of keys, *keys]``: the stream's own non-zero id and the key count come
before the keys, so two different (name, keys) pairs can never give the same entropy.
"""

from __future__ import annotations

import numpy as np

STREAM_IDS = {
    "image": 1,             # keys (split id, image index): the plan of one image
    "background_order": 2,  # keys (split id, cycle): which photo each block of images crops
    "redraw": 3,            # keys (split id, image index, placement, attempt): a re-drawn placement
    "noise": 4,             # keys (noise seed drawn by the image's plan): sensor noise pixels
    "tag_codes": 5,         # no keys: the codes of the rendered tags
    "rendered_tag": 6,      # keys (tag index): everything about one rendered tag's look
    "tag_size_trial": 7,    # keys (trial index): tags drawn to relate ring diameter and box size
    "gan_noise": 8,         # no keys: the noise of the --gan_model instances
    "grid": 9,              # keys (split id, cutout, background, mirrored): one --layout=grid group
}


def stream(seed: int, name: str, *keys: int) -> np.random.Generator:
    """The generator of stream ``name`` for ``keys`` (non-negative integers)."""
    return np.random.default_rng([seed, STREAM_IDS[name], len(keys), *keys])


def entropy(seed: int, name: str, *keys: int) -> list[int]:
    """The entropy list behind `stream` (for tests that show streams never coincide)."""
    return [seed, STREAM_IDS[name], len(keys), *keys]
