"""--mode=evaluate: COCO numbers known exactly, tiles stitched back to photos, one-line errors.

The detector of the end-to-end tests is a tf.Module exported with the OD API's image_tensor
signature (`export_colour_detector`): it finds each colour of its table as one box (the bounding box
of that colour's pixels) with that colour's class and score. The photos are painted with those
colours on dark noise (tests/painted.py's scene, every channel below 130), at multiples of 16 px so
that JPEG tiles keep the edges exact; so what it detects, and hence every AP, is known in advance.
"""

import json
import os
import shutil
import subprocess
import sys

import fsspec
import numpy as np
import pytest
from PIL import Image

from painted import scene, voc_xml
from spatule_synth.modes import coco_metrics
from spatule_synth.modes.coco_metrics import Truth
from spatule_synth.modes.stitch import Detections, merge_tiles, on_photo
from spatule_synth.modes.tiles import cut_tiles
from spatule_synth.core.boxes import Box

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# colour -> (class id, score) the test detector gives it; magenta is a colour it never finds, white
# a class the label map does not have
RED, GREEN, BLUE, CYAN, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 255, 255), (255, 255, 0)
MAGENTA, WHITE = (255, 0, 255), (255, 255, 255)
TABLE = {RED: (1, 0.9), GREEN: (1, 0.8), BLUE: (2, 0.7), CYAN: (1, 0.6), YELLOW: (1, 0.95), WHITE: (7, 0.5)}
PHOTO = (512, 384)
# photo a: every object found; photo b: a tag missed (magenta) and a false tag (yellow, unlabelled)
# scoring above every true one. Blue and cyan cross tile borders of 256 px tiles overlapping 128.
PHOTO_A = [("tag", RED, (48, 48, 112, 112)), ("tag", GREEN, (304, 208, 320, 224)),
           ("dog", BLUE, (352, 240, 464, 352))]
PHOTO_B = [("tag", CYAN, (224, 96, 288, 160)), ("tag", MAGENTA, (400, 48, 448, 96)),
           (None, YELLOW, (64, 256, 112, 304))]
# tag: ranked FP (0.95), TP, TP, TP of 4 objects: interpolated precision 3/4 up to recall 3/4
TAG_AP = 76 * 0.75 / 101
DOG_AP = 1.0


def box(x0, y0, x1, y1):
    return [float(x0), float(y0), float(x1), float(y1)]


# --- pure parts: merging tiles ---------------------------------------------------------------

def test_a_part_of_an_object_seen_by_another_tile_is_merged_into_the_whole():
    whole = Detections([box(100, 100, 160, 160)], [0.8], [1], [1])
    part = Detections([box(100, 100, 128, 160)], [0.8], [1], [2])  # same score, cut by a tile edge
    merged = merge_tiles(Detections.concatenate([part, whole]))
    assert merged.boxes.tolist() == [box(100, 100, 160, 160)]
    sharper = Detections([box(100, 100, 128, 160)], [0.85], [1], [2])  # the part scores higher
    merged = merge_tiles(Detections.concatenate([sharper, whole]))
    assert merged.boxes.tolist() == [box(100, 100, 160, 160)] and merged.scores.tolist() == [0.85]


def test_merging_keeps_the_higher_score_and_other_classes_and_what_one_tile_said_twice():
    first = Detections([box(0, 0, 50, 50), box(10, 10, 50, 50), box(0, 0, 50, 50)], [0.6, 0.5, 0.4],
                       [1, 1, 2], [1, 1, 1])
    second = Detections([box(2, 2, 52, 52)], [0.9], [1], [2])
    merged = merge_tiles(Detections.concatenate([first, second]))
    # the 0.6 and 0.5 boxes of class 1 merge into the 0.9 of another tile; class 2 is kept
    assert merged.scores.tolist() == [0.9, 0.4]
    assert merged.classes.tolist() == [1, 2]
    assert merged.boxes.tolist() == [box(0, 0, 52, 52), box(0, 0, 50, 50)]
    alone = merge_tiles(first)  # one tile: the detector's own output, untouched
    assert sorted(alone.scores.tolist()) == [0.4, 0.5, 0.6]


def test_distinct_neighbours_from_two_tiles_are_both_kept():
    merged = merge_tiles(Detections([box(0, 0, 40, 40), box(30, 0, 70, 40)], [0.9, 0.8], [1, 1], [1, 2]))
    assert len(merged) == 2  # they share 10x40 px: a quarter of either box


def test_tile_detections_go_back_to_the_photo_clipped_to_it():
    tile = Detections([box(10, 20, 30, 40), box(90, 90, 100, 100)], [0.5, 0.4], [1, 1])
    shifted = on_photo(tile, 200, 100, width=295, height=400, tile=3)
    assert shifted.boxes.tolist() == [box(210, 120, 230, 140), box(290, 190, 295, 200)]
    assert shifted.tiles.tolist() == [3, 3]
    padding_only = on_photo(Detections([box(96, 0, 100, 10)], [0.5], [1]), 200, 0, 295, 400, 1)
    assert len(padding_only) == 0  # entirely in the black padding beyond the photo


def test_stitched_tiles_give_the_whole_photo_result():
    """A perfect detector run per tile (it sees each object's visible part) and stitched back
    scores exactly as the same detector on the whole photo."""
    width, height = PHOTO
    objects = [(n or "tag", TABLE.get(c, (1, 0.3))[0], Box(*b), False) for n, c, b in PHOTO_A + PHOTO_B]
    scores = [0.9, 0.8, 0.7, 0.6, 0.3, 0.95]
    whole = Detections([[o[2].xmin, o[2].ymin, o[2].xmax, o[2].ymax] for o in objects], scores,
                       [o[1] for o in objects])
    parts = []
    for number, tile in enumerate(cut_tiles(width, height, objects, 256, 128, min_visible=0), start=1):
        seen = Detections([[o.box.xmin, o.box.ymin, o.box.xmax, o.box.ymax] for o in tile.objects],
                          [scores[o.source_index] for o in tile.objects],
                          [o.class_id for o in tile.objects])
        parts.append(on_photo(seen, tile.x, tile.y, width, height, number))
    assert len(Detections.concatenate(parts)) > len(whole)  # objects were seen by several tiles
    stitched = merge_tiles(Detections.concatenate(parts))
    order = np.argsort(-whole.scores)
    assert stitched.boxes.tolist() == whole.boxes[order].tolist()
    assert stitched.scores.tolist() == whole.scores[order].tolist()


# --- pure parts: metrics ---------------------------------------------------------------------

def _truth(*boxes, difficult=()):
    return Truth([box(*b) for b in boxes], [1] * len(boxes), [i in difficult for i in range(len(boxes))])


SQUARES = [(0, 0, 40, 40), (50, 50, 90, 90), (0, 100, 20, 120), (100, 0, 200, 100)]


def test_perfect_boxes_score_one():
    truths = {1: _truth(*SQUARES)}
    found = {1: Detections([box(*b) for b in SQUARES], [0.9, 0.8, 0.7, 0.6], [1] * 4)}
    stats = coco_metrics.summary_stats(coco_metrics.coco_evaluation(truths, found, [1]))
    assert stats["AP"] == pytest.approx(1.0) and stats["AR100"] == pytest.approx(1.0)
    assert stats["AP_small"] == pytest.approx(1.0) and stats["AP_large"] == pytest.approx(1.0)


def test_half_the_objects_found_gives_51_of_101():
    truths = {1: _truth(*SQUARES[:2]), 2: _truth(*SQUARES[:2])}
    found = {1: Detections([box(*b) for b in SQUARES[:2]], [0.9, 0.8], [1, 1])}
    evaluation = coco_metrics.coco_evaluation(truths, found, [1])
    # precision 1 up to recall 0.5, nothing beyond: 51 of the 101 recall points
    assert coco_metrics.summary_stats(evaluation)["AP"] == pytest.approx(51 / 101)
    assert coco_metrics.at_threshold(evaluation, 0.5)["recall"] == 0.5


def test_a_false_positive_above_a_true_one_gives_the_interpolated_ap():
    truths = {1: _truth(*SQUARES[:2])}
    found = {1: Detections([box(*SQUARES[0]), box(300, 300, 340, 340), box(*SQUARES[1])],
                           [0.9, 0.8, 0.7], [1, 1, 1])}
    evaluation = coco_metrics.coco_evaluation(truths, found, [1])
    # TP, FP, TP: precision 1 up to recall 0.5, then 2/3
    assert coco_metrics.summary_stats(evaluation)["AP"] == pytest.approx((51 + 50 * 2 / 3) / 101)
    curve = coco_metrics.precision_recall(evaluation, 0)
    assert curve[50] == pytest.approx(1) and curve[51] == pytest.approx(2 / 3)
    misses, false = coco_metrics.findings(evaluation, threshold=0.75)
    assert [(m.box, m.score) for m in misses] == [((50, 50, 90, 90), 0.7)]  # found, but below 0.75
    assert [(f.box, f.score) for f in false] == [((300, 300, 340, 340), 0.8)]


def test_recall_per_size_at_the_threshold_and_difficult_objects_not_counted():
    truths = {1: _truth(*SQUARES, difficult=(3,))}  # sizes: medium, medium, small, large (difficult)
    found = {1: Detections([box(*SQUARES[0]), box(*SQUARES[2]), box(*SQUARES[3])], [0.9, 0.3, 0.8],
                           [1, 1, 1])}
    evaluation = coco_metrics.coco_evaluation(truths, found, [1])
    by_size = coco_metrics.recall_by_size(evaluation, 0.5)
    assert by_size == {"all": {"objects": 3, "found": 1, "recall": 1 / 3},
                       "small": {"objects": 1, "found": 0, "recall": 0.0},  # found at 0.3 only
                       "medium": {"objects": 2, "found": 1, "recall": 0.5},
                       "large": {"objects": 0, "found": 0, "recall": None}}
    at = coco_metrics.at_threshold(evaluation, 0.5)
    # the detection on the difficult object is neither right nor wrong
    assert (at["true_positives"], at["false_positives"], at["precision"]) == (1, 0, 1.0)


# --- end to end: a detector exported in the test, convert runs, generate.py --mode=evaluate -----

def export_colour_detector(path, table=TABLE, outputs=None):
    """An OD-API-like SavedModel: input_tensor uint8 [1, None, None, 3] -> the four outputs (or
    ``outputs``, to make a broken one); one box per colour of ``table`` present in the image."""
    import tensorflow as tf

    colours = np.array(list(table), np.int32)

    class ColourDetector(tf.Module):
        def __init__(self):
            super().__init__()
            self.high = tf.constant(colours > 128)
            self.classes = tf.constant([float(table[c][0]) for c in table], tf.float32)
            self.scores = tf.constant([table[c][1] for c in table], tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8)])
        def __call__(self, input_tensor):
            image = tf.cast(input_tensor[0], tf.int32)
            height, width = tf.shape(image)[0], tf.shape(image)[1]
            match = tf.reduce_all(tf.where(self.high[:, None, None, :], (image > 160)[None],
                                           (image < 90)[None]), axis=-1)  # colours, H, W
            rows, cols = tf.reduce_any(match, axis=2), tf.reduce_any(match, axis=1)
            present = tf.reduce_any(rows, axis=1)

            def extent(hits, length):
                index = tf.range(length)[None]
                first = tf.reduce_min(tf.where(hits, index, length), axis=1)
                last = tf.reduce_max(tf.where(hits, index + 1, 0), axis=1)
                return tf.cast(first, tf.float32) / tf.cast(length, tf.float32), \
                    tf.cast(last, tf.float32) / tf.cast(length, tf.float32)

            (ymin, ymax), (xmin, xmax) = extent(rows, height), extent(cols, width)
            boxes = tf.stack([ymin, xmin, ymax, xmax], axis=1)
            scores = tf.where(present, self.scores, 0.0)
            order = tf.argsort(scores, direction="DESCENDING", stable=True)
            result = {"detection_boxes": tf.gather(boxes, order)[None],
                      "detection_scores": tf.gather(scores, order)[None],
                      "detection_classes": tf.gather(self.classes, order)[None],
                      "num_detections": tf.reduce_sum(tf.cast(present, tf.float32))[None]}
            return {k: v for k, v in result.items() if outputs is None or k in outputs}

    module = ColourDetector()
    tf.saved_model.save(module, str(path), signatures=module.__call__.get_concrete_function())
    return str(path)


def paint_photo(folder, name, objects, seed=0):
    """A PNG of noise with each object's box painted its colour, and its XML (objects whose name
    is None are painted but not labelled)."""
    os.makedirs(folder, exist_ok=True)
    pixels = scene(PHOTO, seed)
    for _, colour, (x0, y0, x1, y1) in objects:
        pixels[y0:y1, x0:x1] = colour
    Image.fromarray(pixels).save(os.path.join(folder, name))
    with open(os.path.join(folder, os.path.splitext(name)[0] + ".xml"), "w", encoding="utf-8") as handle:
        handle.write(voc_xml(name, PHOTO, [(n, b) for n, _, b in objects if n]))


def convert(photos, output_dir, label_map, **options):
    from spatule_synth.core.config import ConvertConfig
    from spatule_synth.modes.convert import run_convert
    run_convert(ConvertConfig(input_dirs=(str(photos),), output_dir=str(output_dir),
                              label_map_path=str(label_map), **options))
    return str(output_dir)


def evaluate(*flags):
    return subprocess.run([sys.executable, os.path.join(REPO, "generate.py"), "--mode=evaluate", *flags],
                          capture_output=True, text=True, cwd=REPO, timeout=600)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The exported detector, and the two photos converted whole and in tiles."""
    root = tmp_path_factory.mktemp("evaluate")
    label_map = root / "label_map.pbtxt"
    label_map.write_text("item { id: 1 name: 'tag' }\nitem { id: 2 name: 'dog' }\n")
    paint_photo(root / "photos", "a.png", PHOTO_A, seed=1)
    paint_photo(root / "photos", "b.png", PHOTO_B, seed=2)
    return {"root": root, "label_map": label_map, "detector": export_colour_detector(root / "export"),
            "whole": convert(root / "photos", root / "whole", label_map),
            "tiles": convert(root / "photos", root / "tiles", label_map, tile_size=256, tile_overlap=128,
                             tile_negative_fraction=1.0, tile_min_visible=0.0)}


@pytest.mark.slow
def test_evaluate_whole_photos_gives_the_expected_numbers_and_files(workspace, tmp_path):
    done = evaluate(f"--detector={workspace['detector']}", f"--records={workspace['whole']}",
                    f"--output_dir={tmp_path / 'eval'}")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "eval"
    assert {"evaluation.json", "evaluation.html", "precision_recall.png", "worst_misses.png",
            "false_positives.png"} <= set(os.listdir(out))
    result = json.loads((out / "evaluation.json").read_text())
    assert result["counts"] == {"images": 2, "objects": 5, "difficult_objects": 0, "detections": 5}
    assert result["per_class"]["tag"]["coco"]["AP"] == pytest.approx(TAG_AP)
    assert result["per_class"]["tag"]["coco"]["AP50"] == pytest.approx(TAG_AP)
    assert result["per_class"]["dog"]["coco"]["AP"] == pytest.approx(DOG_AP)
    assert result["coco"]["AP"] == pytest.approx((TAG_AP + DOG_AP) / 2)
    assert result["coco"]["AP_small"] == pytest.approx(1.0)  # the green 16x16 tag, found
    # at 0.5: 4 of the 5 objects found (magenta missed); yellow is the one wrong detection
    assert result["at_threshold"] == {"objects": 5, "found": 4, "recall": 0.8, "detections": 5,
                                      "true_positives": 4, "false_positives": 1, "precision": 0.8}
    assert result["recall_by_size"]["small"] == {"objects": 1, "found": 1, "recall": 1.0}
    assert result["recall_by_size"]["medium"] == {"objects": 3, "found": 2, "recall": 2 / 3}
    assert result["recall_by_size"]["large"] == {"objects": 1, "found": 1, "recall": 1.0}
    assert [(m["class"], m["box"]) for m in result["worst_misses"]] == [("tag", box(400, 48, 448, 96))]
    assert [(f["class"], f["box"], f["score"]) for f in result["false_positives"]] == [
        ("tag", box(64, 256, 112, 304), 0.95)]
    assert "evaluate: 2 images, 5 objects (0 difficult, not scored), 5 detections" in done.stdout
    assert f"{TAG_AP:.3f}" in done.stdout.splitlines()[3]  # the tag row of the table
    page = (out / "evaluation.html").read_text()
    assert "precision_recall.png" in page and "worst_misses.png" in page


@pytest.mark.slow
def test_tiles_are_stitched_back_and_score_as_the_whole_photos(workspace, tmp_path):
    whole = evaluate(f"--detector={workspace['detector']}", f"--records={workspace['whole']}",
                     f"--output_dir={tmp_path / 'whole'}")
    tiled = evaluate(f"--detector={workspace['detector']}", f"--records={workspace['tiles']}",
                     f"--output_dir={tmp_path / 'tiled'}")
    assert whole.returncode == 0 and tiled.returncode == 0, whole.stderr + tiled.stderr
    a, b = (json.loads((tmp_path / name / "evaluation.json").read_text()) for name in ("whole", "tiled"))
    assert b["tiles"]["tiles_evaluated"] == 12  # 3 x 2 tiles per photo, all kept
    for key in ("counts", "coco", "at_threshold", "recall_by_size", "per_class", "precision_recall"):
        assert b[key] == a[key], key
    assert [m["box"] for m in b["worst_misses"]] == [m["box"] for m in a["worst_misses"]]
    assert "evaluate: 2 photos, 5 objects" in tiled.stdout
    assert "note:" not in tiled.stdout


@pytest.mark.slow
def test_tiles_left_out_by_convert_are_named_and_their_false_positives_not_seen(workspace, tmp_path):
    # by default convert keeps no tile that shows only slivers: b's tile at (0, 128) holds only a
    # quarter of the cyan tag, and the yellow false tag
    run = convert(workspace["root"] / "photos", tmp_path / "tiles", workspace["label_map"],
                  tile_size=256, tile_overlap=128, tile_negative_fraction=1.0)
    done = evaluate(f"--detector={workspace['detector']}", f"--records={run}",
                    f"--output_dir={tmp_path / 'out'}")
    assert done.returncode == 0, done.stderr
    assert "note: 2 of the photos' 12 tiles are not in the records" in done.stdout
    result = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert result["at_threshold"]["false_positives"] == 0
    assert result["at_threshold"]["found"] == 4  # every object is still scored
    assert result["notes"][0].startswith("2 of the photos' 12 tiles")


@pytest.mark.slow
def test_errors_are_one_line_with_the_path_and_status_1(workspace, tmp_path):
    root = workspace["root"]
    empty = tmp_path / "empty_run"
    empty.mkdir()
    broken = export_colour_detector(tmp_path / "broken", outputs=("detection_boxes", "detection_scores"))
    paint_photo(tmp_path / "white", "w.png", [("tag", WHITE, (0, 0, 32, 32))])
    white = convert(tmp_path / "white", tmp_path / "white_run", workspace["label_map"])
    damaged = tmp_path / "damaged_run"
    shutil.copytree(workspace["whole"], damaged)
    record = damaged / "annotations" / "real.record"
    record.write_bytes(record.read_bytes()[:-100])  # the second photo cut short
    cases = [
        ([f"--detector={root / 'nowhere'}", f"--records={workspace['whole']}"],
         f"error: {root / 'nowhere'}: no such folder"),
        ([f"--detector={broken}", f"--records={workspace['whole']}"],
         f"error: {broken}: its serving_default signature lacks the output(s) detection_classes, "
         "num_detections"),
        ([f"--detector={workspace['detector']}", f"--records={empty}"],
         f"error: {empty}: no manifest.json: not the output folder of a finished --mode=convert run"),
        ([f"--detector={workspace['detector']}", f"--records={damaged}"],
         f"error: {record}: entry #1: damaged data (cut short?)"),
        ([f"--detector={workspace['detector']}", f"--records={white}"],
         f"error: {workspace['detector']}: detected class id 7 on w.png, which is not in the label map"),
    ]
    for flags, message in cases:
        done = evaluate(*flags, f"--output_dir={tmp_path / 'out'}")
        assert done.returncode == 1, (flags, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith(message), done.stderr
        assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("manifest, message", [
    (None, "{run}: no manifest.json: not the output folder of a finished --mode=convert run"),
    ({"mode": "generate"}, "{run}: a generate run; --records takes a --mode=convert run of labelled "
                           "real photos"),
    ({"mode": "convert", "records": []}, "{run}: no records (annotations/*.record*) to evaluate"),
    ({"mode": "convert", "records": ["annotations/real.record"]},
     "{run}/annotations/real.record: missing (1 of the run's record files)"),
])
def test_records_that_cannot_be_evaluated_are_one_error_line(tmp_path, manifest, message):
    run = tmp_path / "run"
    run.mkdir()
    if manifest is not None:
        (run / "manifest.json").write_text(json.dumps(manifest))
    done = evaluate(f"--detector={tmp_path / 'export'}", f"--records={run}",
                    f"--output_dir={tmp_path / 'out'}")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.strip().splitlines()[-1] == "error: " + message.format(run=run)
    assert not (tmp_path / "out").exists()


def test_a_tiled_convert_run_records_each_photo_whole_in_its_manifest(tmp_path):
    from spatule_synth.formats.manifest import read_manifest
    label_map = tmp_path / "label_map.pbtxt"
    label_map.write_text("item { id: 1 name: 'tag' }\nitem { id: 2 name: 'dog' }\n")
    paint_photo(tmp_path / "photos", "a.png", PHOTO_A)
    run = convert(tmp_path / "photos", tmp_path / "tiles", label_map, tile_size=256, tile_overlap=128)
    [photo] = read_manifest(run)["photos"]
    assert (os.path.basename(photo["image"]), photo["width"], photo["height"]) == ("a.png", *PHOTO)
    assert [(o["name"], o["box"]) for o in photo["objects"]] == [(n, list(b)) for n, _, b in PHOTO_A]


def test_runs_converted_before_photos_were_recorded_join_the_pieces_of_each_object():
    from spatule_synth.modes.evaluate import _photos_from_tiles
    examples = [{"image": "p.jpg", "tile": [0, 0, 100], "objects": [
                    {"name": "tag", "object_index": 0, "box": [80, 10, 100, 30]}]},
                {"image": "p.jpg", "tile": [60, 0, 100], "objects": [
                    {"name": "tag", "object_index": 0, "box": [20, 10, 50, 30]}]}]
    [photo] = _photos_from_tiles(examples)
    assert (photo["width"], photo["height"]) == (160, 100)
    assert [o["box"] for o in photo["objects"]] == [[80, 10, 110, 30]]


def test_the_numbers_at_the_threshold_count_every_detection_of_a_crowded_photo():
    objects = [box(x * 10, y * 10, x * 10 + 8, y * 10 + 8) for x in range(15) for y in range(10)]  # 150
    truth = Truth(np.array(objects), np.ones(150, np.int64), np.zeros(150, bool))
    found = Detections(objects, np.linspace(0.99, 0.6, 150), np.ones(150, np.int64))
    evaluation = coco_metrics.coco_evaluation({1: truth}, {1: found}, [1])
    counts = coco_metrics.at_threshold(evaluation, 0.5)
    assert (counts["objects"], counts["found"], counts["detections"], counts["false_positives"]) == (150, 150, 150, 0)
    stats = coco_metrics.summary_stats(evaluation)
    assert stats["AR100"] == pytest.approx(100 / 150)  # COCO's own numbers keep their 100 per image
    misses, false = coco_metrics.findings(evaluation, 0.5)
    assert not misses and not false


@pytest.mark.slow
def test_records_and_output_on_urls_give_the_files_of_a_local_evaluation(workspace, tmp_path):
    from spatule_synth.modes.evaluate import EvaluateConfig, run_evaluate
    from test_storage import memory_tree, to_memory
    from test_scale import tree
    records = to_memory(workspace["tiles"], f"memory://evaluate-{os.getpid()}-{tmp_path.name}/tiles")
    url = f"memory://evaluate-{os.getpid()}-{tmp_path.name}/eval"
    run_evaluate(EvaluateConfig(detector=workspace["detector"], records=workspace["tiles"],
                                output_dir=str(tmp_path / "eval")))
    run_evaluate(EvaluateConfig(detector=workspace["detector"], records=records, output_dir=url))
    written, expected = memory_tree(url), tree(tmp_path / "eval")
    assert set(written) == set(expected) and "precision_recall.png" in written
    local_json = (tmp_path / "eval" / "evaluation.json").read_text().replace(workspace["tiles"], "RUN")
    url_json = fsspec.filesystem("memory").cat_file(f"{url}/evaluation.json").decode().replace(records, "RUN")
    assert url_json == local_json
    assert all(written[name] == expected[name] for name in written if name.endswith(".png"))
