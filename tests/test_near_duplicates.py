"""Near-duplicate grouping (spatule_synth.generate.near_duplicates) on synthetic re-photographed objects.

Each object (a leg tag: white rounded rectangle with a 4-character code in black, all tags of one
design; or a generic object: random coloured shapes on a texture) is drawn once at high
resolution, then "photographed" several times: scaled to a random size (its base size x 0.7-1.4),
pasted on a surround that differs per photo, shifted by a sub-pixel amount, re-lit (gamma
0.7-1.4, contrast 0.7-1.3, brightness +-0.12, colour cast +-10 % per channel), given noise (sigma
up to 3 %), cropped with a few pixels of framing error per side, and JPEG re-compressed (quality
60-95).

``python -m tests.test_near_duplicates`` prints the distance distributions that
NEAR_DUPLICATE_THRESHOLD was chosen from, and the time to group 2,000 crops.
"""

from __future__ import annotations

import itertools
import math
import time

import cv2
import numpy as np
import pytest

from spatule_synth.generate.near_duplicates import (NEAR_DUPLICATE_THRESHOLD, cross_distances, distance,
                                           distances, fingerprint, group_fingerprints,
                                           group_near_duplicates)

CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # no I, O, Q, as on many ring and leg tags
MASTER_HEIGHT = 160  # objects are drawn at this height, then scaled down per photo
TAG_SIZES = (20, 80)  # tag heights in pixels (twice as wide) before the 0.7-1.4 rescale
OBJECT_SIZES = (40, 300)  # generic object heights in pixels, likewise
# Codes one character apart, with characters that stay distinct at 20 pixels in this font
# (K/X, 5/6, E/F and 8/B do not: see the module docstring of spatule_synth.generate.near_duplicates).
SEQUENTIAL_CODES = ["K7Q" + c for c in "2347AHX"] + ["4N" + c + "R" for c in "WMVK"]


# --- synthetic objects --------------------------------------------------------------------------

def tag_master(code: str) -> tuple[np.ndarray, np.ndarray]:
    """A white rounded-rectangle tag with ``code`` in black: (RGB, mask)."""
    h, w = MASTER_HEIGHT, 2 * MASTER_HEIGHT
    mask = np.zeros((h, w), np.uint8)
    r = h // 6
    cv2.rectangle(mask, (r, 0), (w - 1 - r, h - 1), 255, -1)
    cv2.rectangle(mask, (0, r), (w - 1, h - 1 - r), 255, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(mask, (cx, cy), r, 255, -1)
    rgb = np.ascontiguousarray(np.dstack([mask] * 3))
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 2.9, 10
    (tw, th), _ = cv2.getTextSize(code, font, scale, thickness)
    cv2.putText(rgb, code, ((w - tw) // 2, (h + th) // 2), font, scale, (0, 0, 0), thickness,
                cv2.LINE_AA)
    return rgb, mask


def random_code(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list(CHARS), 4))


def object_master(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A generic object: a textured coloured patch with random shapes on it, filling its box."""
    h, w = MASTER_HEIGHT, int(rng.integers(100, 240))
    texture = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0),
                               float(rng.uniform(1, 6)))
    texture *= rng.uniform(5, 30) / (texture.std() + 1e-6)
    img = rng.integers(0, 256, 3).astype(np.float32) + texture[..., None] * rng.uniform(0.3, 1, 3)
    img = np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))
    for _ in range(int(rng.integers(3, 9))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.circle(img, centre, int(rng.integers(8, min(h, w) // 2)), colour, -1, cv2.LINE_AA)
        elif kind == 1:
            points = rng.integers(0, [w, h], (int(rng.integers(3, 7)), 2)).astype(np.int32)
            cv2.fillPoly(img, [points], colour, cv2.LINE_AA)
        else:
            p0 = tuple(int(v) for v in rng.integers(0, [w, h]))
            p1 = tuple(int(v) for v in rng.integers(0, [w, h]))
            cv2.line(img, p0, p1, colour, int(rng.integers(2, 12)), cv2.LINE_AA)
    return img, np.full((h, w), 255, np.uint8)


def surround(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """What shows around the object in one photo: a random colour, texture, maybe stripes."""
    texture = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0),
                               float(rng.uniform(0.5, 4)))
    texture *= rng.uniform(5, 50) / (texture.std() + 1e-6)
    img = rng.integers(0, 256, 3).astype(np.float32) + texture[..., None] * rng.uniform(0.3, 1, 3)
    if rng.random() < 0.5:
        yy, xx = np.mgrid[0:h, 0:w]
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 20)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period
        img += (np.sin(phase) * rng.uniform(10, 50))[..., None]
    return np.clip(img, 0, 255)


def photograph(master: np.ndarray, mask: np.ndarray, height: float, rng: np.random.Generator, *,
               lighting: bool = True, noise: bool = True, framing: bool = True,
               quality: int | None = None) -> np.ndarray:
    """One photo of ``master`` at ``height`` pixels, cut out with a few pixels of framing error
    (up to 1, 2 or 3 pixels per side for objects under 25, 42 and over): the RGB crop."""
    mh, mw = mask.shape
    th = max(4, int(round(height)))
    tw = max(4, int(round(height * mw / mh)))
    obj = cv2.resize(master, (tw, th), interpolation=cv2.INTER_AREA).astype(np.float32)
    alpha = cv2.resize(mask, (tw, th), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    jitter = int(np.clip(round(0.06 * min(th, tw)), 1, 3)) if framing else 0
    pad = jitter + 6
    canvas = surround(rng, th + 2 * pad, tw + 2 * pad)
    inside = canvas[pad:pad + th, pad:pad + tw]
    canvas[pad:pad + th, pad:pad + tw] = obj * alpha[..., None] + inside * (1 - alpha[..., None])
    if framing:
        dx, dy = rng.uniform(-0.5, 0.5, 2)
        shift = np.float32([[1, 0, dx], [0, 1, dy]])
        canvas = cv2.warpAffine(canvas, shift, canvas.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    img = canvas / 255.0
    if lighting:
        img = np.clip(img, 0, 1) ** rng.uniform(0.7, 1.4)
        img = (img - 0.5) * rng.uniform(0.7, 1.3) + 0.5 + rng.uniform(-0.12, 0.12)
        img = img * rng.uniform(0.9, 1.1, 3)
    if noise:
        img = img + rng.normal(0, rng.uniform(0, 0.03), img.shape)
    img = np.clip(img * 255, 0, 255).astype(np.uint8)
    top, bottom, left, right = rng.integers(-jitter, jitter + 1, 4) if framing else (0, 0, 0, 0)
    crop = img[pad - top:pad + th + bottom, pad - left:pad + tw + right]
    quality = int(rng.integers(60, 96)) if quality is None else quality
    ok, buffer = cv2.imencode(".jpg", np.ascontiguousarray(crop[..., ::-1]),
                              [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.ascontiguousarray(cv2.imdecode(buffer, cv2.IMREAD_COLOR)[..., ::-1])


def photo_set(kind: str, seed: int, objects: int = 30, photos: int = 5, codes=None):
    """``objects`` objects ("tag" or "object") x ``photos`` photos: (crops, identity per crop)."""
    rng = np.random.default_rng(seed)
    crops, identities = [], []
    for identity in range(objects):
        if kind == "tag":
            code = codes[identity] if codes is not None else random_code(rng)
            master, mask = tag_master(code)
            base = rng.uniform(*TAG_SIZES)
        else:
            master, mask = object_master(rng)
            base = rng.uniform(*OBJECT_SIZES)
        for _ in range(photos):
            crops.append(photograph(master, mask, base * rng.uniform(0.7, 1.4), rng))
            identities.append(identity)
    return crops, identities


def split_distances(crops, identities):
    """Distances of the same-object pairs and of the different-object pairs."""
    matrix = cross_distances([fingerprint(c) for c in crops], [fingerprint(c) for c in crops])
    same, different = [], []
    for i, j in itertools.combinations(range(len(crops)), 2):
        (same if identities[i] == identities[j] else different).append(matrix[i, j])
    return np.array(same), np.array(different)


def assert_grouped_by_identity(groups, identities):
    for i, j in itertools.combinations(range(len(groups)), 2):
        same = identities[i] == identities[j]
        assert (groups[i] == groups[j]) == same, (
            f"crops {i} and {j} ({'same' if same else 'different'} object) are "
            f"{'together' if groups[i] == groups[j] else 'apart'}")


# --- tests ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tags_group_by_code(seed):
    """30 tags of one design, 5 photos each: every photo of a tag together, no two tags merged."""
    crops, identities = photo_set("tag", seed)
    assert_grouped_by_identity(group_near_duplicates(crops), identities)


@pytest.mark.parametrize("seed", [0, 1])
def test_generic_objects_group_by_object(seed):
    crops, identities = photo_set("object", 100 + seed)
    assert_grouped_by_identity(group_near_duplicates(crops), identities)


def test_tags_one_character_apart_stay_apart():
    """Sequential codes: one character differs."""
    crops, identities = photo_set("tag", 7, objects=len(SEQUENTIAL_CODES), photos=4,
                                  codes=SEQUENTIAL_CODES)
    assert_grouped_by_identity(group_near_duplicates(crops), identities)


def test_tags_and_objects_mixed():
    tags, tag_ids = photo_set("tag", 11, objects=10, photos=4)
    objects, object_ids = photo_set("object", 12, objects=10, photos=4)
    groups = group_near_duplicates(tags + objects)
    assert_grouped_by_identity(groups, tag_ids + [100 + i for i in object_ids])


@pytest.mark.parametrize("change", ["small", "large", "dark", "bright", "jpeg60", "framing",
                                    "noise"])
def test_each_change_alone_keeps_a_tag_together(change):
    """Each change alone, at its extreme, keeps a tag's photos within the threshold, and a tag
    one character apart photographed the same way stays out."""
    rng = np.random.default_rng(5)
    master, mask = tag_master("H8A3")
    other, other_mask = tag_master("H8H3")
    reference = photograph(master, mask, 40, rng, lighting=False, noise=False, framing=False,
                           quality=95)
    height = {"small": 40 * 0.7, "large": 40 * 1.4}.get(change, 40)
    options = dict(lighting=False, noise=change == "noise", framing=change == "framing",
                   quality=60 if change == "jpeg60" else 95)
    copy = photograph(master, mask, height, rng, **options)
    different = photograph(other, other_mask, height, rng, **options)
    if change in ("dark", "bright"):
        gamma, gain = (1.4, 0.7) if change == "dark" else (0.7, 1.2)
        copy, different = ((np.clip((c / 255.0) ** gamma * gain, 0, 1) * 255).astype(np.uint8)
                           for c in (copy, different))
    a, b, c = fingerprint(reference), fingerprint(copy), fingerprint(different)
    assert distance(a, b) <= NEAR_DUPLICATE_THRESHOLD
    assert distance(a, c) > NEAR_DUPLICATE_THRESHOLD


def test_distance_is_symmetric_and_zero_on_itself():
    crops, _ = photo_set("tag", 3, objects=3, photos=2)
    prints = [fingerprint(c) for c in crops]
    for a, b in itertools.combinations(prints, 2):
        assert distance(a, b) == distance(b, a)
    for p in prints:
        assert distance(p, p) < 1e-3


def test_bulk_distances_match_pairwise():
    crops, _ = photo_set("tag", 4, objects=4, photos=3)
    prints = [fingerprint(c) for c in crops]
    matrix = cross_distances(prints, prints)
    for i, j in itertools.combinations(range(len(prints)), 2):
        expected = distance(prints[i], prints[j])
        if math.isinf(expected):
            assert math.isinf(matrix[i, j])
        else:
            assert matrix[i, j] == pytest.approx(expected, abs=1e-5)


def random_prints(seed: int) -> list:
    """Fingerprints of a mix: tags and generic objects photographed 3 times each (near duplicates),
    tags one character apart (profiles alike), random-noise crops of random sizes and aspect
    ratios, and a flat crop."""
    rng = np.random.default_rng(seed)
    tags, _ = photo_set("tag", seed, objects=5, photos=3)
    alike, _ = photo_set("tag", seed, objects=len(SEQUENTIAL_CODES), photos=1, codes=SEQUENTIAL_CODES)
    objects, _ = photo_set("object", seed, objects=3, photos=3)
    noise = [rng.integers(0, 256, (int(rng.integers(8, 90)), int(rng.integers(8, 90)), 3), dtype=np.uint8)
             for _ in range(12)]
    crops = tags + alike + objects + noise + [np.full((30, 60, 3), 128, np.uint8)]
    return [fingerprint(crops[i]) for i in rng.permutation(len(crops))]


@pytest.mark.parametrize("seed", [0, 1])
def test_cross_distances_equal_distance_bit_for_bit(seed, monkeypatch):
    import spatule_synth.generate.near_duplicates as near_duplicates
    prints = random_prints(seed)
    rows, cols = prints[: len(prints) // 2], prints[len(prints) // 2:] + prints[:3]
    expected = np.array([[distance(a, b) for b in cols] for a in rows])
    directed, calls = near_duplicates._directed, []
    monkeypatch.setattr(near_duplicates, "_directed", lambda *args: calls.append(1) or directed(*args))
    matrix = cross_distances(rows, cols)
    assert matrix.dtype == np.float64 and matrix.shape == expected.shape
    assert np.array_equal(matrix, expected)  # bit for bit, inf where inf
    assert np.isfinite(expected).sum() >= 3 and np.isinf(expected).sum() >= len(rows) * len(cols) // 2
    assert len(calls) < len(rows) * len(cols)  # the bulk screens ruled pairs out
    floor = near_duplicates.PROFILE_MIN - near_duplicates._SCREEN_SLACK
    forward = near_duplicates._profile_scores(rows, cols) >= floor
    backward = near_duplicates._profile_scores(cols, rows).T >= floor
    assert (forward & ~backward).any() or (backward & ~forward).any()  # one direction screened out
    assert np.isinf(expected[forward | backward]).any()  # left by the screens, inf by distance()
    for a, row in zip(rows, expected):
        assert np.array_equal(distances(a, cols), row)
    assert cross_distances([], cols).shape == (0, len(cols)) and distances(rows[0], []).shape == (0,)


def test_bulk_profile_scores_stay_within_the_screens_slack():
    """The bulk profile scores differ from _alignment's far less than the slack the screen allows."""
    from spatule_synth.generate.near_duplicates import _SCREEN_SLACK, _candidates, _profile_scores
    prints = random_prints(2)
    bulk = _profile_scores(prints, prints)
    exact = np.array([[min(float((_candidates(b, "col") @ a.col_template).max()),
                           float((_candidates(b, "row") @ a.row_template).max())) for b in prints]
                      for a in prints])
    assert np.abs(bulk - exact).max() < _SCREEN_SLACK / 20


def test_very_different_aspect_ratio_is_different():
    rng = np.random.default_rng(0)
    tag = photograph(*tag_master("AB12"), 40, rng)
    squashed = cv2.resize(tag, (tag.shape[1], tag.shape[0] * 2))
    assert math.isinf(distance(fingerprint(tag), fingerprint(squashed)))


def test_grouping_is_transitive():
    """Three photos of one tag with a threshold between the two closest pairs and the far
    pair: 0~1 and 1~2 (say) put all three together although the far pair is over it."""
    crops, _ = photo_set("tag", 9, objects=1, photos=3)
    prints = [fingerprint(c) for c in crops]
    d = cross_distances(prints, prints)
    (d_small, _), (d_mid, _), (d_big, far) = sorted(
        [(d[0, 1], (0, 1)), (d[0, 2], (0, 2)), (d[1, 2], (1, 2))])
    assert d_small <= d_mid < d_big
    threshold = (d_mid + d_big) / 2
    assert d[far] > threshold
    assert group_fingerprints(prints, threshold) == [0, 0, 0]
    assert group_fingerprints(prints, d_small / 2) == [0, 1, 2]


def test_numbering_and_determinism():
    crops, identities = photo_set("tag", 21, objects=4, photos=3)
    order = np.random.default_rng(0).permutation(len(crops))
    shuffled = [crops[i] for i in order]
    groups = group_near_duplicates(shuffled)
    assert groups == group_near_duplicates(shuffled)
    seen = []
    for g in groups:  # 0, 1, ... in order of first appearance
        if g not in seen:
            assert g == len(seen)
            seen.append(g)
    assert len(seen) == 4
    assert_grouped_by_identity(groups, [identities[i] for i in order])


def test_empty_and_single():
    assert group_near_duplicates([]) == []
    rng = np.random.default_rng(0)
    assert group_near_duplicates([photograph(*tag_master("AAAA"), 30, rng)]) == [0]


def test_identical_flat_and_odd_crops():
    """Identical crops group; crops without any structure carry nothing to match and stay
    alone; odd shapes and channel counts work."""
    flat = np.full((20, 40, 3), 200, np.uint8)
    tiny = np.zeros((1, 1, 3), np.uint8)
    grey = np.full((30, 60), 128, np.uint8)
    rgba = np.zeros((30, 60, 4), np.uint8)
    rng = np.random.default_rng(0)
    tag = photograph(*tag_master("K7QX"), 30, rng)
    groups = group_near_duplicates([flat, flat.copy(), tiny, grey, rgba, tag, tag.copy()])
    assert groups == [0, 1, 2, 3, 4, 5, 5]
    with pytest.raises(ValueError):
        fingerprint(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ValueError):
        fingerprint(np.zeros((5, 5, 3), np.float32))


# --- the numbers behind NEAR_DUPLICATE_THRESHOLD --------------------------------------------------

def _summary(name: str, same: np.ndarray, different: np.ndarray) -> str:
    finite = different[np.isfinite(different)]
    low = f"min {finite.min():.3f}, 1st percentile {np.percentile(finite, 1):.3f}" if len(
        finite) else "none"
    return (f"{name}: same object {len(same)} pairs, max {same.max():.3f}, 99th percentile "
            f"{np.percentile(same, 99):.3f}, median {np.median(same):.3f}; different "
            f"{len(different)} pairs, {len(different) - len(finite)} ruled out by the screens, "
            f"the others {low}")


def _report(seeds=range(5)) -> None:
    for kind, offset in (("tag", 0), ("object", 100)):
        parts = [split_distances(*photo_set(kind, offset + seed)) for seed in seeds]
        same = np.concatenate([p[0] for p in parts])
        different = np.concatenate([p[1] for p in parts])
        print(_summary(f"{kind}s (30 x 5 photos, {len(seeds)} seeds)", same, different))
    codes = SEQUENTIAL_CODES + ["K7Q5", "K7Q6", "4NXR", "K7QE", "K7QF"]
    crops, identities = photo_set("tag", 7, objects=len(codes), photos=4, codes=codes)
    matrix = cross_distances([fingerprint(c) for c in crops], [fingerprint(c) for c in crops])
    closest: dict[tuple[str, str], float] = {}
    for i, j in itertools.combinations(range(len(crops)), 2):
        if identities[i] != identities[j]:
            key = tuple(sorted((codes[identities[i]], codes[identities[j]])))
            closest[key] = min(closest.get(key, math.inf), matrix[i, j])
    print("one character apart, closest pairs:",
          ", ".join(f"{a}/{b} {d:.3f}" for (a, b), d in sorted(closest.items(),
                                                             key=lambda t: t[1])[:8]))
    tags, identities = photo_set("tag", 60, objects=400, photos=5)
    start = time.perf_counter()
    prints = [fingerprint(c) for c in tags]
    middle = time.perf_counter()
    groups = group_fingerprints(prints)
    end = time.perf_counter()
    same, different = split_distances(tags, identities)
    print(_summary("400 tags x 5 photos", same, different))
    print(f"  groups {max(groups) + 1} (400 tags); 2,000 crops: fingerprints "
          f"{middle - start:.1f} s, grouping {end - middle:.1f} s")
    crops = []
    for seed in range(4):
        crops += photo_set("object", 200 + seed, objects=100, photos=5)[0]
    start = time.perf_counter()
    group_near_duplicates(crops)
    print(f"2,000 generic-object crops: {time.perf_counter() - start:.1f} s in all")
    noise = [np.random.default_rng(i).integers(0, 256, (int(20 + i % 60), int(30 + i % 90), 3),
                                               dtype=np.uint8) for i in range(2000)]
    start = time.perf_counter()
    group_near_duplicates(noise)
    print(f"2,000 random-noise crops: {time.perf_counter() - start:.1f} s in all")


if __name__ == "__main__":
    _report()
