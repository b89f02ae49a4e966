"""Near-duplicate cutouts: group crops that show the same physical object (``--identity=auto``).

Field cameras photograph the same bird, and its leg tag, every ten minutes: one object appears in
many labelled photos, and a train/eval split by photo leaks it. This module groups the cutouts
that show one object, so that a split by group does not.

Two photos of one object differ by a few pixels of framing (the annotator's box), a rescale
(0.7x-1.4x), re-lighting (brightness, contrast, gamma, a slight colour cast), JPEG
re-compression, a little noise, and the surround that shows inside the box. Two *different*
objects of one class may share everything but a small part: leg tags of one design differ only
by their 4-character code. A perceptual hash of a mostly white tag is dominated by the white,
and any global similarity counts one differing character out of four as 75-90 % agreement: on
the tags of ``tests/test_near_duplicates.py`` a 64-bit pHash (DCT of a 32 x 32 grey thumbnail,
as ``imagehash`` computes it) puts photos of one tag up to 40 bits apart and different codes as
close as 6 bits. So this module aligns two crops and then compares them *cell by cell*: one cell
that disagrees makes them different. It needs only OpenCV and numpy.

Method (``fingerprint`` does steps 1-2 once per crop; ``distance`` does 3-5 per pair)
--------------------------------------------------------------------------------------
1. **Thumbnail.** The RGB crop is stretched to ``THUMB x THUMB`` (each axis resampled on its own,
   area-averaged when it shrinks) and blurred (``BLUR``): scale and aspect ratio are gone (the
   aspect ratio is checked on its own, step 5).
2. **Content frame.** The gradient magnitude of the thumbnail (to the power ``ENERGY_POWER`` < 1,
   so that a few strong edges do not decide alone), less an outer band where framing errors show
   the surround (``INSET`` of each side, at least ``INSET_SHORT`` of the shorter side), is summed
   per column and per row; the ``QUANTILE`` and ``1 - QUANTILE`` points of these marginals,
   widened by ``KAPPA``, are the frame. On a tag the frame is the code (the white margin has no
   gradient), on a textured object most of the object. Comparing frames rather than boxes
   removes most of the framing difference and spends the resolution where objects differ.
3. **Alignment** of crop *b* to crop *a*:

   * *Profiles.* Column means of the thumbnail in ``PROFILE_BANDS`` horizontal bands of the frame
     (and row means in vertical bands), sampled at ``PROFILE_LEN`` points across the frame, colour
     channels centred separately (a colour cast does not count), unit norm. *a*'s profile is
     correlated with *b*'s sampled over ``len(SCALES) x len(OFFSETS)`` scalings (0.8x-1.25x) and
     shifts (+-25 % of the half-width) of *b*'s frame, per axis; the best pair is kept. If the best
     correlation is below ``PROFILE_MIN`` on either axis, the crops are different objects
     (distance ``inf``). In bulk this is one matrix product per block of crops; it rules out
     nearly every pair of different generic objects and 99 % of pairs of same-design tags.
   * *Refinement.* ``REFINE_ROUNDS`` rounds (steps halving from ``REFINE_SHIFT`` and
     ``REFINE_SCALE``) try one step either way of the shift and the scale, one axis after the
     other, keeping the best normalised cross-correlation of ``REFINE_WINDOW``-pixel colour windows
     (channel means removed). Below ``REFINED_NCC_MIN`` after the first round, the crops are
     different (``inf``): measured >= 0.87 for photos of one object, median 0.70 for different
     tags that passed the profiles (92 % of them stop here).
4. **Cells.** Both aligned frames are resampled to ``WINDOW x WINDOW`` (3 channels), z-scored
   (channel means removed; divided by the largest channel's standard deviation) and cut into
   ``CELLS x CELLS`` cells. Each cell is centred (its own mean removed, per channel) and divided
   by ``sqrt(|cell|^2 + delta)``, ``delta`` = ``REL_DELTA`` x the crop's mean cell energy. The
   cell distance ``|a_c - b_c|^2 / 2`` is then near 0 for the same pattern whatever its local
   brightness and contrast (gamma, stroke weight), about 0.7 for unrelated patterns, about 0.35
   for a character against blank, and near 0 for two almost flat cells (a white tag margin is no
   evidence either way).
5. **Distance.** The square root of the worst cell distance, in [0, sqrt(2)]; of a pair, the
   smaller of its two directions (*b* aligned to *a*, *a* aligned to *b*), so it is symmetric.
   Crops whose width/height ratios differ by more than ``MAX_ASPECT_RATIO`` are different
   (``inf``).

Threshold. ``NEAR_DUPLICATE_THRESHOLD`` = 0.45 (a worst cell distance of 0.2) lies between the
distances measured on the synthetic photographs of ``tests/test_near_duplicates.py``
(``python -m tests.test_near_duplicates`` prints them; 5 photos per object):

* same object: tags <= 0.32 (30 tags x 5 seeds; <= 0.37 among 400 tags), generic objects <= 0.39
  (30 objects x 5 seeds; none split among 400);
* different tags of one design, random codes: >= 0.61 in sets of 30 (5 seeds); among 400 tags
  (79,800 code pairs) a handful of pairs one or two look-alike characters apart come down to
  0.37, and the 400 tags form 398 groups;
* codes one character apart: K/X 0.36 and 5/6 0.41 (grouped), 2/7 0.47, the others >= 0.56;
* different generic objects: all ruled out by the profiles.

Grouping two tags too many costs a train/eval split some balance, not leakage; splitting one
object leaks, so the threshold leans towards grouping.

Cost (2-core machine): ``fingerprint`` about 0.7 ms per crop; grouping 2,000 crops takes about
3 s of matrix products plus 0.2-1 ms per pair that passes the profiles: 4 s in all for 2,000
random-noise crops, 7 s for 2,000 photos of 400 generic objects, 10 s for 2,000 photos of 400
tags of one design (the worst case: most pairs look alike). Memory: about 70 KB per fingerprint
and about 10 bytes per ordered pair of crops while grouping.

Limits: rotation beyond a few degrees, mirror images, occlusion and viewpoint changes are not
modelled (a tag seen from its other side is another identity); crops under about 15 pixels on
their shorter side carry too little detail to tell codes apart; a crop without any structure
(one flat colour) matches nothing, not even a copy of itself. Pass the object's box
(``Cutout.pixels`` cut to ``Cutout.object_box``), not the cutout with its margin of context,
which differs between photos.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import cv2
import numpy as np

from spatule_synth.core.disjoint_sets import DisjointSets

NEAR_DUPLICATE_THRESHOLD = 0.45  # distance() <= this: the same object (see the module docstring)

THUMB = 64  # side of the stretched thumbnail, pixels
BLUR = 1.0  # Gaussian sigma on the thumbnail, pixels
INSET = 0.1  # band of each side ignored when finding the content frame, fraction of that side,
INSET_SHORT = 0.15  # and at least this fraction of the shorter side (framing errors are pixels)
QUANTILE = 0.1  # the frame spans the QUANTILE..1-QUANTILE points of the gradient energy,
KAPPA = 1.15  # widened by this factor
ENERGY_POWER = 0.75  # gradient magnitude ** this, for the frame
MIN_HALF = 0.08  # smallest frame half-extent, fraction of THUMB
PROFILE_BANDS = 3  # profiles per axis
PROFILE_LEN = 16  # samples per profile
SCALES = tuple(float(s) for s in np.geomspace(0.8, 1.25, 7))  # of b's frame, per axis
OFFSETS = tuple(float(o) for o in np.linspace(-0.25, 0.25, 9))  # of b's frame, x its half-extent
PROFILE_MIN = 0.7  # best profile correlation below this on either axis: different objects
REFINE_SHIFT = 0.06  # first refinement step: shift (x the half-extent) and
REFINE_SCALE = 1.06  # scale; each further round halves them
REFINE_ROUNDS = 3
REFINE_WINDOW = 16  # window side while refining, pixels
REFINED_NCC_MIN = 0.8  # window correlation below this after the first round: different objects
WINDOW = 32  # side of the compared window, pixels
CELLS = 4  # cells per side of the window
REL_DELTA = 0.5  # cell normalisation floor, fraction of the crop's mean cell energy
MAX_ASPECT_RATIO = 1.5  # width/height ratios further apart than this: different objects

_CANDIDATES = tuple((s, o) for s in SCALES for o in OFFSETS)
# candidate sample positions relative to a frame: centre - 0.5 + half * _SPREAD (pixel i at i)
_SPREAD = np.array([[o + s * ((2 * t + 1) / PROFILE_LEN - 1) for t in range(PROFILE_LEN)]
                    for s, o in _CANDIDATES], np.float32)
_PIXELS = np.arange(THUMB, dtype=np.float32)
_UNIT = {n: (2 * np.arange(n) + 1) / n - 1 for n in (PROFILE_LEN, REFINE_WINDOW, WINDOW)}  # -1..1


@dataclasses.dataclass(frozen=True, eq=False)
class Fingerprint:
    """What :func:`distance` needs of one crop (about 70 KB)."""

    thumb: np.ndarray  # float32 (3, THUMB, THUMB): blurred thumbnail, channel first
    frame: tuple[float, float, float, float]  # centre x, centre y, half-width, half-height
    log_aspect: float  # log(width / height) of the crop
    cells: np.ndarray  # float32 (CELLS**2, 3 * (WINDOW / CELLS)**2): normalised cells (step 4)
    coarse: np.ndarray  # float32 (3 * REFINE_WINDOW**2,): the frame for refining (step 3)
    col_profile: np.ndarray  # float32 (THUMB, 3 * PROFILE_BANDS): column means per band
    row_profile: np.ndarray  # float32 (THUMB, 3 * PROFILE_BANDS): row means per band
    col_template: np.ndarray  # float32 (PROFILE_LEN * 3 * PROFILE_BANDS,): col_profile over the
    row_template: np.ndarray  # frame, channel means removed, unit norm; likewise rows


def fingerprint(crop: np.ndarray) -> Fingerprint:
    """The fingerprint of an RGB ``uint8`` crop (H, W, 3); (H, W) grey and (H, W, 4) RGBA are
    accepted too (alpha is ignored)."""
    rgb = _as_rgb(crop)
    height, width = rgb.shape[:2]
    thumb = _thumbnail(rgb)
    cx, cy, hx, hy = _content_frame(thumb, height, width)
    cols = _axis_profiles(thumb, cy, hy, axis=0)
    rows = _axis_profiles(thumb, cx, hx, axis=1)
    x, y = np.array([[cx, hx]]), np.array([[cy, hy]])  # the frame as (centre, half) spans
    return Fingerprint(
        thumb=thumb, frame=(cx, cy, hx, hy), log_aspect=math.log(width / height),
        cells=_cells(_window(thumb, x, y, WINDOW))[0, 0],
        coarse=_unit_windows(_window(thumb, x, y, REFINE_WINDOW))[0],
        col_profile=cols, row_profile=rows,
        col_template=_resample_profile(cols, _positions(x, PROFILE_LEN))[0],
        row_template=_resample_profile(rows, _positions(y, PROFILE_LEN))[0])


def distance(a: Fingerprint, b: Fingerprint) -> float:
    """How different two fingerprinted crops look: >= 0, symmetric, ``inf`` when a screen (aspect
    ratio, profiles, refined correlation) rules the pair out. Same object: <=
    ``NEAR_DUPLICATE_THRESHOLD``."""
    if not _aspects_match(a, b):
        return math.inf
    return min(_directed(a, b, *_alignment(a, b)), _directed(b, a, *_alignment(b, a)))


def group_near_duplicates(crops: list[np.ndarray],
                          threshold: float = NEAR_DUPLICATE_THRESHOLD) -> list[int]:
    """A group number per crop: crops at :func:`distance` <= ``threshold`` share a group, and so,
    transitively, do their groups (connected components). Groups are numbered 0, 1, ... in the
    order of their first crop. Deterministic: the same crops in the same order give the same
    groups."""
    return group_fingerprints([fingerprint(crop) for crop in crops], threshold)


def group_fingerprints(prints: list[Fingerprint],
                       threshold: float = NEAR_DUPLICATE_THRESHOLD) -> list[int]:
    """:func:`group_near_duplicates` of fingerprints."""
    sets = DisjointSets(len(prints))
    # Likeliest pairs first, so that pairs already joined through others need no distance
    # (skipping them cannot change the components).
    for pair in sorted(_screened_pairs(prints), key=lambda p: (-p.score, p.i, p.j)):
        if sets.root(pair.i) != sets.root(pair.j) and _pair_distance(prints, pair) <= threshold:
            sets.join(pair.i, pair.j)
    return sets.group_numbers()


def distances(a: Fingerprint, others: Sequence[Fingerprint]) -> np.ndarray:
    """``[distance(a, b) for b in others]`` as a float64 array, bit for bit, computed in bulk
    (see :func:`cross_distances`)."""
    return cross_distances([a], others)[0]


# Slack of the bulk profile screen. The scores of _alignment are float32 dot products of two
# vectors of norm <= 1 and length PROFILE_LEN * 3 * PROFILE_BANDS = 144; summed in another order
# (a matrix product instead of a matrix-vector product) they differ by at most 2 * 144 * 2**-24
# (about 2e-5) from _alignment's. A pair whose bulk scores are below PROFILE_MIN - _SCREEN_SLACK
# in both directions is therefore below PROFILE_MIN in _alignment too: distance() is inf.
_SCREEN_SLACK = 1e-3


def cross_distances(rows: Sequence[Fingerprint], cols: Sequence[Fingerprint]) -> np.ndarray:
    """The (len(rows), len(cols)) float64 matrix of ``distance(rows[i], cols[j])``, equal to it bit
    for bit. The aspect and profile screens run in bulk (one matrix product per block of crops,
    as in :func:`group_fingerprints`) and, with a slack that covers their float rounding, only
    rule out pairs, or directions of a pair, that :func:`distance` rules out (``inf``); the rest
    is computed by :func:`distance`'s own steps. Cost (2 cores): the screens take 2-4 s per
    million pairs, then 0.2-1.5 ms per pair they leave (photos of one object, and about 1 % of
    the pairs of tags of one design): 1,000 x 1,000 crops of tags of one design in about 13 s,
    against about 7 minutes for :func:`distance` pair by pair (``bench/bench_verify.py``).
    Memory: the matrix, plus about 40 MB of blocks."""
    out = np.full((len(rows), len(cols)), np.inf)
    if not len(rows) or not len(cols):
        return out
    row_aspects = np.array([p.log_aspect for p in rows])
    col_aspects = np.array([p.log_aspect for p in cols])
    candidates = np.abs(row_aspects[:, None] - col_aspects[None, :]) <= math.log(MAX_ASPECT_RATIO)
    floor = PROFILE_MIN - _SCREEN_SLACK
    forward = _profile_scores(rows, cols) >= floor  # [i, j]: cols[j] aligned to rows[i] may pass
    backward = _profile_scores(cols, rows).T >= floor  # [i, j]: rows[i] aligned to cols[j]
    candidates &= forward | backward
    for i, j in zip(*np.nonzero(candidates)):
        a, b = rows[int(i)], cols[int(j)]
        # distance(a, b), less the _alignment of a direction the screen ruled out (it is None,
        # so that direction is inf)
        out[i, j] = min(_directed(a, b, *_alignment(a, b)) if forward[i, j] else math.inf,
                        _directed(b, a, *_alignment(b, a)) if backward[i, j] else math.inf)
    return out


def _profile_scores(targets: Sequence[Fingerprint], moving: Sequence[Fingerprint]) -> np.ndarray:
    """(len(targets), len(moving)) float32: for each pair, the smaller of the best column and
    best row profile correlations of ``moving[j]`` aligned to ``targets[i]`` (what
    :func:`_alignment` compares with PROFILE_MIN), up to float rounding."""
    score = np.empty((len(targets), len(moving)), np.float32)
    for rows, cols, col_s, row_s in _profile_blocks(targets, moving):
        score[rows, cols] = np.minimum(col_s.max(axis=2), row_s.max(axis=2))
    return score


def _profile_blocks(targets: Sequence[Fingerprint], moving: Sequence[Fingerprint]):
    """Blocks ``(rows, cols, col_s, row_s)`` of the profile correlations of every candidate shift
    of ``moving[cols]`` against ``targets[rows]``: arrays (len rows, len cols, candidates), from
    one matrix product per block (so memory stays bounded)."""
    n, m, k = len(targets), len(moving), len(_CANDIDATES)
    col_t = np.stack([p.col_template for p in targets])
    row_t = np.stack([p.row_template for p in targets])
    for j0 in range(0, m, _COLUMN_BLOCK):
        j1 = min(m, j0 + _COLUMN_BLOCK)
        col_c = np.concatenate([_candidates(moving[j], "col") for j in range(j0, j1)])
        row_c = np.concatenate([_candidates(moving[j], "row") for j in range(j0, j1)])
        for i0 in range(0, n, _ROW_BLOCK):
            i1 = min(n, i0 + _ROW_BLOCK)
            yield (slice(i0, i1), slice(j0, j1),
                   (col_t[i0:i1] @ col_c.T).reshape(i1 - i0, j1 - j0, k),
                   (row_t[i0:i1] @ row_c.T).reshape(i1 - i0, j1 - j0, k))


# --- bulk screening ---------------------------------------------------------------------------

_COLUMN_BLOCK = 128  # crops whose profile candidates are scored at once
_ROW_BLOCK = 512


@dataclasses.dataclass(frozen=True)
class _Pair:
    score: float  # best profile correlation of the better direction
    i: int
    j: int  # > i
    forward: tuple[int, int] | None  # (kx, ky) aligning j to i, None if screened out
    backward: tuple[int, int] | None  # (kx, ky) aligning i to j


def _screened_pairs(prints: list[Fingerprint]) -> list[_Pair]:
    """The pairs i < j that pass the aspect and profile screens in at least one direction, with
    the profile alignments of :func:`_alignment` (from one matrix product per block of crops,
    equal to the pairwise ones up to float rounding)."""
    n = len(prints)
    if n < 2:
        return []
    score = np.empty((n, n), np.float32)  # score[i, j]: j aligned to i
    kx = np.empty((n, n), np.int16)
    ky = np.empty((n, n), np.int16)
    for rows, cols, col_s, row_s in _profile_blocks(prints, prints):
        bx, by = col_s.argmax(axis=2), row_s.argmax(axis=2)
        vx = np.take_along_axis(col_s, bx[..., None], axis=2)[..., 0]
        vy = np.take_along_axis(row_s, by[..., None], axis=2)[..., 0]
        score[rows, cols] = np.minimum(vx, vy)
        kx[rows, cols], ky[rows, cols] = bx, by
    aspects = np.array([p.log_aspect for p in prints])
    passes = score >= PROFILE_MIN
    candidates = np.triu(passes | passes.T, k=1)
    candidates &= np.abs(aspects[:, None] - aspects[None, :]) <= math.log(MAX_ASPECT_RATIO)
    pairs = []
    for i, j in zip(*np.nonzero(candidates)):
        i, j = int(i), int(j)
        forward = (int(kx[i, j]), int(ky[i, j])) if passes[i, j] else None
        backward = (int(kx[j, i]), int(ky[j, i])) if passes[j, i] else None
        pairs.append(_Pair(float(max(score[i, j], score[j, i])), i, j, forward, backward))
    return pairs


def _pair_distance(prints: list[Fingerprint], pair: _Pair) -> float:
    a, b = prints[pair.i], prints[pair.j]
    forward = _directed(a, b, *pair.forward) if pair.forward else math.inf
    backward = _directed(b, a, *pair.backward) if pair.backward else math.inf
    return min(forward, backward)


# --- one direction: b aligned to a -------------------------------------------------------------

def _aspects_match(a: Fingerprint, b: Fingerprint) -> bool:
    return abs(a.log_aspect - b.log_aspect) <= math.log(MAX_ASPECT_RATIO)


def _candidates(p: Fingerprint, axis: str) -> np.ndarray:
    """p's profiles along ``axis`` over its frame moved by every (scale, offset) of _CANDIDATES:
    (len(_CANDIDATES), PROFILE_LEN * 3 * PROFILE_BANDS)."""
    cx, cy, hx, hy = p.frame
    profile, centre, half = (p.col_profile, cx, hx) if axis == "col" else (p.row_profile, cy, hy)
    return _resample_profile(profile, centre - 0.5 + half * _SPREAD)


def _alignment(a: Fingerprint, b: Fingerprint) -> tuple[int | None, int | None]:
    """Indices into _CANDIDATES of the best x and y profile alignment of b to a; (None, None)
    when either correlation is below PROFILE_MIN."""
    col = _candidates(b, "col") @ a.col_template
    row = _candidates(b, "row") @ a.row_template
    kx, ky = int(col.argmax()), int(row.argmax())
    if min(float(col[kx]), float(row[ky])) < PROFILE_MIN:
        return None, None
    return kx, ky


def _directed(a: Fingerprint, b: Fingerprint, kx: int | None, ky: int | None) -> float:
    """Steps 3 (refinement) to 5 of the module docstring for ``b`` aligned to ``a`` from profile
    alignment (kx, ky); ``inf`` if there is none or the refined correlation is too low."""
    if kx is None or ky is None:
        return math.inf
    cx, cy, hx, hy = b.frame
    (sx, ox), (sy, oy) = _CANDIDATES[kx], _CANDIDATES[ky]
    x = np.array([[cx + ox * hx, sx * hx]])  # (1, 2): one (centre, half) span
    y = np.array([[cy + oy * hy, sy * hy]])
    for round_ in range(REFINE_ROUNDS):
        moves = _MOVES * [REFINE_SHIFT / 2 ** round_, math.log(REFINE_SCALE) / 2 ** round_]
        xs = np.column_stack([x[0, 0] + moves[:, 0] * hx, x[0, 1] * np.exp(moves[:, 1])])
        ncc = _unit_windows(_window(b.thumb, xs, y, REFINE_WINDOW)) @ a.coarse
        x = xs[[int(ncc.argmax())]]
        ys = np.column_stack([y[0, 0] + moves[:, 0] * hy, y[0, 1] * np.exp(moves[:, 1])])
        ncc = _unit_windows(_window(b.thumb, x, ys, REFINE_WINDOW)) @ a.coarse
        y = ys[[int(ncc.argmax())]]
        if round_ == 0 and float(ncc.max()) < REFINED_NCC_MIN:
            return math.inf
    cells = _cells(_window(b.thumb, x, y, WINDOW))[0, 0]
    diff = cells - a.cells
    return float(math.sqrt(float((diff * diff).sum(axis=1).max()) / 2))


_MOVES = np.array([(s, z) for s in (-1, 0, 1) for z in (-1, 0, 1)], np.float64)  # (shift, scale)


# --- sampling ---------------------------------------------------------------------------------

def _positions(spans: np.ndarray, count: int) -> np.ndarray:
    """``count`` evenly spread sample positions across each (centre, half) span of ``spans``
    (k, 2), as pixel-centre coordinates (thumbnail pixel i covers [i, i+1] and has its centre at
    i): (k, count)."""
    return (spans[:, :1] - 0.5 + spans[:, 1:] * _UNIT[count]).astype(np.float32)


def _interpolation_matrix(spans: np.ndarray, count: int) -> np.ndarray:
    """(k, count, THUMB) linear-interpolation weights sampling each (centre, half) span of
    ``spans`` (k, 2) (edge pixels repeated outside the thumbnail)."""
    pos = np.clip(_positions(spans, count), 0, THUMB - 1)
    return np.maximum(0.0, 1.0 - np.abs(pos[..., None] - _PIXELS))


def _window(thumb: np.ndarray, xs: np.ndarray, ys: np.ndarray, count: int) -> np.ndarray:
    """The channel-first thumbnail resampled over every x span of ``xs`` and y span of ``ys``
    ((k, 2) arrays of (centre, half)) to count x count pixels: (3, len(ys), count, len(xs),
    count)."""
    rx = _interpolation_matrix(xs, count)
    ry = _interpolation_matrix(ys, count)
    out = ry.reshape(-1, THUMB) @ thumb @ rx.reshape(-1, THUMB).T
    return out.reshape(3, len(ry), count, len(rx), count)


def _unit_windows(window: np.ndarray) -> np.ndarray:
    """Windows (3, ny, n, nx, n) as vectors (ny * nx, 3 * n * n), channel means removed, unit
    norm: their dot products are normalised cross-correlations."""
    _, ny, n, nx, _ = window.shape
    flat = window.transpose(1, 3, 0, 2, 4).reshape(ny * nx, 3, n * n)
    flat = (flat - flat.mean(axis=-1, keepdims=True)).reshape(ny * nx, 3 * n * n)
    return flat / (np.sqrt((flat * flat).sum(axis=-1, keepdims=True)) + 1e-6)


def _cells(window: np.ndarray) -> np.ndarray:
    """Step 4 of the module docstring for windows (3, ny, n, nx, n): (ny, nx, CELLS**2,
    3 * (n / CELLS)**2)."""
    _, ny, n, nx, _ = window.shape
    c = n // CELLS
    count = CELLS * CELLS
    cells = window.reshape(3, ny, CELLS, c, nx, CELLS, c).transpose(1, 4, 2, 5, 0, 3, 6)
    cells = cells.reshape(ny, nx, count, 3, c * c)
    means = cells.mean(axis=-1, keepdims=True)
    cells = cells - means
    # per-channel variance of each window: within the cells plus between the cell means
    within = (cells * cells).sum(axis=(2, 4)) / (count * c * c)  # (ny, nx, 3)
    between = means[..., 0].var(axis=2)  # (ny, nx, 3)
    spread = np.sqrt((within + between).max(axis=-1))  # (ny, nx)
    cells = cells.reshape(ny, nx, count, 3 * c * c) / (c * (spread[..., None, None] + 1e-6))
    energy = (cells * cells).sum(axis=-1, keepdims=True)  # mean square of each cell
    delta = REL_DELTA * energy.mean(axis=-2, keepdims=True)
    return (cells / np.sqrt(energy + delta + 1e-12)).astype(np.float32)


def _resample_profile(profile: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``profile`` (THUMB, ch) at positions (k, PROFILE_LEN), channel means removed, unit norm:
    (k, PROFILE_LEN * ch)."""
    pos = np.clip(pos, 0, THUMB - 1)
    i0 = pos.astype(np.intp)  # floor, as pos >= 0
    frac = (pos - i0)[..., None]
    low = profile[i0]
    samples = low + (profile[np.minimum(i0 + 1, THUMB - 1)] - low) * frac  # (k, L, ch)
    samples -= samples.mean(axis=1, keepdims=True)
    flat = samples.reshape(pos.shape[0], -1)
    return flat / (np.sqrt((flat * flat).sum(axis=1, keepdims=True)) + 1e-6)


# --- per-crop steps ---------------------------------------------------------------------------

def _as_rgb(crop: np.ndarray) -> np.ndarray:
    crop = np.asarray(crop)
    if crop.ndim == 2:
        crop = crop[..., None]
    if crop.ndim != 3 or crop.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got {crop.shape}")
    if crop.shape[0] < 1 or crop.shape[1] < 1:
        raise ValueError(f"empty crop of shape {crop.shape}")
    if crop.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {crop.dtype}")
    if crop.shape[2] == 1:
        crop = np.repeat(crop, 3, axis=2)
    return np.ascontiguousarray(crop[..., :3])


def _thumbnail(rgb: np.ndarray) -> np.ndarray:
    """Stretched to THUMB x THUMB, float32 in [0, 1], blurred, channel first (3, THUMB, THUMB).
    Each axis is resampled on its own: area-averaged when it shrinks (no aliasing of fine
    texture), linear when it grows."""
    img = rgb.astype(np.float32) / 255.0
    height, width = img.shape[:2]
    img = cv2.resize(img, (THUMB, height), interpolation=_interpolation(width))
    img = cv2.resize(img, (THUMB, THUMB), interpolation=_interpolation(height))
    img = cv2.GaussianBlur(img, (0, 0), BLUR).reshape(THUMB, THUMB, 3)
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def _interpolation(size: int) -> int:
    return cv2.INTER_AREA if size > THUMB else cv2.INTER_LINEAR


def _content_frame(thumb: np.ndarray, height: int, width: int
                   ) -> tuple[float, float, float, float]:
    """Step 2 of the module docstring: (cx, cy, hx, hy) in thumbnail pixels (pixel i covers
    [i, i+1])."""
    energy = np.zeros((THUMB, THUMB), np.float32)
    for channel in thumb:
        gx = cv2.Sobel(channel, cv2.CV_32F, 1, 0)
        gy = cv2.Sobel(channel, cv2.CV_32F, 0, 1)
        energy += gx * gx + gy * gy
    energy = energy ** (ENERGY_POWER / 2)
    short = min(height, width)
    band_x = int(round(THUMB * max(INSET, INSET_SHORT * short / width)))
    band_y = int(round(THUMB * max(INSET, INSET_SHORT * short / height)))
    energy[:band_y] = 0
    energy[THUMB - band_y:] = 0
    energy[:, :band_x] = 0
    energy[:, THUMB - band_x:] = 0
    cx, hx = _extent(energy.sum(axis=0))
    cy, hy = _extent(energy.sum(axis=1))
    return cx, cy, hx, hy


def _extent(marginal: np.ndarray) -> tuple[float, float]:
    """(centre, half-extent) of a 1-D gradient-energy distribution over the thumbnail."""
    total = float(marginal.sum())
    if total <= 1e-6:  # no structure at all: the middle of the thumbnail
        return THUMB / 2, KAPPA * (0.5 - INSET) * THUMB
    cdf = np.concatenate([[0.0], np.cumsum(marginal, dtype=np.float64) / total])
    lo, hi = np.interp([QUANTILE, 1 - QUANTILE], cdf, np.arange(THUMB + 1, dtype=np.float64))
    return float((lo + hi) / 2), float(max(KAPPA * (hi - lo) / 2, MIN_HALF * THUMB))


def _axis_profiles(thumb: np.ndarray, centre: float, half: float, axis: int) -> np.ndarray:
    """Column (axis=0) or row (axis=1) means in PROFILE_BANDS bands of the frame's extent across
    that axis: (THUMB, 3 * PROFILE_BANDS)."""
    edges = np.linspace(centre - half, centre + half, PROFILE_BANDS + 1)
    bands = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        first = int(np.clip(math.floor(lo), 0, THUMB - 1))
        last = int(np.clip(math.ceil(hi), first + 1, THUMB))
        band = thumb[:, first:last, :] if axis == 0 else thumb[:, :, first:last]
        bands.append(band.mean(axis=axis + 1).T)  # (THUMB, 3)
    return np.ascontiguousarray(np.concatenate(bands, axis=1), dtype=np.float32)
