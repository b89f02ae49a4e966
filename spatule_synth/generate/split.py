"""Train/eval split by identity: the eval set never sees an identity (a tag) seen in train.

Rule: a key (an identity, or a background photo's content) goes to eval when its *draw*, a number
in [0, 1) read from the SHA-256 of ``(seed, kind, key)``, is below ``eval_fraction``. A key's side
depends on nothing else: adding or removing other photos never moves it, and raising
``eval_fraction`` only moves keys from train to eval. The realised eval share therefore varies
around ``eval_fraction`` (with 10 identities and 0.2: from 0 to about 5 of them); the summary and
the manifest report it. A split with an empty side stops the run with a message naming seeds that
give both sides, instead of moving a key and so breaking the rule above.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

SPLITS = ("train", "eval")
SPLIT_IDS = {"train": 0, "eval": 1}
_SUGGESTED_SEEDS = 3
_SEARCHED_SEEDS = 1000
_ONE = {"identities": "identity", "background photos": "background photo"}


class SplitError(ValueError):
    """Train and eval cannot both be served without sharing a key; the message says what to do."""


def split_draw(seed: int, kind: str, key: str) -> float:
    """The key's draw in [0, 1): eval if below ``eval_fraction``."""
    digest = hashlib.sha256(f"{seed}\0{kind}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def split_keys(keys: Iterable[str], eval_fraction: float, seed: int, kind: str) -> dict[str, str]:
    """Map each key to ``"train"`` or ``"eval"`` (see the module docstring); `SplitError` if one
    side would be empty while ``0 < eval_fraction < 1``."""
    return split_all({kind: keys}, eval_fraction, seed)[kind]


def split_all(keys_by_kind: dict[str, Iterable[str]], eval_fraction: float,
              seed: int) -> dict[str, dict[str, str]]:
    """`split_keys` for several kinds at once (identities, background photos): a one-sided kind
    stops the run with seeds that give *every* kind both sides."""
    ordered = {kind: sorted(set(keys)) for kind, keys in keys_by_kind.items()}
    sides = {kind: {key: "eval" if split_draw(seed, kind, key) < eval_fraction else "train"
                    for key in keys} for kind, keys in ordered.items()}
    if 0 < eval_fraction < 1:
        for kind, kind_sides in sides.items():
            if len(set(kind_sides.values())) < 2:
                raise SplitError(_one_sided_message(ordered, eval_fraction, seed, kind, kind_sides))
    return sides


def _two_sided(keys_by_kind: dict[str, list[str]], eval_fraction: float, seed: int) -> bool:
    return all(len({split_draw(seed, kind, key) < eval_fraction for key in keys}) == 2
               for kind, keys in keys_by_kind.items())


def _one_sided_message(keys_by_kind: dict[str, list[str]], eval_fraction: float, seed: int,
                       kind: str, sides: dict[str, str]) -> str:
    count = len(keys_by_kind[kind])
    if count < 2:
        return (f"cannot split {count} {kind} into train and eval with eval_fraction="
                f"{eval_fraction:g}: one side would be empty or share one with the other. "
                "Add inputs of other identities, or set --eval_fraction=0")
    empty = "eval" if not any(side == "eval" for side in sides.values()) else "train"
    good = [str(other) for other in range(seed + 1, seed + 1 + _SEARCHED_SEEDS)
            if _two_sided(keys_by_kind, eval_fraction, other)][:_SUGGESTED_SEEDS]
    hint = (f"--seed={' or '.join(good)} gives both sides" if good
            else "no nearby seed gives both sides")
    if len(keys_by_kind) > 1 and good:
        hint += f" for the {' and the '.join(keys_by_kind)}"
    return (f"with --seed={seed} and --eval_fraction={eval_fraction:g}, none of the {count} {kind} "
            f"drew {empty}: each {_ONE.get(kind, kind)}'s side depends only on the seed and itself, so that "
            f"adding photos never moves it; {hint}, or add inputs of other identities, or change "
            "--eval_fraction")


def images_per_split(num_images: int, eval_fraction: float) -> dict[str, int]:
    """How many synthetic images each split gets (eval: ``round(num_images * eval_fraction)``)."""
    n_eval = round(num_images * eval_fraction)
    return {"train": num_images - n_eval, "eval": n_eval}
