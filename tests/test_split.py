"""Splits sealed across runs: an identity's side depends only on (seed, key, eval_fraction);
identities are photo contents, not paths; random streams never coincide."""

import itertools
import json
import os
import shutil

import numpy as np
import pytest

from spatule_synth.core.config import GenerateConfig, PlacementConfig
from spatule_synth.generate.identities import content_key, join_identities
from spatule_synth.generate.plan import background_for, plan_sample
from spatule_synth.generate.random_streams import STREAM_IDS, entropy, stream
from spatule_synth.generate.split import SplitError, split_draw, split_keys
from spatule_synth.generate.run import run_generate
from conftest import background_photos, tag_photos
from painted import coco_json


def keys(count, start=0):
    return [f"photo:{index:016x}" for index in range(start, start + count)]


def test_adding_keys_never_moves_an_existing_one():
    before = split_keys(keys(40), 0.2, seed=5, kind="identities")
    after = split_keys(keys(400), 0.2, seed=5, kind="identities")
    assert all(after[key] == side for key, side in before.items())
    assert 0.15 < sum(side == "eval" for side in after.values()) / 400 < 0.25
    assert split_keys(keys(40)[::-1], 0.2, seed=5, kind="identities") == before  # order-free


def test_raising_eval_fraction_only_moves_keys_from_train_to_eval():
    low = split_keys(keys(200), 0.1, seed=0, kind="identities")
    high = split_keys(keys(200), 0.3, seed=0, kind="identities")
    assert all(high[key] == "eval" for key, side in low.items() if side == "eval")
    assert sum(s == "eval" for s in high.values()) > sum(s == "eval" for s in low.values())


def test_an_empty_side_stops_with_seeds_that_work():
    three = keys(3)
    seed = next(s for s in range(100) if all(split_draw(s, "identities", k) >= 0.2 for k in three))
    with pytest.raises(SplitError) as stopped:
        split_keys(three, 0.2, seed=seed, kind="identities")
    message = str(stopped.value)
    assert message.startswith(f"with --seed={seed} and --eval_fraction=0.2, none of the 3 identities "
                              "drew eval: each identity's side depends only on the seed and itself")
    suggested = message.split("--seed=")[2].split(" gives")[0].split(" or ")
    assert len(suggested) == 3
    for other in suggested:  # the seeds it names really give both sides
        assert set(split_keys(three, 0.2, seed=int(other), kind="identities").values()) == {"train", "eval"}
    with pytest.raises(SplitError, match="cannot split 1 identities"):
        split_keys(keys(1), 0.2, seed=0, kind="identities")
    assert set(split_keys(keys(1), 0.0, seed=0, kind="identities").values()) == {"train"}


def test_suggested_seeds_give_both_sides_for_every_kind():
    from spatule_synth.generate.split import split_all
    kinds = {"identities": keys(6), "background photos": keys(6, start=100)}
    seed = next(s for s in range(200) if not all(
        len({split_draw(s, kind, k) < 0.2 for k in ks}) == 2 for kind, ks in kinds.items()))
    with pytest.raises(SplitError) as stopped:
        split_all(kinds, 0.2, seed)
    suggested = str(stopped.value).split("--seed=")[2].split(" gives")[0].split(" or ")
    assert "for the identities and the background photos" in str(stopped.value)
    for other in suggested:
        sides = split_all(kinds, 0.2, int(other))
        assert all(set(s.values()) == {"train", "eval"} for s in sides.values())


def run(inputs, out, **options):
    settings = dict(input_dirs=(str(inputs / "labelled"),), background_dirs=(str(inputs / "backgrounds"),),
                    output_dir=str(out), num_images=12, canvas_size=96, eval_fraction=0.3,
                    num_workers=1, seed=2, report=False)
    settings.update(options)
    run_generate(GenerateConfig.from_settings(**settings))
    return json.loads((out / "manifest.json").read_text())


def sides(manifest, what):
    """file name -> split, for the cutouts' photos or the background photos of a run."""
    found = {}
    for split in ("train", "eval"):
        if what == "cutouts":
            files = [s["file"] for s in manifest["splits"][split]["cutout_sources"].values()]
        else:
            files = manifest["splits"][split]["backgrounds"]
        for path in files:
            found[os.path.basename(path)] = split
    return found


def copy_labelled(source, target):
    """Copy a photo or its XML under another name (the XML's <filename> follows)."""
    if str(source).endswith(".xml"):
        text = source.read_text().replace(source.name[:-4], target.name[:-4])
        target.write_text(text)
    else:
        shutil.copy(source, target)


def test_adding_photos_keeps_every_earlier_identity_and_background_on_its_side(tmp_path):
    tag_photos(tmp_path / "labelled", 6)
    background_photos(tmp_path / "backgrounds", 6)
    first = run(tmp_path, tmp_path / "first")
    more = tmp_path / "more"
    tag_photos(more, 14, seed=7)
    for name in os.listdir(more):  # new photos, new names
        copy_labelled(more / name, tmp_path / "labelled" / name.replace("TAG", "NEW"))
    background_photos(tmp_path / "new_backgrounds", 10, seed=9)
    for name in os.listdir(tmp_path / "new_backgrounds"):
        shutil.copy(tmp_path / "new_backgrounds" / name, tmp_path / "backgrounds" / f"NEW{name}")
    second = run(tmp_path, tmp_path / "second")
    for what in ("cutouts", "backgrounds"):
        before, after = sides(first, what), sides(second, what)
        assert len(after) > len(before) and set(after.values()) == {"train", "eval"}
        assert {name: after[name] for name in before} == before
    assert second["eval_share"]["identities"][1] == 20


def test_a_copy_of_a_photo_under_another_name_is_the_same_identity(tmp_path):
    tag_photos(tmp_path / "labelled", 6)
    background_photos(tmp_path / "backgrounds", 6)
    for ext in ("JPG", "xml"):
        copy_labelled(tmp_path / "labelled" / f"TAG00 (1).{ext}", tmp_path / "labelled" / f"copy of TAG00.{ext}")
    manifest = run(tmp_path, tmp_path / "out", identity="object")
    identities = {}
    for split in ("train", "eval"):
        for source in manifest["splits"][split]["cutout_sources"].values():
            identities.setdefault((source["box"][0], os.path.basename(source["file"])), (split, source["identity"]))
    for x0 in (10, 100):  # the two tags of the photo: each one identity with its copy, on one side
        assert identities[(x0, "TAG00 (1).JPG")] == identities[(x0, "copy of TAG00.JPG")]
    assert identities[(10, "TAG00 (1).JPG")] != identities[(100, "TAG00 (1).JPG")]


def test_one_photo_read_through_two_formats_is_one_identity(tmp_path):
    tag_photos(tmp_path / "labelled", 6)
    background_photos(tmp_path / "backgrounds", 6)
    coco = tmp_path / "coco"
    os.makedirs(coco)
    shutil.copy(tmp_path / "labelled" / "TAG03 (1).JPG", coco / "renamed.jpg")
    coco_json(coco / "instances.json", [("renamed.jpg", (200, 150), [{"category_id": 1, "bbox": [10, 40, 30, 20]}])])
    manifest = run(tmp_path, tmp_path / "out", coco_json=(str(coco / "instances.json"),),
                   coco_image_dirs=(str(coco),))
    found = {os.path.basename(s["file"]): (split, s["identity"]) for split in ("train", "eval")
             for s in manifest["splits"][split]["cutout_sources"].values()}
    assert found["renamed.jpg"] == found["TAG03 (1).JPG"]
    assert found["renamed.jpg"][1] == f"photo:{content_key(str(coco / 'renamed.jpg'))}"


def test_joined_identities_take_the_smallest_name_whatever_the_order():
    first = ["B", "A", "C", "D"]
    objects = ["x", "y", "x", "z"]  # B and C show the same object
    groups = [0, 1, 1, 2]  # near-duplicates: A and C
    assert join_identities(first, objects, groups) == ["A", "A", "A", "D"]
    order = [3, 2, 1, 0]
    assert join_identities([first[i] for i in order], [objects[i] for i in order],
                           [groups[i] for i in order]) == ["D", "A", "A", "A"]


def test_random_streams_never_coincide():
    lists = set()
    for name, split, index in itertools.product(STREAM_IDS, (0, 1), (0, 1, 182)):
        lists.add(tuple(entropy(7, name, split, index)))
        lists.add(tuple(entropy(7, name, split, index, 0)))
    assert len(lists) == len(STREAM_IDS) * 2 * 3 * 2
    # the old collision: the background order of cycle 0 was image 182's stream
    background = stream(7, "background_order", 0, 0).integers(1 << 62, size=4)
    image = stream(7, "image", 0, 182).integers(1 << 62, size=4)
    assert not np.array_equal(background, image)


def test_an_image_depends_on_seed_split_and_index_and_the_block_length(tmp_path):
    from spatule_synth.generate.plan import SplitPool
    from spatule_synth.generate.sources import Background
    config = PlacementConfig(canvas_size=64, objects_per_image=(0, 0))  # no cutout: negatives only
    photos = tuple(Background(f"bg{i}.jpg", 100, 100) for i in range(5))
    pool = SplitPool("train", (), photos, windows_per_background=2)
    assert plan_sample(config, 4, pool, 9) == plan_sample(config, 4, pool, 9)
    assert plan_sample(config, 4, pool, 9) != plan_sample(config, 5, pool, 9)
    assert [background_for(i, pool, 4) for i in range(10)] != \
        [background_for(i, SplitPool("train", (), photos, 3), 4) for i in range(10)]
