import pytest

from spatule_synth.core.config import DEFAULT_LABEL_MAP
from spatule_synth.formats.label_map import LabelMap, LabelMapError, LabelMapItem, label_map_text, \
    parse_label_map, read_label_map, write_label_map


def test_default_label_map_is_tag_with_id_1():
    label_map = read_label_map(DEFAULT_LABEL_MAP)
    assert label_map.items == (LabelMapItem(1, "tag"),) and label_map.num_classes == 1


def test_round_trip(tmp_path):
    label_map = LabelMap((LabelMapItem(1, "tag"), LabelMapItem(2, "bird", "Spoonbill"),
                          LabelMapItem(5, 'quote"d')))
    path = str(tmp_path / "label_map.pbtxt")
    write_label_map(label_map, path)
    assert read_label_map(path) == label_map
    assert label_map.num_classes == 5


def test_od_api_style_text_is_accepted():
    text = """# OD API sample
item {
  id: 1
  name: 'tag'
  keypoints { id: 0 label: "tip" }
}
item { name: "bird", id: 2 }
item { id: 0 name: 'background' }
"""
    label_map = parse_label_map(text)
    assert label_map.names == ["tag", "bird"]
    assert label_map.id_of("bird") == 2 and label_map.name_of(1) == "tag"


@pytest.mark.parametrize("text, message", [
    ("item { id: 1 name: 'a' } item { id: 2 name: 'a' }", "duplicate name 'a' (id 1 'a', id 2 'a')"),
    ("item { id: 3 name: 'a' } item { id: 3 name: 'b' }", "duplicate id 3 (id 3 'a', id 3 'b')"),
    ("item { id: 0 name: 'tag' }", "class 'tag' has id 0; class ids start at 1"),
    ("item { name: 'tag' }", "item #0 ('tag') has no id"),
    ("", "the label map has no classes"),
    ("item { id: 1 name: 'tag' ", "not a label map"),
])
def test_bad_label_maps_are_rejected_naming_the_culprits(text, message):
    with pytest.raises(LabelMapError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_label_map(text)


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "lm.pbtxt"
    path.write_text("item { id: 1 name: 'a' } item { id: 1 name: 'b' }")
    with pytest.raises(LabelMapError, match=f"^{path}: duplicate id 1"):
        read_label_map(str(path))
    with pytest.raises(LabelMapError, match="cannot read label map"):
        read_label_map(str(tmp_path / "missing.pbtxt"))


def test_unknown_class_reason_suggests_the_near_name():
    label_map = LabelMap.from_names(["tag", "bird"])
    assert label_map.unknown_class_reason("Tag ") == (
        "class 'Tag ' is not in the label map (classes: tag, bird); did you mean 'tag'?")
    assert "did you mean" not in label_map.unknown_class_reason("raccoon")


def test_text_is_plain_od_api_pbtxt():
    assert label_map_text(LabelMap.from_names(["tag"])) == 'item {\n  name: "tag"\n  id: 1\n}\n'
