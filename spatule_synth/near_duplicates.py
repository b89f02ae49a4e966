"""Near-duplicate cutouts: group crops that show the same physical object (``--identity=auto``).

Field cameras photograph the same bird, and its leg tag, every ten minutes: one object appears in
many labelled photos, and a train/eval split by photo leaks it. This module groups the cutouts
that show one object, so that a split by group does not.

What two photos of one object differ by: a few pixels of framing (the annotator's box), a
rescale (0.7x-1.4x), re-lighting (brightness, contrast, gamma, a slight colour cast), JPEG
re-compression, a little noise, and the surround (what shows between the object and the box
edge). What two *different* objects of one class may share: everything but a small part. Two leg
tags of one design differ only by their 4-character code; a perceptual hash (pHash, dHash) of a
mostly white tag is dominated by the white, and a global correlation counts one differing
character out of four as 75 % agreement. Hence the method compares the objects *cell by cell*,
after aligning them, and a single cell that disagrees makes them different.

Method
------
1. **Thumbnail.** The RGB crop is stretched to ``THUMB x THUMB`` (each axis resampled on its own,
   area-averaged when shrinking), then blurred (``BLUR``). Stretching removes the scale and
   aspect ratio; the aspect ratio is checked separately (step 6).
2. **Content frame.** Gradient energy of the thumbnail, ignoring an outer band of ``INSET`` (where
   framing jitter shows the surround), gives per-axis marginal distributions; their ``QUANTILE``
   and ``1 - QUANTILE`` points, widened by ``KAPPA``, give the frame. On a tag it is the code
   (the white margin and the tag edge have no gradient); on a textured object it is nearly the
   whole object. Comparing frames instead of boxes takes out most of the framing difference and
   spends the resolution on what distinguishes objects.
3. **Alignment** of crop *b* to crop *a*, by 1-D profiles: the column (row) means of the
   thumbnail over the frame, resampled to ``PROFILE_LEN`` points, are correlated (NCC, colour
   channels centred separately so a colour cast does not count) with those of *b* over a grid of
   ``len(SCALES) x len(OFFSETS)`` scalings and shifts of *b*'s frame, per axis, and the best is
   kept. This covers +-25 % frame shifts and 0.8x-1.25x frame scales per axis at the cost of
   two small matrix products. A best profile NCC below ``PROFILE_MIN`` on either axis means the
   objects are not the same (distance ``inf``); this is also what keeps the pairwise stage cheap.
4. **Cell comparison.** *a*'s frame and *b*'s aligned frame are resampled to ``WINDOW x WINDOW``
   (3 colour channels), each z-scored (channel means removed), and cut into ``CELLS x CELLS``
   cells. Each cell is centred (its own mean removed, per channel) and the cells are compared
   with a normalised squared distance ``|a_c - b_c|^2 / (|a_c|^2 + |b_c|^2 + delta)``: 0 when the
   cell's pattern is identical, about 1 when unrelated, up to 2 when inverted. Centring per
   cell makes it insensitive to local brightness, the normalisation to local contrast (gamma
   and stroke weight), and ``delta`` (``REL_DELTA`` x the crops' mean cell energy) keeps cells
   with almost no structure (white tag margin, faint texture) from counting as evidence.
5. **Distance.** The square root of the mean of the two worst cells (one bad cell, e.g. surround
   showing in a corner, is tolerated; a differing character spans two or more cells). The
   distance of a pair is the smaller of the two directions (*a* against *b* aligned, and *b*
   against *a* aligned), so it is symmetric.
6. **Aspect ratio.** Crops whose width/height ratios differ by more than ``MAX_ASPECT_RATIO``
   are different objects (distance ``inf``): the stretch of step 1 would hide it.

``NEAR_DUPLICATE_THRESHOLD`` (0.5, in units of :func:`distance`) was chosen on the synthetic
photographs of ``tests/test_near_duplicates.py`` (30 leg tags x 5 photos and 30 generic objects x
5 photos per seed): see the table in ``NEAR_DUPLICATE_THRESHOLD``'s comment.

Cost: ``fingerprint`` is about 0.3 ms per crop; the pairwise stage is two BLAS products over all
pairs plus a cell comparison for the pairs whose profiles agree (all same-object pairs and a few
per cent of same-design tag pairs). Measured times are in ``NEAR_DUPLICATE_THRESHOLD``'s comment.

Limits: rotation beyond a few degrees, mirror images, occlusion and viewpoint changes are not
modelled (a tag seen from another side is another identity); grey crops work (all channels
equal); crops smaller than about 12 pixels on a side carry too little detail to separate codes.
Pass the object's box (``Cutout.pixels`` cropped to ``Cutout.object_box``), not the cutout with
its margin of context: the context differs between photos.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

# Distances <= this are the same object; see the module docstring and tests/test_near_duplicates.py.
NEAR_DUPLICATE_THRESHOLD = 0.45

THUMB = 64  # side of the stretched thumbnail, pixels
BLUR = 1.0  # Gaussian sigma on the thumbnail, pixels
INSET = 0.1  # outer band (fraction of the side) ignored when finding the content frame, and
INSET_SHORT = 0.15  # at least this fraction of the shorter side (framing errors are in pixels)
QUANTILE = 0.1  # the frame spans the QUANTILE..1-QUANTILE gradient-energy quantiles ...
KAPPA = 1.15  # ... widened by this factor
MIN_HALF = 0.08  # smallest frame half-extent, fraction of THUMB (a lone dot still gets a frame)
PROFILE_BANDS = 3  # profiles per axis: the frame cut into this many bands across the axis
PROFILE_LEN = 24  # samples per profile
SCALES = tuple(float(s) for s in np.geomspace(0.8, 1.25, 7))  # b's frame scale, per axis
OFFSETS = tuple(float(o) for o in np.linspace(-0.25, 0.25, 9))  # b's frame shift, x half-extent
PROFILE_MIN = 0.7  # best profile NCC below this on either axis: different objects
REFINE_SHIFT = 0.04  # refinement steps: shift (x half-extent) ...
REFINE_SCALE = 1.04  # ... and scale, one step each way per axis
REFINE_ROUNDS = 2  # each round halves the steps
REFINE_WINDOW = 16  # window side while refining, pixels
WINDOW = 32  # side of the compared window, pixels
CELLS = 4  # cells per side of the window
REL_DELTA = 0.5  # cell-distance regulariser, fraction of the mean cell energy
CHANNEL_FLOOR = 1.0
CELL_METRIC = "soft"
WORST = 1
SEPARABLE = True
MAX_ASPECT_RATIO = 1.5  # width/height ratios further apart than this: different objects
_CANDIDATES = tuple((s, o) for s in SCALES for o in OFFSETS)
_PIXELS = np.arange(THUMB, dtype=np.float32)
def _refine_steps():
    return tuple((REFINE_SHIFT / 2 ** r, REFINE_SCALE ** (1 / 2 ** r)) for r in range(REFINE_ROUNDS))


# Sample positions of every candidate span, relative: position = centre - 0.5 + half * _SPREAD.
_SPREAD = np.array([[o + s * (-1 + (2 * t + 1) / PROFILE_LEN) for t in range(PROFILE_LEN)]
                    for s, o in _CANDIDATES])


@dataclasses.dataclass(frozen=True, eq=False)
class Fingerprint:
    """What :func:`distance` needs of one crop (about 70 KB)."""

    thumb: np.ndarray  # float32 (3, THUMB, THUMB), blurred, channel first
    frame: tuple[float, float, float, float]  # centre x, centre y, half-width, half-height
    log_aspect: float  # log(width / height) of the crop
    cells: np.ndarray  # float32 (CELLS**2, cell values): the frame's centred cells, WINDOW side
    energy: np.ndarray  # float32 (CELLS**2,): squared norm of each cell
    coarse: np.ndarray  # float32 (3 * REFINE_WINDOW**2,): the frame at REFINE_WINDOW side,
    # channel means removed, unit norm (for refining alignments)
    col_profile: np.ndarray  # float32 (THUMB, 3 * PROFILE_BANDS): column means per band
    row_profile: np.ndarray  # float32 (THUMB, 3 * PROFILE_BANDS): row means per band
    col_template: np.ndarray  # float32 (PROFILE_LEN * 3 * PROFILE_BANDS,): col_profile over
    row_template: np.ndarray  # the frame, resampled, channel means removed, unit norm


def fingerprint(crop: np.ndarray) -> Fingerprint:
    """The fingerprint of an RGB ``uint8`` crop (H, W, 3); (H, W) grey and (H, W, 4) RGBA are
    accepted too (alpha is ignored)."""
    rgb = _as_rgb(crop)
    height, width = rgb.shape[:2]
    thumb = _thumbnail(rgb)
    cx, cy, hx, hy = _content_frame(thumb, height, width)
    cols = _axis_profiles(thumb, cy, hy, axis=0)
    rows = _axis_profiles(thumb, cx, hx, axis=1)
    cells = _cells(_window(thumb, [(cx, hx)], [(cy, hy)], WINDOW))[0, 0]
    coarse = _unit_windows(_window(thumb, [(cx, hx)], [(cy, hy)], REFINE_WINDOW))[0]
    return Fingerprint(
        thumb=thumb, frame=(cx, cy, hx, hy), log_aspect=math.log(width / height),
        cells=cells, energy=_energy(cells), coarse=coarse,
        col_profile=cols, row_profile=rows,
        col_template=_profiles(cols, [(cx, hx)])[0], row_template=_profiles(rows, [(cy, hy)])[0])


def distance(a: Fingerprint, b: Fingerprint) -> float:
    """How different two fingerprinted crops look, >= 0, symmetric; ``inf`` when their aspect
    ratios or their profiles say they are different objects. Same object: <=
    ``NEAR_DUPLICATE_THRESHOLD``."""
    if abs(a.log_aspect - b.log_aspect) > math.log(MAX_ASPECT_RATIO):
        return math.inf
    return min(_directed(a, b), _directed(b, a))


def group_near_duplicates(crops: list[np.ndarray],
                          threshold: float = NEAR_DUPLICATE_THRESHOLD) -> list[int]:
    """A group number per crop: crops at :func:`distance` <= ``threshold`` share a group, and so
    (transitively) do their groups. Groups are numbered 0, 1, ... in the order of their first
    crop. Deterministic."""
    return group_fingerprints([fingerprint(crop) for crop in crops], threshold)


def group_fingerprints(prints: list[Fingerprint],
                       threshold: float = NEAR_DUPLICATE_THRESHOLD) -> list[int]:
    """:func:`group_near_duplicates` of already fingerprinted crops."""
    n = len(prints)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # Likeliest pairs first: a pair already joined through others needs no distance.
    for _, i, j in sorted(_screened_pairs(prints), key=lambda t: (-t[0], t[1], t[2])):
        ri, rj = root(i), root(j)
        if ri != rj and distance(prints[i], prints[j]) <= threshold:
            parent[max(ri, rj)] = min(ri, rj)
    numbers: dict[int, int] = {}
    return [numbers.setdefault(root(i), len(numbers)) for i in range(n)]


def pairwise_distances(prints: list[Fingerprint]) -> np.ndarray:
    """The symmetric (n, n) matrix of :func:`distance`, computed in bulk as
    :func:`group_fingerprints` does (``inf`` for the pairs the screens rule out)."""
    n = len(prints)
    out = np.full((n, n), np.inf)
    np.fill_diagonal(out, 0.0)
    for _, i, j in _screened_pairs(prints):
        out[i, j] = out[j, i] = distance(prints[i], prints[j])
    return out


# --- bulk screening ---------------------------------------------------------------------------

_COLUMN_BLOCK = 128  # crops whose profile candidates are scored at once
_ROW_BLOCK = 512


def _screened_pairs(prints: list[Fingerprint]) -> list[tuple[float, int, int]]:
    """(profile score, i, j) for the pairs i < j that the aspect and profile screens let through
    in at least one direction; :func:`distance` is ``inf`` for all other pairs. The scores come
    from one matrix product per block; :func:`distance` recomputes them exactly (the screen
    here is looser by a rounding margin)."""
    n = len(prints)
    if n < 2:
        return []
    k = len(_CANDIDATES)
    aspects = np.array([p.log_aspect for p in prints])
    col_t = np.stack([p.col_template for p in prints])
    row_t = np.stack([p.row_template for p in prints])
    best = np.full((n, n), -np.inf, np.float32)  # best[i, j]: j aligned to i
    for j0 in range(0, n, _COLUMN_BLOCK):
        j1 = min(n, j0 + _COLUMN_BLOCK)
        col_c = np.concatenate([_candidates(prints[j], "col") for j in range(j0, j1)])
        row_c = np.concatenate([_candidates(prints[j], "row") for j in range(j0, j1)])
        for i0 in range(0, n, _ROW_BLOCK):
            i1 = min(n, i0 + _ROW_BLOCK)
            vx = (col_t[i0:i1] @ col_c.T).reshape(i1 - i0, j1 - j0, k).max(axis=2)
            vy = (row_t[i0:i1] @ row_c.T).reshape(i1 - i0, j1 - j0, k).max(axis=2)
            best[i0:i1, j0:j1] = np.minimum(vx, vy)
    score = np.maximum(best, best.T)
    ok = score >= PROFILE_MIN - 1e-3
    ok &= np.abs(aspects[:, None] - aspects[None, :]) <= math.log(MAX_ASPECT_RATIO) + 1e-9
    ok = np.triu(ok, k=1)
    return [(float(score[i, j]), int(i), int(j)) for i, j in zip(*np.nonzero(ok))]


# --- one directed comparison ------------------------------------------------------------------

def _candidates(p: Fingerprint, axis: str) -> np.ndarray:
    """p's profile along ``axis`` over its frame moved by every (scale, offset) of _CANDIDATES."""
    cx, cy, hx, hy = p.frame
    profile, centre, half = (p.col_profile, cx, hx) if axis == "col" else (p.row_profile, cy, hy)
    return _resample_profile(profile, centre - 0.5 + half * _SPREAD)


def _directed(a: Fingerprint, b: Fingerprint) -> float:
    """The cell distance of ``a``'s frame and ``b`` aligned to it (inf if no alignment is good
    enough): profile alignment, then a local refinement chosen by the correlation of small
    windows, then the mean of the two worst cells."""
    col = _candidates(b, "col") @ a.col_template
    row = _candidates(b, "row") @ a.row_template
    kx, ky = int(col.argmax()), int(row.argmax())
    if min(float(col[kx]), float(row[ky])) < PROFILE_MIN:
        return math.inf
    cx, cy, hx, hy = b.frame
    (sx, ox), (sy, oy) = _CANDIDATES[kx], _CANDIDATES[ky]
    x, y = (cx + ox * hx, sx * hx), (cy + oy * hy, sy * hy)  # (centre, half) spans
    for shift, scale in _refine_steps():
        xs = [(x[0] + i * shift * hx, x[1] * scale ** k) for i in (-1, 0, 1) for k in (-1, 0, 1)]
        ys = [(y[0] + i * shift * hy, y[1] * scale ** k) for i in (-1, 0, 1) for k in (-1, 0, 1)]
        if SEPARABLE:
            ncc = _unit_windows(_window(b.thumb, xs, [y], REFINE_WINDOW)) @ a.coarse
            x = xs[int(ncc.argmax())]
            ncc = _unit_windows(_window(b.thumb, [x], ys, REFINE_WINDOW)) @ a.coarse
            y = ys[int(ncc.argmax())]
            global LAST_NCC
            LAST_NCC = float(ncc.max())
            continue
        ncc = _unit_windows(_window(b.thumb, xs, ys, REFINE_WINDOW)) @ a.coarse  # (9 * 9,)
        iy, ix = divmod(int(ncc.argmax()), len(xs))
        x, y = xs[ix], ys[iy]
    cells = _cells(_window(b.thumb, [x], [y], WINDOW))[0, 0]
    per_cell = _cell_distances(a.cells, a.energy, cells)
    worst = np.partition(per_cell, per_cell.size - WORST)[-WORST:]
    return float(math.sqrt(float(worst.mean())))


def _cell_distances(a_cells: np.ndarray, a_energy: np.ndarray, b_cells: np.ndarray) -> np.ndarray:
    """|a_c - b_c|^2 / (|a_c|^2 + |b_c|^2 + delta) per cell; b_cells (..., C, P) -> (..., C)."""
    b_energy = (b_cells * b_cells).sum(axis=-1)
    if CELL_METRIC == "soft":
        da = REL_DELTA * float(a_energy.mean())
        db = REL_DELTA * b_energy.mean(axis=-1, keepdims=True)
        an = a_cells / np.sqrt(a_energy + da + 1e-9)[:, None]
        bn = b_cells / np.sqrt(b_energy + db + 1e-9)[..., None]
        dd = an - bn
        return 0.5 * (dd * dd).sum(axis=-1)
    diff = b_cells - a_cells
    delta = REL_DELTA * (float(a_energy.mean()) + b_energy.mean(axis=-1, keepdims=True)) + 1e-9
    return (diff * diff).sum(axis=-1) / (a_energy + b_energy + delta)


def _energy(cells: np.ndarray) -> np.ndarray:
    return (cells * cells).sum(axis=-1)


# --- sampling ---------------------------------------------------------------------------------

def _positions(spans, count: int) -> np.ndarray:
    """``count`` evenly spread sample positions across each (centre, half) span (thumbnail pixel
    i covers [i, i+1]), as pixel-centre coordinates (pixel i at i): (len(spans), count)."""
    spans = np.asarray(spans, np.float64).reshape(-1, 2)
    unit = (2 * np.arange(count) + 1) / count - 1  # -1..1, pixel centres
    return spans[:, :1] - 0.5 + spans[:, 1:] * unit


def _interpolation_matrix(spans, count: int) -> np.ndarray:
    """(len(spans), count, THUMB) linear-interpolation weights sampling each (centre, half) span
    (edge pixels repeated outside the thumbnail)."""
    pos = np.clip(_positions(spans, count), 0, THUMB - 1).astype(np.float32)
    return np.maximum(0.0, 1.0 - np.abs(pos[..., None] - _PIXELS))


def _window(thumb: np.ndarray, xs, ys, count: int) -> np.ndarray:
    """The channel-first thumbnail (3, THUMB, THUMB) resampled over every x span of ``xs`` and y
    span of ``ys`` ((centre, half) pairs) to count x count pixels: (3, len(ys), count, len(xs),
    count)."""
    rx = _interpolation_matrix(xs, count)
    ry = _interpolation_matrix(ys, count)
    ny, nx = len(ry), len(rx)
    out = ry.reshape(ny * count, THUMB) @ thumb @ rx.reshape(nx * count, THUMB).T
    return out.reshape(3, ny, count, nx, count)


def _unit_windows(window: np.ndarray) -> np.ndarray:
    """Windows (3, ny, n, nx, n) as vectors (ny * nx, 3 * n * n), channel means removed, unit
    norm: dot products are normalised cross-correlations."""
    _, ny, n, nx, _ = window.shape
    flat = window.transpose(1, 3, 0, 2, 4).reshape(ny * nx, 3, n * n)
    flat = (flat - flat.mean(axis=-1, keepdims=True)).reshape(ny * nx, 3 * n * n)
    return flat / (np.sqrt((flat * flat).sum(axis=-1, keepdims=True)) + 1e-6)


def _cells(window: np.ndarray) -> np.ndarray:
    """Windows (3, ny, n, nx, n) z-scored (channel means removed, divided by the largest channel
    standard deviation), cut into CELLS x CELLS cells, each cell centred per channel and scaled
    so that its squared norm is its mean square: (ny, nx, CELLS**2, 3 * (n / CELLS)**2)."""
    _, ny, n, nx, _ = window.shape
    c = n // CELLS
    count = CELLS * CELLS
    cells = window.reshape(3, ny, CELLS, c, nx, CELLS, c).transpose(1, 4, 2, 5, 0, 3, 6)
    cells = cells.reshape(ny, nx, count, 3, c * c)
    means = cells.mean(axis=-1, keepdims=True)  # (ny, nx, C, 3, 1)
    cells = cells - means
    # per-channel variance of the whole window: within the cells plus between the cell means
    within = (cells * cells).sum(axis=(2, 4)) / (count * c * c)  # (ny, nx, 3)
    between = means[..., 0].var(axis=2)  # (ny, nx, 3)
    variance = within + between
    if CHANNEL_FLOOR < 1:
        variance = np.maximum(variance, CHANNEL_FLOOR * variance.max(axis=-1, keepdims=True))
    else:
        variance = np.broadcast_to(variance.max(axis=-1, keepdims=True), variance.shape)
    scale = (1.0 / (c * (np.sqrt(variance) + 1e-6))).astype(np.float32)  # (ny, nx, 3)
    cells *= scale[:, :, None, :, None]
    return cells.reshape(ny, nx, count, 3 * c * c)


def _profiles(profile: np.ndarray, spans) -> np.ndarray:
    """``profile`` (THUMB, ch) resampled at PROFILE_LEN points across each (centre, half) span,
    channel means removed, unit norm: (len(spans), PROFILE_LEN * ch)."""
    return _resample_profile(profile, _positions(spans, PROFILE_LEN))


def _resample_profile(profile: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``profile`` (THUMB, ch) at positions (k, PROFILE_LEN), channel means removed, unit norm:
    (k, PROFILE_LEN * ch)."""
    pos = np.clip(pos.astype(np.float32), 0, THUMB - 1)
    i0 = pos.astype(np.intp)  # floor: pos >= 0
    frac = (pos - i0)[..., None]
    i1 = np.minimum(i0 + 1, THUMB - 1)
    lo = profile[i0]
    samples = lo + (profile[i1] - lo) * frac  # (k, L, ch)
    samples -= samples.mean(axis=1, keepdims=True)
    k = pos.shape[0]
    flat = samples.reshape(k, -1)
    norm = np.sqrt(np.einsum("kd,kd->k", flat, flat))
    return flat / (norm[:, None] + 1e-6)


# --- per-crop steps ---------------------------------------------------------------------------

def _as_rgb(crop: np.ndarray) -> np.ndarray:
    crop = np.asarray(crop)
    if crop.ndim == 2:
        crop = crop[..., None]
    if crop.ndim != 3 or crop.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {crop.shape}")
    if crop.shape[0] < 1 or crop.shape[1] < 1:
        raise ValueError(f"empty crop of shape {crop.shape}")
    if crop.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {crop.dtype}")
    if crop.shape[2] == 1:
        crop = np.repeat(crop, 3, axis=2)
    return np.ascontiguousarray(crop[..., :3])


def _thumbnail(rgb: np.ndarray) -> np.ndarray:
    """Stretched to THUMB x THUMB, float32 in [0, 1], blurred, channel first (3, THUMB, THUMB).
    Each axis is resampled separately:
    area averaging when it shrinks (no aliasing of fine texture), linear when it grows."""
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
    """(cx, cy, hx, hy) in thumbnail pixels (pixel i covers [i, i+1]): see the module docstring."""
    energy = np.zeros((THUMB, THUMB), np.float32)
    for channel in range(3):
        gx = cv2.Sobel(thumb[channel], cv2.CV_32F, 1, 0)
        gy = cv2.Sobel(thumb[channel], cv2.CV_32F, 0, 1)
        energy += gx * gx + gy * gy
    energy = np.sqrt(energy)
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
    """(centre, half-extent) of a 1-D energy distribution, see the module docstring."""
    total = float(marginal.sum())
    if total <= 1e-6:  # no structure at all: the inset box
        return THUMB / 2, KAPPA * (0.5 - INSET) * THUMB
    cdf = np.concatenate([[0.0], np.cumsum(marginal, dtype=np.float64) / total])
    edges = np.arange(THUMB + 1, dtype=np.float64)  # cdf[i] is reached at edge i
    lo, hi = np.interp([QUANTILE, 1 - QUANTILE], cdf, edges)
    return float((lo + hi) / 2), float(max(KAPPA * (hi - lo) / 2, MIN_HALF * THUMB))


def _axis_profiles(thumb: np.ndarray, centre: float, half: float, axis: int) -> np.ndarray:
    """Column (axis=0) or row (axis=1) means over PROFILE_BANDS bands of the frame's extent
    across that axis: (THUMB, 3 * PROFILE_BANDS)."""
    edges = np.linspace(centre - half, centre + half, PROFILE_BANDS + 1)
    bands = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        first = int(np.clip(math.floor(lo), 0, THUMB - 1))
        last = int(np.clip(math.ceil(hi), first + 1, THUMB))
        band = thumb[:, first:last, :] if axis == 0 else thumb[:, :, first:last]
        bands.append(band.mean(axis=axis + 1).T)  # (THUMB, 3)
    return np.ascontiguousarray(np.concatenate(bands, axis=1), dtype=np.float32)
