"""Train/eval split by identity: the eval set never sees an identity (a tag) seen in train.

Rule: the distinct keys (identities, or background photos) are sorted, shuffled by a generator
seeded with ``(seed, SPLIT_STREAM, kind)``, and the first ``round(eval_fraction * n)`` go to eval
(at least one when ``eval_fraction > 0``, at most ``n - 1`` when it is < 1). Same keys and seed,
same split, whatever else changes. A split that cannot have both sides non-empty stops the run
with a message instead of leaking keys into both.
"""

from __future__ import annotations

import zlib
from typing import Iterable

import numpy as np

SPLITS = ("train", "eval")
SPLIT_STREAM = 0x5B1
SPLIT_IDS = {"train": 0, "eval": 1}


class SplitError(ValueError):
    """Train and eval cannot both be served without sharing a key; the message says what to do."""


def split_keys(keys: Iterable[str], eval_fraction: float, seed: int, kind: str) -> dict[str, str]:
    """Map each key to ``"train"`` or ``"eval"`` (see the module docstring)."""
    ordered = sorted(set(keys))
    count = len(ordered)
    if eval_fraction <= 0:
        return dict.fromkeys(ordered, "train")
    if eval_fraction >= 1:
        return dict.fromkeys(ordered, "eval")
    if count < 2:
        raise SplitError(f"cannot split {count} {kind} into train and eval with eval_fraction="
                         f"{eval_fraction:g}: one side would be empty or share a {kind[:-1]} with "
                         "the other. Add inputs of other identities, or set --eval_fraction=0")
    n_eval = min(max(round(eval_fraction * count), 1), count - 1)
    rng = np.random.default_rng([seed, SPLIT_STREAM, zlib.crc32(kind.encode())])
    eval_keys = {ordered[i] for i in rng.permutation(count)[:n_eval]}
    return {key: "eval" if key in eval_keys else "train" for key in ordered}


def images_per_split(num_images: int, eval_fraction: float) -> dict[str, int]:
    """How many synthetic images each split gets (eval: ``round(num_images * eval_fraction)``)."""
    n_eval = round(num_images * eval_fraction)
    return {"train": num_images - n_eval, "eval": n_eval}
