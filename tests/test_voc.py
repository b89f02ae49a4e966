import os

import pytest
from lxml import etree

from spatule_synth.core.boxes import Box
from spatule_synth.formats.voc import VocAnnotation, VocFormatError, VocObject, parse_voc, read_voc, voc_bytes, \
    write_voc
from conftest import QUIRKS, QUIRK_TAG

PHOTOS = os.path.join(QUIRKS, "photos")


def sample_annotation(**changes):
    fields = dict(
        filename="IMAG0488 (2).JPG", width=3264, height=2448, depth=3, folder="train",
        path="/data/IMAG0488 (2).JPG", verified=True,
        objects=(VocObject("tag", Box(100, 200, 180, 240)),
                 VocObject("tag", Box(0, 0, 3264, 2448), pose="Left", truncated=True, difficult=True)))
    fields.update(changes)
    return VocAnnotation(**fields)


def test_round_trip_read_of_write_is_identity(tmp_path):
    for annotation in (sample_annotation(), sample_annotation(objects=(), path=None, verified=False)):
        path = str(tmp_path / "a.xml")
        write_voc(annotation, path)
        assert read_voc(path) == annotation


def recursive_parse_xml_to_dict(xml):
    """The OD API's object_detection/utils/dataset_util.py parser, as create_pascal_tf_record uses it."""
    if not len(xml):
        return {xml.tag: xml.text}
    result = {}
    for child in xml:
        child_result = recursive_parse_xml_to_dict(child)
        if child.tag != "object":
            result[child.tag] = child_result[child.tag]
        else:
            result.setdefault(child.tag, []).append(child_result[child.tag])
    return {xml.tag: result}


def test_written_xml_has_every_field_the_od_api_parser_reads():
    data = recursive_parse_xml_to_dict(etree.fromstring(voc_bytes(sample_annotation())))["annotation"]
    assert data["folder"] == "train" and data["filename"] == "IMAG0488 (2).JPG"
    assert (data["size"]["width"], data["size"]["height"]) == ("3264", "2448")
    first = data["object"][0]
    assert {k: first[k] for k in ("name", "pose", "truncated", "difficult")} == {
        "name": "tag", "pose": "Unspecified", "truncated": "0", "difficult": "0"}
    assert first["bndbox"] == {"xmin": "100", "ymin": "200", "xmax": "180", "ymax": "240"}
    assert int(data["object"][1]["truncated"]) == 1


def test_written_xml_is_byte_for_byte_labelimg_layout():
    with open(os.path.join(PHOTOS, "IMAG0488 (2).xml"), "rb") as handle:
        labelimg_file = handle.read()
    annotation = read_voc(os.path.join(PHOTOS, "IMAG0488 (2).xml"))
    assert voc_bytes(annotation) == labelimg_file


def test_labelimg_quirks_are_read():
    annotation = read_voc(os.path.join(PHOTOS, "IMAG0488 (2).xml"))
    assert annotation.verified and annotation.folder == "photos_2023"
    assert annotation.path.startswith("C:\\Users\\marie")
    assert annotation.filename == "IMAG0488 (2).JPG"
    assert annotation.objects == (VocObject("tag", Box(*QUIRK_TAG)),)


def test_bom_declaration_any_child_order_and_float_coordinates():
    annotation = read_voc(os.path.join(PHOTOS, "IMAG0489.xml"))
    assert (annotation.width, annotation.height) == (320, 240)
    assert annotation.objects == (VocObject("tag", Box(99.6, 60, 160, 90)),)
    assert not annotation.verified and annotation.path is None


def test_background_xml_without_object():
    annotation = read_voc(os.path.join(PHOTOS, "IMAG0420.xml"))
    assert annotation.objects == () and annotation.filename == "IMAG0420.JPG"


def test_latin1_encoding_declaration_is_honoured():
    text = '<?xml version="1.0" encoding="ISO-8859-1"?><annotation><filename>hér.jpg</filename></annotation>'
    assert parse_voc(text.encode("latin-1")).filename == "hér.jpg"


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"<annotation><object>", "malformed XML"),
    (b"<html></html>", "root element is <html>, expected <annotation>"),
])
def test_unreadable_files_raise_with_the_file_name(tmp_path, data, reason):
    path = tmp_path / "bad.xml"
    path.write_bytes(data)
    with pytest.raises(VocFormatError, match=f"^{path}: {reason}"):
        read_voc(str(path))


def test_bad_objects_are_reported_one_by_one_and_the_rest_kept():
    xml = b"""<annotation>
      <object><name>tag</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>5</xmax><ymax>9</ymax></bndbox></object>
      <object><name>tag</name><bndbox><xmin>a</xmin><ymin>5</ymin><xmax>8</xmax><ymax>9</ymax></bndbox></object>
      <object><bndbox><xmin>1</xmin><ymin>5</ymin><xmax>8</xmax><ymax>9</ymax></bndbox></object>
      <object><name>tag</name></object>
      <object><name>tag</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>8</xmax><ymax>9</ymax></bndbox></object>
    </annotation>"""
    reported = []
    annotation = parse_voc(xml, lambda *args: reported.append(args))
    assert annotation.objects == (VocObject("tag", Box(1, 2, 8, 9)),)
    assert reported == [(0, "tag", "zero-area box (xmin=5 ymin=5 xmax=5 ymax=9)"),
                        (1, "tag", "<xmin> is 'a', not a number"),
                        (2, None, "no <name>"), (3, "tag", "no <bndbox>")]
    with pytest.raises(VocFormatError, match="object #0: zero-area box"):
        parse_voc(xml)


@pytest.mark.parametrize("changes, words", [
    (dict(objects=(VocObject("leg  tag", Box(1, 1, 2, 2)),)), "double space"),
    (dict(filename="IMAG0488  (2).JPG"), "double space"),
    (dict(filename="IMAG0488"), "needs an extension"),
    (dict(width=None), "needs width, height and depth"),
])
def test_writer_refuses_what_labelimg_or_the_od_api_would_break(changes, words):
    with pytest.raises(ValueError, match=words):
        voc_bytes(sample_annotation(**changes))
