"""Rendered tags (--rendered_tags): glyph sheets, exact masks and boxes, codes sealed in one split,
the reading dataset (--tag_crops), and the same bytes for any number of workers."""

import csv
import filecmp
import json
import os
import re

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from spatule_synth.core.config import GenerateConfig, InputsConfig, PlacementConfig, SplitConfig
from spatule_synth.core.problems import ProblemLog
from spatule_synth.formats.label_map import LabelMap
from spatule_synth.formats.labels_csv import csv_row, read_labels_csv
from spatule_synth.generate.plan import SplitPool, plan_sample
from spatule_synth.generate.render import render
from spatule_synth.generate.rendered_source import draw_codes, rendered_cutouts
from spatule_synth.generate.run import run_generate
from spatule_synth.generate.sources import Background, SourceError, read_sources
from spatule_synth.tags.glyphs import FontGlyphs, GlyphSourceError, SheetGlyphs, cut_glyph_sheet
from spatule_synth.tags.render import TagStyle, parse_tag_style, render_tag
from conftest import background_photos, tag_photos

LABELS = LabelMap.from_names(["tag"])
MAGENTA = (255, 0, 255)  # a colour no rendered tag pixel has


def sheet_of(alphabet, size=40, gap=12, only=None):
    """The alphabet drawn with Pillow's bundled font in one row, black on white (``only``: the
    same sheet with just that character drawn)."""
    font = ImageFont.load_default(size=size)
    widths = [font.getbbox(c)[2] - font.getbbox(c)[0] for c in alphabet]
    image = Image.new("RGB", (sum(widths) + gap * (len(alphabet) + 1), 2 * size), "white")
    draw, x = ImageDraw.Draw(image), gap
    for char, width in zip(alphabet, widths):
        if only in (None, char):
            draw.text((x - font.getbbox(char)[0], size // 3), char, fill="black", font=font)
        x += width + gap
    return np.asarray(image), font


def test_a_glyph_sheet_is_cut_into_its_characters_in_order():
    alphabet = "ACFH7K3L"
    pixels, _ = sheet_of(alphabet)
    glyphs = cut_glyph_sheet(pixels, alphabet)
    assert len(glyphs) == len(alphabet)
    gray = pixels[..., 0]
    threshold, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    rows = np.flatnonzero((gray <= threshold).any(axis=1))
    for char, glyph in zip(alphabet, glyphs):  # glyph i is the sheet's ink where character i is
        alone = sheet_of(alphabet, only=char)[0][..., 0]
        columns = np.flatnonzero((alone <= threshold).any(axis=0))
        assert glyph.shape == (rows[-1] + 1 - rows[0], columns[-1] + 1 - columns[0]), char
        expected = 1.0 - alone[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1] / 255.0
        assert np.abs(glyph - expected).max() < 0.02, char


def test_a_glyph_sheet_with_the_wrong_number_of_characters_is_refused_by_name():
    pixels, _ = sheet_of("ACF")
    with pytest.raises(GlyphSourceError, match=r"^sheet.png: found 3 characters \(runs of ink columns "
                                              r"separated by blank columns\), but the alphabet 'ACFH' has 4"):
        cut_glyph_sheet(pixels, "ACFH", "sheet.png")


def test_a_glyph_sheet_draws_codes(tmp_path):
    pixels, _ = sheet_of("ACF7")
    Image.fromarray(pixels).save(tmp_path / "sheet.png")
    glyphs = SheetGlyphs.from_file(str(tmp_path / "sheet.png"), "ACF7")
    line = glyphs.line("7CA", 30)
    assert line.shape[0] > 10 and line.max() > 0.9 and line[:2].max() == 0 and line[:, :2].max() == 0
    tag = render_tag(np.random.default_rng(1), "7CA", glyphs, TagStyle(width=(24, 24)))
    assert tag.mask.any()


def test_a_rendered_tags_mask_box_is_its_drawn_pixels_extent():
    """Pasted onto magenta, the pixels a rendered tag changes are exactly its box: the box comes from
    the written pixels, for every blend that paints the mask as is; no blend paints outside it."""
    inputs = InputsConfig(rendered_tags=12, tag_style=TagStyle(width=(14.0, 30.0), tilt=(-60.0, 60.0)))
    cutouts = rendered_cutouts(inputs, LABELS, 3, [])
    assert len({c.code for c in cutouts}) == 12
    for cutout in cutouts:
        ys, xs = np.nonzero(cutout.alpha)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == cutout.object_box.voc_ints()
    pool = SplitPool("train", tuple(cutouts), (Background("bg", 160, 160),))
    for blend in ("paste", "alpha", "feather", "seamless_normal"):
        config = PlacementConfig(canvas_size=160, objects_per_image=(1, 1), blend=(blend,), min_visibility=0)
        for index in range(12):
            spec = plan_sample(config, 0, pool, index)
            canvas = np.empty((160, 160, 3), np.uint8)
            canvas[:] = MAGENTA
            sample = render(spec, pool, canvas)
            [obj] = sample.objects
            changed = np.any(canvas != MAGENTA, axis=-1)
            ys, xs = np.nonzero(changed)
            extent = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            x0, y0, x1, y1 = obj.box.voc_ints()
            if blend == "paste":
                assert extent == (x0, y0, x1, y1), (blend, index)
            assert x0 <= extent[0] and y0 <= extent[1] and extent[2] <= x1 and extent[3] <= y1, (blend, index)


def test_codes_are_distinct_and_reproducible():
    codes = draw_codes(50, "ACF7", 3, seed=5)
    assert len(set(codes)) == 50 and codes == draw_codes(50, "ACF7", 3, seed=5)
    assert all(len(c) == 3 and set(c) <= set("ACF7") for c in codes)
    assert draw_codes(50, "ACF7", 3, seed=6) != codes


def config_for(inputs, out, **options):
    settings = dict(input_dirs=(str(inputs / "labelled"),), background_dirs=(str(inputs / "backgrounds"),),
                    output_dir=str(out), num_images=40, canvas_size=128, eval_fraction=0.3,
                    num_workers=1, seed=2, report=False, rendered_tags=24, tag_crops=True,
                    identity="regex", identity_regex=r"^(TAG\d\d)")
    settings.update(options)
    return GenerateConfig.from_settings(**settings)


@pytest.fixture
def small_inputs(tmp_path):
    tag_photos(tmp_path / "labelled", 4)
    background_photos(tmp_path / "backgrounds", 4, size=(260, 200))
    return tmp_path


def test_rendered_codes_never_cross_the_split_and_crops_carry_their_codes(small_inputs, tmp_path):
    out = tmp_path / "out"
    run_generate(config_for(small_inputs, out))
    manifest = json.loads((out / "manifest.json").read_text())
    codes = {split: {i[len("rendered:"):] for i in manifest["splits"][split]["cutouts"] if i.startswith("rendered:")}
             for split in ("train", "eval")}
    assert codes["train"] and codes["eval"] and not codes["train"] & codes["eval"]
    assert len(codes["train"] | codes["eval"]) == 24
    for split in ("train", "eval"):  # each code is its own identity, on one side
        identities = set(manifest["splits"][split]["identities"])
        assert codes[split] <= identities and not codes[split] & set(manifest["splits"][
            "eval" if split == "train" else "train"]["identities"])
    rows = read_labels_csv(str(out / "tag_crops" / "labels.csv"))
    assert rows and len(rows) == len({r[0] for r in rows})
    objects = {}
    for split in ("train", "eval"):
        for entry in manifest["images"][split]:
            for index, obj in enumerate(entry["objects"]):
                objects[f"{split}/{entry['name']}_{index}.png"] = (split, obj, entry["name"])
    real = 0
    for file, code, split in rows:
        obj_split, obj, name = objects[file]
        assert obj_split == split
        cutout = obj["cutout"]
        if cutout.startswith("rendered:"):
            assert code == cutout[len("rendered:"):]
        else:  # a real tag: its --identity_regex name
            assert code == os.path.basename(cutout)[:5]
            real += 1
        crop = np.asarray(Image.open(out / "tag_crops" / file))
        written = np.asarray(Image.open(out / "images" / split / f"{name}.jpg"))
        x0, y0, x1, y1 = (int(round(v)) for v in obj["box"])
        region = written[max(y0 - 3, 0):y1 + 3, max(x0 - 3, 0):x1 + 3]
        assert any(np.array_equal(crop, np.rot90(region, k)) for k in range(4)), file
    assert real > 0 and real < len(rows)
    with open(out / "tag_crops" / "labels.csv", newline="") as handle:
        assert next(csv.reader(handle)) == ["file", "code", "split"]
    # rendered tags are no photos: verify audits the real cutouts only, convert --split_from works
    from spatule_synth.modes.split_from import read_run_split
    from spatule_synth.modes.verify import verify_output
    report = verify_output(str(out))
    assert not report.failed and "gone or unreadable" not in report.table()
    run_split = read_run_split(str(out))
    assert {run_split.train_sources[f"rendered:{c}"]["origin"] for c in codes["train"]} == {"rendered"}
    assert all(not path.startswith("rendered:") for path in run_split.train_photos.values())


def test_rendered_tags_give_the_same_bytes_with_one_and_two_workers(small_inputs, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run_generate(config_for(small_inputs, one, num_images=24, rendered_fraction=0.5))
    run_generate(config_for(small_inputs, two, num_images=24, rendered_fraction=0.5, num_workers=2))
    for folder, _, files in os.walk(one):
        for name in files:
            path = os.path.join(folder, name)
            twin = os.path.join(two, os.path.relpath(path, one))
            if name == "manifest.json":
                a, b = (json.loads(open(p).read()) for p in (path, twin))
                a["config"].pop("output_dir"), b["config"].pop("output_dir")
                for m in (a, b):
                    for split in m["splits"].values():
                        split["records"] = [os.path.basename(r) for r in split["records"]]
                assert a == b
            else:
                assert filecmp.cmp(path, twin, shallow=False), path


def test_rendered_fraction_is_the_share_of_labelled_placements(small_inputs):
    inputs = InputsConfig(input_dirs=(str(small_inputs / "labelled"),),
                          background_dirs=(str(small_inputs / "backgrounds"),), rendered_tags=40)
    sources = read_sources(inputs, SplitConfig(), PlacementConfig(canvas_size=128), LABELS, ProblemLog(), 1, 0)
    pool = SplitPool("train", sources.cutouts, sources.backgrounds)
    for fraction in (0.0, 0.3, 1.0):
        config = PlacementConfig(canvas_size=128, objects_per_image=(1, 1), rendered_fraction=fraction)
        origins = [pool.cutouts[plan_sample(config, 0, pool, i).placements[0].cutout].origin for i in range(300)]
        share = origins.count("rendered") / len(origins)
        assert abs(share - fraction) <= 0.07, (fraction, share)


def test_a_tag_class_missing_from_the_label_map_stops_the_run(small_inputs, tmp_path):
    with pytest.raises(SourceError, match=r"^--tag_class='ring' is not a class of the label map \(tag\); "
                                          "rendered tags need one$"):
        run_generate(config_for(small_inputs, tmp_path / "out", tag_class="ring"))


@pytest.mark.parametrize("text, message", [
    ("size=3", "--tag_style: 'size=3' is not key=value with a key among width, stacked"),
    ("width=4:20", "--tag_style: width (ring diameter) must be at least 6 px, got '4:20'"),
    ("stacked=2", "--tag_style: stacked is a probability in [0, 1], got '2'"),
    ("jpeg=50:120", "--tag_style: jpeg quality must lie in [1, 100], got '50:120'"),
    ("tilt=20:-20", "--tag_style: tilt='20:-20' must be v or lo:hi with lo <= hi"),
])
def test_bad_tag_styles_are_refused_by_name(text, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        parse_tag_style(text)


def test_tag_style_ranges_are_parsed():
    style = parse_tag_style("width=20:40,tilt=-90:90,stacked=0.5,noise=3")
    assert style.width == (20.0, 40.0) and style.tilt == (-90.0, 90.0) and style.stacked == 0.5
    assert style.noise == (3.0, 3.0) and style.jpeg == TagStyle().jpeg


def test_labels_csv_round_trip(tmp_path):
    rows = [("train/a_0.png", "A7,K2", "train"), ('eval/b "1".png', "9FHC", "eval")]
    path = tmp_path / "labels.csv"
    path.write_bytes(csv_row(("file", "code", "split")) + b"".join(csv_row(r) for r in rows))
    assert read_labels_csv(str(path)) == rows
    path.write_bytes(csv_row(("name", "code")))
    with pytest.raises(ValueError, match="not a labels.csv"):
        read_labels_csv(str(path))


def test_a_truetype_font_draws_codes_and_a_bad_one_is_refused(tmp_path):
    import matplotlib
    font = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans-Bold.ttf")
    glyphs = FontGlyphs(font)
    line = glyphs.line("A7K2", 30)
    assert line.max() > 0.9 and line.shape[1] > 2 * line.shape[0]
    assert not np.array_equal(line, FontGlyphs().line("A7K2", 30))  # not Pillow's own font
    assert render_tag(np.random.default_rng(0), "A7K2", glyphs, TagStyle(width=(24, 24))).mask.any()
    (tmp_path / "font.ttf").write_bytes(b"not a font")
    with pytest.raises(GlyphSourceError, match=r"font.ttf: not a font Pillow can read"):
        FontGlyphs(str(tmp_path / "font.ttf"))


def test_crops_undo_the_pastes_rotation_and_leave_out_mirrored_and_hidden_tags(small_inputs, tmp_path):
    from spatule_synth.core.augment import parse_ranges
    out = tmp_path / "out"
    run_generate(config_for(small_inputs, out, identity="image", identity_regex="", rendered_fraction=1.0,
                            object_augment=parse_ranges("rotate=90:90,flip=hv", "object")))
    manifest = json.loads((out / "manifest.json").read_text())
    inputs = InputsConfig(input_dirs=(str(small_inputs / "labelled"),),
                          background_dirs=(str(small_inputs / "backgrounds"),), rendered_tags=24)
    sources = read_sources(inputs, SplitConfig(), PlacementConfig(canvas_size=128), LABELS, ProblemLog(), 1, 2)
    turns = {c.code: c.upright_turns for c in sources.cutouts if c.origin == "rendered"}
    assert len(turns) == 24
    written, skipped = 0, 0
    for split in ("train", "eval"):
        for entry in manifest["images"][split]:
            crops = {c["file"]: c["code"] for c in entry.get("tag_crops", [])}
            for index, (obj, placement) in enumerate(zip(entry["objects"], entry["placements"])):
                file = f"{split}/{entry['name']}_{index}.png"
                augment = placement.get("augment", {})
                if augment.get("flip_h") != augment.get("flip_v") or obj["truncated"]:
                    assert file not in crops, file  # mirrored or cut: no crop
                    skipped += 1
                    continue
                if file not in crops:
                    continue  # partly hidden by a later paste
                code = obj["cutout"][len("rendered:"):]
                both = augment.get("flip_h") and augment.get("flip_v")
                expected = (turns[code] + 1 + (2 if both else 0)) % 4  # + a quarter turn for rotate=90
                crop = np.asarray(Image.open(out / "tag_crops" / file))
                image = np.asarray(Image.open(out / "images" / split / f"{entry['name']}.jpg"))
                x0, y0, x1, y1 = (int(round(v)) for v in obj["box"])
                region = image[max(y0 - 3, 0):y1 + 3, max(x0 - 3, 0):x1 + 3]
                assert np.array_equal(crop, np.rot90(region, expected)), file
                written += 1
    assert written > 5 and skipped > 0
