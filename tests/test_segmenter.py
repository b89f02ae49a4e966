"""The segmenter (python -m spatule_synth.segmenter train): pairs built to the --mask=model contract
from true masks only, the identity split, the IoU numbers, the command's files and messages, and
the exported model in generate --mask=model. Everything that trains with TensorFlow is marked slow."""

import filecmp
import json
import math
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from spatule_synth.core.boxes import Box
from spatule_synth.core.config import InputsConfig
from spatule_synth.core.masks import MaskModel, context_window
from spatule_synth.core.problems import ProblemLog
from spatule_synth.formats.label_map import LabelMap
from spatule_synth.segmenter.evaluation import iou, method_masks, score_pair, summary, table
from spatule_synth.segmenter.masked_objects import BOX_ONLY, LooseObject, PhotoObject, Tally, masked_objects
from spatule_synth.segmenter.pairs import NO_BACKGROUND, Pair, PairError, build_pairs, pasted_pair, \
    photo_pair, split_pairs
from conftest import background_photos, labelimg_xml, noise_photo, tag_photos

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEGMENTER = [sys.executable, "-m", "spatule_synth.segmenter", "train"]

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def ellipse_alpha(width, height, seed=0):
    """An ellipse touching every side of a ``width`` x ``height`` box, soft edged, with a
    transparent border of 3 px around it."""
    big = np.zeros(((height + 6) * 4, (width + 6) * 4), np.uint8)
    cv2.ellipse(big, ((width + 6) * 2, (height + 6) * 2), (width * 2, height * 2), 0, 0, 360, 255, -1)
    return cv2.resize(big, (width + 6, height + 6), interpolation=cv2.INTER_AREA)


def write_cutouts(root, class_name, count, seed=0, size=(40, 28)):
    """``count`` alpha PNG cutouts ``ROOT/CLASS/NN.png`` (noise RGB, ellipse alpha); their alphas."""
    os.makedirs(root / class_name, exist_ok=True)
    alphas = {}
    for index in range(count):
        width, height = size[0] + 3 * (index % 4), size[1] + 2 * (index % 3)
        alpha = ellipse_alpha(width, height)
        rgb = np.full(alpha.shape + (3,), (230, 200, 40) if class_name == "tag" else (200, 60, 200), np.uint8)
        rgb = np.clip(rgb.astype(int) + noise_photo(alpha.shape[1], alpha.shape[0], seed + index) // 8, 0, 255)
        path = root / class_name / f"{index:02d}.png"
        Image.fromarray(np.dstack([rgb.astype(np.uint8), alpha])).save(path)
        alphas[str(path)] = alpha
    return alphas


def ellipse_photos(folder, count):
    """Dark noise photos, each with two yellow ellipses like the training tags, labelled as boxes."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(3)
    for index in range(count):
        photo = rng.integers(0, 60, (120, 160, 3), dtype=np.uint8)
        objects = []
        for k in range(2):
            width, height = 40 + 3 * k, 28 + 2 * (index % 3)
            alpha = ellipse_alpha(width, height)[3:-3, 3:-3, np.newaxis] / 255.0
            x0, y0 = 15 + 75 * k, 20 + 10 * index
            rgb = np.clip(np.array((230, 200, 40)) + noise_photo(width, height, 100 + 2 * index + k) // 8, 0, 255)
            region = photo[y0:y0 + height, x0:x0 + width]
            photo[y0:y0 + height, x0:x0 + width] = (rgb * alpha + region * (1 - alpha)).astype(np.uint8)
            objects.append(("tag", x0, y0, x0 + width, y0 + height))
        Image.fromarray(photo).save(os.path.join(folder, f"P{index}.png"))
        with open(os.path.join(folder, f"P{index}.xml"), "w", encoding="utf-8") as handle:
            handle.write(labelimg_xml(f"P{index}.png", 160, 120, objects))


def label_map_file(path, names=("tag", "dog")):
    path.write_text("".join(f'item {{\n  name: "{name}"\n  id: {k}\n}}\n' for k, name in enumerate(names, 1)))
    return str(path)


def read_pairs(inputs, names=("tag", "dog"), seed=0):
    problems, tally = ProblemLog(), Tally()
    objects = masked_objects(inputs, LabelMap.from_names(list(names)), problems, tally, seed)
    return build_pairs(objects, tally, problems, seed)


# ---- pairs: the contract's crop, the written truth, only true masks ----

def test_a_photo_pair_is_the_context_window_with_the_true_mask_under_the_box():
    photo = noise_photo(200, 150, 3)
    mask = np.zeros((30, 40), np.uint8)
    mask[5:25, 8:30] = 255
    for box in (Box(50, 40, 90, 70), Box(2.5, 1, 42, 31)):  # the second one's window is clipped
        obj = PhotoObject("p.jpg#0", "tag", "photo:x", photo, box, mask)
        pair = photo_pair(obj)
        x0, y0, x1, y1 = context_window(box.voc_ints(), 200, 150)
        assert np.array_equal(pair.crop, photo[y0:y1, x0:x1])
        assert (pair.box.xmin, pair.box.ymin) == (box.xmin - x0, box.ymin - y0)
        bx0, by0, bx1, by1 = pair.int_box
        assert np.array_equal(pair.truth[by0:by1, bx0:bx1], mask >= 128)
        assert pair.truth.sum() == (mask >= 128).sum()  # nothing outside the box
    margin = max(8, round(0.15 * 40))
    assert photo_pair(PhotoObject("p", "tag", "i", photo, Box(50, 40, 90, 70), mask)).crop.shape == (30 + 2 * margin, 40 + 2 * margin, 3)


def test_a_loose_object_is_pasted_in_the_middle_of_a_background_window():
    alpha = ellipse_alpha(40, 20)[3:-3, 3:-3]
    rgb = np.full(alpha.shape + (3,), 250, np.uint8)
    background = np.full((60, 50, 3), (10, 20, 30), np.uint8)  # smaller than the window: enlarged
    pair = pasted_pair(LooseObject("c.png#0", "tag", "photo:c", rgb, alpha), background, np.random.default_rng(0))
    margin = 8
    assert pair.crop.shape == (20 + 2 * margin, 40 + 2 * margin, 3)
    assert pair.box == Box(margin, margin, margin + 40, margin + 20)
    assert context_window(pair.int_box, pair.crop.shape[1], pair.crop.shape[0]) == (0, 0, 56, 36)
    inside = np.zeros(pair.truth.shape, bool)
    inside[margin:margin + 20, margin:margin + 40] = alpha >= 128
    assert np.array_equal(pair.truth, inside)
    assert (pair.crop[pair.truth & (np.pad(alpha, margin) == 255)] == 250).all()
    assert (pair.crop[:margin] == (10, 20, 30)).all() and (pair.crop[:, :margin] == (10, 20, 30)).all()


def test_alpha_cutouts_become_pairs_that_match_their_files_and_box_labels_are_counted_out(tmp_path):
    alphas = write_cutouts(tmp_path / "cutouts", "tag", 5)
    tag_photos(tmp_path / "labelled", 3)  # 6 box-only tags, and not decoded
    background_photos(tmp_path / "backgrounds", 2)
    inputs = InputsConfig(input_dirs=(str(tmp_path / "labelled"),), cutout_dirs=(str(tmp_path / "cutouts"),),
                          background_dirs=(str(tmp_path / "backgrounds"),))
    pairs, left_out = read_pairs(inputs)
    assert left_out == {BOX_ONLY: 6}
    assert [p.name for p in pairs] == [f"{path}#0" for path in alphas]
    for pair in pairs:
        alpha = alphas[pair.name[:-2]][3:-3, 3:-3]  # the tight box of alpha >= 128
        x0, y0, x1, y1 = pair.int_box
        assert pair.pasted and (y1 - y0, x1 - x0) == alpha.shape
        assert np.array_equal(pair.truth[y0:y1, x0:x1], alpha >= 128)
        assert pair.truth.sum() == (alpha >= 128).sum()
    again, _ = read_pairs(inputs)
    assert all(np.array_equal(a.crop, b.crop) for a, b in zip(pairs, again))  # seeded


def test_loose_objects_without_a_background_are_left_out_with_the_reason(tmp_path):
    write_cutouts(tmp_path / "cutouts", "tag", 3)
    pairs, left_out = read_pairs(InputsConfig(cutout_dirs=(str(tmp_path / "cutouts"),)))
    assert pairs == [] and left_out == {NO_BACKGROUND: 3}


def test_the_split_is_by_identity_and_unseen_classes_are_never_trained():
    crop, truth = np.zeros((20, 20, 3), np.uint8), np.zeros((20, 20), bool)
    pairs = [Pair(f"o{k}", "dog" if k % 7 == 0 else "tag", f"photo:{k // 3}", crop, Box(2, 2, 18, 18), truth, False)
             for k in range(60)]
    split = split_pairs(pairs, 0.3, ("dog",), seed=0)
    train_ids, held_ids = {p.identity for p in split.train}, {p.identity for p in split.held_out}
    assert train_ids and held_ids and not train_ids & held_ids
    assert {p.name for p in split.unseen} == {p.name for p in pairs if p.class_name == "dog"}
    assert all(p.class_name == "tag" for p in split.train + split.held_out)
    assert len(split.train) + len(split.held_out) + len(split.unseen) == 60
    fewer = split_pairs(pairs[:30], 0.3, ("dog",), seed=0)  # an identity's side depends on itself only
    assert {p.identity for p in fewer.held_out} == held_ids & {p.identity for p in pairs[:30]}
    assert not split_pairs(pairs, 0.0, (), seed=0).held_out
    with pytest.raises(PairError, match=r"none of the 1 identities is held out .*--seg_holdout_fraction=0"):
        split_pairs(pairs[1:3], 0.01, (), seed=0)
    with pytest.raises(PairError, match="no training pair"):
        split_pairs(pairs[:1], 0.3, ("dog",), seed=0)


# ---- the numbers ----

class FakeModel:
    """A MaskModel whose probabilities are given: the truth at the model's size, or nothing."""

    @staticmethod
    def of(probabilities):
        return MaskModel("fake", "keras", probabilities.shape, lambda batch: probabilities[None, :, :, None])


def test_iou_numbers_on_a_known_shape():
    alpha = ellipse_alpha(120, 80)[3:-3, 3:-3]
    rng = np.random.default_rng(1)
    background = rng.integers(0, 80, (200, 200, 3), dtype=np.uint8)
    rgb = np.full(alpha.shape + (3,), (240, 60, 60), np.uint8)
    pair = pasted_pair(LooseObject("e", "tag", "e", rgb, alpha), background, rng)
    x0, y0, x1, y1 = pair.int_box
    perfect = FakeModel.of(cv2.resize(pair.truth.astype(np.float32), (64, 64), interpolation=cv2.INTER_AREA))
    scores = score_pair(pair, method_masks(pair, perfect))
    assert scores.iou["box"] == pytest.approx(math.pi / 4, abs=0.01)  # an ellipse in its box
    assert scores.iou["model"] > 0.95 and scores.fallback["model"] is None
    assert scores.iou["grabcut"] > 0.9  # a red ellipse on dark noise
    empty = score_pair(pair, method_masks(pair, FakeModel.of(np.zeros((64, 64), np.float32))))
    assert empty.iou["model"] == 0.0 and empty.fallback["model"] == "found no object in the box"
    assert empty.iou_as_used["model"] == pytest.approx(math.pi / 4, abs=0.01)  # generate pastes the box
    assert iou(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 1.0
    result = summary([scores, empty])
    assert result["objects"] == 2 and result["model"]["fallback_share"] == 0.5
    text = table({"held-out": result, "unseen classes": None})
    assert text.splitlines()[0].split() == ["mask", "IoU", "on", "the", "same", "boxes", "held-out:", "2", "objects",
                                            "unseen", "classes:", "0", "objects"]
    assert text.splitlines()[4].split()[:3] == ["whole", "box", f"{result['box']['iou']:.3f}"]
    assert summary([]) is None


# ---- the command: messages ----

def run_segmenter(*args):
    return subprocess.run(SEGMENTER + list(args), capture_output=True, text=True, cwd=REPO)


def test_flags_the_command_does_not_read_are_refused():
    done = run_segmenter("--output=/tmp/unused", "--input_dirs=spatule_synth/demo_data/labelled", "--mask=grabcut")
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: --mask not used by segmenter train (see python -m "
                                   "spatule_synth.segmenter --help)")


def test_inputs_without_a_true_mask_are_one_error_line(tmp_path):
    tag_photos(tmp_path / "labelled", 2)
    done = run_segmenter(f"--output={tmp_path / 'model'}", f"--input_dirs={tmp_path / 'labelled'}")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: no object with a true mask in the inputs, left out: 4 without a true mask (box-only "
                      "labels: labelImg, YOLO, COCO bbox). The segmenter learns from COCO polygons or RLE (--coco_json), "
                      "VOC segmentation (--voc_seg_dirs), alpha cutouts (--cutout_dirs) or rendered tags "
                      "(--rendered_tags=N); a box, or GrabCut's guess, is never training truth"]
    assert "Traceback" not in done.stderr and not (tmp_path / "model").exists()


def test_an_unfinished_model_folder_is_refused_with_what_to_do(tmp_path):
    folder = tmp_path / "model"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "history.json").write_text(json.dumps([{"epoch": 1}, {"epoch": 2}]))
    write_cutouts(tmp_path / "cutouts", "tag", 2)
    done = run_segmenter(f"--output={folder}", f"--cutout_dirs={tmp_path / 'cutouts'}")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {folder} holds an unfinished training (2 epochs saved, no segmenter.json): pass --resume "
        "to continue it or --overwrite to start again")
    (folder / "notes.txt").write_text("mine")
    done = run_segmenter(f"--output={folder}", f"--cutout_dirs={tmp_path / 'cutouts'}", "--overwrite")
    assert done.returncode == 1 and "holds files that are not a segmenter's" in done.stderr
    assert (folder / "notes.txt").exists()
    from spatule_synth.core.masks import MaskModelError, load_mask_model
    with pytest.raises(MaskModelError, match="saved_model: no such mask model file or SavedModel folder"):
        load_mask_model(str(folder / "saved_model"))  # what generate --mask=model says of it


# ---- training (TensorFlow) ----

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """2 epochs at 32 px on 12 tag cutouts (3 held out by identity with seed 1) and 4 'dog'
    cutouts kept out as an unseen class, pasted on 3 backgrounds."""
    root = tmp_path_factory.mktemp("segmenter")
    write_cutouts(root / "cutouts", "tag", 12)
    write_cutouts(root / "cutouts", "dog", 4, seed=50, size=(30, 30))
    background_photos(root / "backgrounds", 3, size=(160, 120))
    done = run_segmenter(f"--output={root / 'model'}", f"--cutout_dirs={root / 'cutouts'}",
                         f"--background_dirs={root / 'backgrounds'}", f"--label_map={label_map_file(root / 'map.pbtxt')}",
                         "--seg_size=32", "--seg_epochs=2", "--seg_batch_size=4", "--seg_unseen_classes=dog",
                         "--seg_holdout_fraction=0.25", "--seed=1")
    assert done.returncode == 0, done.stderr[-3000:]
    return root, done.stdout


@pytest.mark.slow
def test_training_writes_the_model_its_evaluation_and_says_which_path_to_use(trained):
    root, stdout = trained
    model = root / "model"
    assert sorted(os.listdir(model)) == ["checkpoints", "evaluation_sheet.png", "saved_model", "segmenter.json"]
    info = json.loads((model / "segmenter.json").read_text())
    counts = info["counts"]
    assert counts["objects_with_true_mask"] == 16 and counts["by_class"] == {"dog": 4, "tag": 12}
    assert counts["unseen"] == 4 and counts["train"] + counts["held_out"] == 12 and counts["held_out"] > 0
    assert counts["left_out"] == {}
    assert [entry["epoch"] for entry in info["history"]] == [1, 2]
    assert all(0 <= entry["held_out_iou"] <= 1 for entry in info["history"])
    evaluation = info["evaluation"]
    assert evaluation["held-out"]["objects"] == counts["held_out"] and evaluation["unseen classes"]["objects"] == 4
    for section in evaluation.values():
        assert set(section) == {"objects", "model", "grabcut", "box"}
        assert 0.7 < section["box"]["iou"] < 0.85  # ellipses in their boxes: about pi / 4
    assert len(info["objects"]) == counts["held_out"] + 4
    sheet = cv2.imread(str(model / "evaluation_sheet.png"))
    rows = min(6, counts["held_out"]) + 4
    assert sheet.shape[0] == 24 + 112 * rows
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("objects with a true mask: 16 (dog: 4, tag: 12; 16 pasted on object-free photos); "
                               "left out: none")
    assert lines[1].endswith("unseen classes: 4 objects of dog")
    assert any(line.startswith("model (this segmenter)") for line in lines)
    assert lines[-1] == f"model: --mask=model --mask_model={model / 'saved_model'}"


@pytest.mark.slow
def test_the_exported_model_follows_the_mask_model_contract(trained):
    from spatule_synth.core import masks
    from spatule_synth.core.masks import load_mask_model, refine_mask
    from spatule_synth.segmenter.evaluation import model_foreground
    root, _ = trained
    model = load_mask_model(str(root / "model" / "saved_model"))
    assert model.kind == "saved_model" and model.input_size == (32, 32)
    probabilities = model.probabilities(np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32))
    assert probabilities.shape == (32, 32) and 0 <= probabilities.min() and probabilities.max() <= 1
    photo = noise_photo(120, 90, 4)
    box = Box(30, 20, 80, 60)
    refined = refine_mask(photo, box, "model", model)
    x0, y0, x1, y1 = context_window(box.voc_ints(), 120, 90)
    crop = photo[y0:y1, x0:x1]
    # the evaluation asks the model exactly what generate asks it (same crop, resize and threshold)
    assert np.array_equal(model_foreground(model, crop), masks._model_foreground(model, crop))
    own = model_foreground(model, crop)[20 - y0:60 - y0, 30 - x0:80 - x0]
    if not refined.used_fallback:  # and when generate keeps the model's mask, that is what it pastes
        assert np.array_equal(refined.mask >= 128, own)


@pytest.mark.slow
def test_generate_with_the_trained_model_gives_the_same_bytes_for_any_workers(trained, tmp_path, monkeypatch):
    from spatule_synth.core.config import GenerateConfig
    from spatule_synth.generate.run import run_generate
    root, _ = trained
    monkeypatch.setenv("SPATULE_SYNTH_MASK_CACHE", "off")  # each run calls the model itself
    ellipse_photos(tmp_path / "labelled", 4)  # labelled as boxes; masks from the model
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        run_generate(GenerateConfig.from_settings(
            input_dirs=(str(tmp_path / "labelled"),), background_dirs=(str(root / "backgrounds"),),
            output_dir=str(out), num_images=8, canvas_size=96, eval_fraction=0.25, seed=2, num_workers=workers,
            mask="model", mask_model=str(root / "model" / "saved_model"), instance_masks=True, report=False,
            blend=("paste",)))  # a 2-epoch model's masks are ragged: seamless cloning washes them out
        outputs.append(out)
    compared = 0
    for folder, _, files in os.walk(outputs[0]):
        for name in files:
            path = os.path.join(folder, name)
            if name != "manifest.json" and ".progress" not in path:
                assert filecmp.cmp(path, os.path.join(outputs[1], os.path.relpath(path, outputs[0])), shallow=False), path
                compared += 1
    assert compared > 20
    manifest = json.loads((outputs[0] / "manifest.json").read_text())
    assert sum(len(entry["objects"]) for entry in manifest["images"]["train"]) >= 6
    # the model's masks, not the whole-box fallback, reached the images: 8 boxes, few fallbacks,
    # and pasted objects whose instance masks are not rectangles
    assert manifest["problem_counts"].get("mask_fallback", 0) < 4
    shaped = 0
    for entry in manifest["images"]["train"]:
        plane = np.asarray(Image.open(outputs[0] / "masks" / "train" / f"{entry['name']}.png"))
        for index, obj in enumerate(entry["objects"], start=1):
            x0, y0, x1, y1 = (int(round(v)) for v in obj["box"])
            shaped += not (plane[y0:y1, x0:x1] == index).all()
    assert shaped >= 3
    # a finished run's instance masks are true masks for the next training: its COCO file
    pairs, left_out = read_pairs(InputsConfig(coco_json=(str(outputs[0] / "annotations" / "train_coco.json"),),
                                              coco_image_dirs=(str(outputs[0] / "images" / "train"),)), names=("tag",))
    assert pairs and not left_out and not any(p.pasted for p in pairs)


@pytest.mark.slow
def test_resume_continues_and_a_finished_folder_is_not_trained_over(trained, tmp_path):
    root, _ = trained
    shutil.copytree(root / "model", tmp_path / "model")
    flags = [f"--output={tmp_path / 'model'}", f"--cutout_dirs={root / 'cutouts'}",
             f"--background_dirs={root / 'backgrounds'}", f"--label_map={root / 'map.pbtxt'}", "--seg_size=32",
             "--seg_batch_size=4", "--seg_unseen_classes=dog", "--seg_holdout_fraction=0.25", "--seed=1"]
    again = run_segmenter(*flags, "--seg_epochs=2")
    assert again.returncode == 1 and again.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'model'} holds a trained segmenter: pass --overwrite to train again, or --resume "
        "with more --seg_epochs to continue it")
    changed = run_segmenter(*flags[:-1], "--seed=2", "--seg_epochs=3", "--resume")
    assert changed.returncode == 1 and "--resume with other settings or inputs" in changed.stderr
    assert "seed 1 -> 2" in changed.stderr
    done = run_segmenter(*flags, "--seg_epochs=3", "--resume")
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads((tmp_path / "model" / "segmenter.json").read_text())
    assert [entry["epoch"] for entry in info["history"]] == [1, 2, 3]


@pytest.mark.slow
def test_resume_with_fewer_epochs_than_trained_is_refused(trained, tmp_path):
    root, _ = trained
    shutil.copytree(root / "model", tmp_path / "model")
    done = run_segmenter(f"--output={tmp_path / 'model'}", f"--cutout_dirs={root / 'cutouts'}",
                         f"--background_dirs={root / 'backgrounds'}", f"--label_map={root / 'map.pbtxt'}",
                         "--seg_size=32", "--seg_epochs=1", "--seg_batch_size=4", "--seg_unseen_classes=dog",
                         "--seg_holdout_fraction=0.25", "--seed=1", "--resume")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'model'}: 2 epochs are already trained, more than --seg_epochs=1; pass "
        "--seg_epochs=2 or more to go on, or --overwrite to start again")


def test_a_negative_seed_and_a_background_photo_with_objects_are_named(tmp_path):
    done = run_segmenter(f"--output={tmp_path / 'model'}", f"--cutout_dirs={tmp_path}", "--seed=-1")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: --seed must be >= 0 for segmenter train, got -1")
    tag_photos(tmp_path / "backgrounds", 1)  # photos whose XML lists objects: no background
    background_photos(tmp_path / "backgrounds", 1)
    tally = Tally()
    list(masked_objects(InputsConfig(background_dirs=(str(tmp_path / "backgrounds"),), rendered_tags=1),
                        LabelMap.from_names(["tag"]), ProblemLog(), tally, 0))
    assert [os.path.basename(p) for p in tally.backgrounds] == ["BG00.jpg"]
