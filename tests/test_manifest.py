"""manifest.json round trip: written, read whole, read as a head, and streamed item by item in
any JSON layout, always the same content."""

import io
import json

import pytest

from spatule_synth.formats.manifest import ManifestStream, read_manifest, read_manifest_head, \
    write_manifest

CONTENT = {"mode": "generate", "config": {"seed": 3, "blend": ["paste", "feather"]},
           "splits": {"train": {"images": 2}, "eval": {"images": 1}},
           "images": {"train": [{"name": "train_000000", "objects": [{"box": [1.5, 2, 3, 4]}]},
                                {"name": "train_000001", "objects": []}],
                      "eval": [{"name": "eval_000000", "note": "é ,]}\"{"}]},
           "problems": []}


def test_written_manifest_reads_back_whole_as_head_and_streamed(tmp_path):
    write_manifest(str(tmp_path), CONTENT)
    whole = read_manifest(str(tmp_path))
    assert whole.pop("versions")["numpy"]  # write_manifest adds the package versions
    assert whole == CONTENT
    head = read_manifest_head(str(tmp_path))  # leaves the per-image and per-problem lists out
    assert {k: v for k, v in head.items() if k != "versions"} == {
        k: v for k, v in CONTENT.items() if k not in ("images", "problems")}
    with open(tmp_path / "manifest.json", encoding="utf-8") as handle:
        stream = ManifestStream(handle).members()
        items = []
        while True:
            try:
                items.append(next(stream))
            except StopIteration as done:
                assert done.value == {k: v for k, v in read_manifest(str(tmp_path)).items() if k != "images"}
                break
    assert items == [(split, image) for split, images in CONTENT["images"].items() for image in images]


@pytest.mark.parametrize("layout", [None, 0, 2])
def test_any_json_layout_streams_the_same(layout):
    text = json.dumps(CONTENT, indent=layout)
    stream = ManifestStream(io.StringIO(text))
    assert stream.head() == {k: v for k, v in CONTENT.items() if k != "images"}


@pytest.mark.parametrize("text", ["[1, 2]", "{\"mode\": \"generate\",}", "{} extra", "not json"])
def test_what_is_not_a_json_object_raises_value_error(text):
    with pytest.raises(ValueError):
        ManifestStream(io.StringIO(text)).head()
