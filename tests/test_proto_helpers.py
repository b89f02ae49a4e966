"""The two protobuf helpers: `proto_schema` (message classes from a compact schema) and
`pbtxt_edit` (protobuf text edited in place, one field at a time)."""

import pytest
from google.protobuf import text_format

from spatule_synth.formats import pbtxt_edit
from spatule_synth.formats.pbtxt_edit import PbtxtError
from spatule_synth.formats.proto_schema import message_classes

SCHEMA = {
    "Shop": [("name", 1, "string", "optional"), ("open", 2, "bool", "optional"),
             ("item", 3, "message", "repeated", "Item"), ("tag", 4, "string", "repeated"),
             ("stock", 5, "message", "map string", "Item"), ("count", 6, "int64", "map string")],
    "Item": [("label", 1, "string", "oneof name"), ("code", 2, "int32", "oneof name"),
             ("price", 3, "float", "optional"), ("sizes", 4, "uint32", "repeated")],
}


# --- proto_schema -------------------------------------------------------------------------------

def test_classes_read_and_write_text_and_binary():
    classes = message_classes("test.shop", SCHEMA)
    assert sorted(classes) == ["Item", "Shop"]
    shop = classes["Shop"]()
    text_format.Parse('name: "corner" item { label: "tea" sizes: [1, 2] } item { code: 7 } '
                      'tag: "a" tag: "b" stock { key: "tea" value { price: 2.5 } } '
                      'count { key: "tea" value: 3 } ignored: 1', shop, allow_unknown_field=True)
    assert shop.name == "corner" and not shop.HasField("open")  # proto2: presence is known
    assert [item.WhichOneof("name") for item in shop.item] == ["label", "code"]
    assert list(shop.item[0].sizes) == [1, 2] and list(shop.tag) == ["a", "b"]
    assert shop.stock["tea"].price == 2.5 and dict(shop.count) == {"tea": 3}
    shop.item[0].code = 8  # a oneof holds one member
    assert not shop.item[0].HasField("label")
    assert classes["Shop"].FromString(shop.SerializeToString()) == shop
    assert type(shop).DESCRIPTOR.full_name == "test.shop.Shop"
    entry = type(shop).DESCRIPTOR.fields_by_name["stock"].message_type
    assert entry.full_name == "test.shop.Shop.StockEntry" and entry.GetOptions().map_entry


def test_wire_format_follows_the_syntax():
    """proto2 repeated numbers go one by one, proto3 ones packed (as tf.train.Int64List)."""
    schema = {"List": [("value", 1, "int64", "repeated")]}
    proto2 = message_classes("test.two", schema)["List"](value=[1, 2])
    proto3 = message_classes("test.three", schema, syntax="proto3")["List"](value=[1, 2])
    assert proto2.SerializeToString() == b"\x08\x01\x08\x02"
    assert proto3.SerializeToString() == b"\x0a\x02\x01\x02"


def test_each_call_declares_in_its_own_pool():
    first = message_classes("test.same", {"M": [("a", 1, "int32", "optional")]})["M"]
    second = message_classes("test.same", {"M": [("a", 1, "string", "optional")]})["M"]
    assert first(a=1).a == 1 and second(a="x").a == "x"


@pytest.mark.parametrize("field, message", [
    (("a", 1, "int32", "required"), "label 'required' is not optional, repeated"),
    (("a", 1, "int32", "oneof"), "label 'oneof' is not"),
    (("a", 1, "int32", "optional", "M"), "a message type goes with type 'message' only"),
    (("a", 1, "message", "optional"), "a message type goes with type 'message' only"),
    (("a", 1, "int33", "optional"), "unknown field type 'int33'"),
    (("a", 1, "int32", "map float32"), "unknown field type 'float32'"),
])
def test_bad_fields_are_refused(field, message):
    with pytest.raises(ValueError, match=message):
        message_classes("test.bad", {"M": [field]})


# --- pbtxt_edit ---------------------------------------------------------------------------------

TEXT = """\
# a shop, in protobuf text format
name: "corner"  # its name
item {
  label: 'tea'
  sizes: [1, 2]
  price: 2.5
}
item <
  code: 7; price: 1
>
tag: "a" "b"  # one string, concatenated
tag: "#not a comment",
stock {
  key: "tea"
  value { price: 2.5 }
}
"""


def test_parse_knows_where_each_field_is():
    fields = pbtxt_edit.parse(TEXT)
    assert [f.name for f in fields] == ["name", "item", "item", "tag", "tag", "stock"]
    name, tea, coded, tag, hashed, stock = fields
    assert TEXT[name.value[0]:name.value[1]] == '"corner"'
    assert [(f.path, f.value is not None) for f in tea.children] == [
        ("item.label", True), ("item.sizes", False), ("item.price", True)]
    assert TEXT[tea.children[1].start:tea.children[1].end] == "sizes: [1, 2]"
    assert TEXT[coded.start:coded.end] == "item <\n  code: 7; price: 1\n>"
    assert TEXT[coded.close] == ">" and [f.name for f in coded.children] == ["code", "price"]
    assert TEXT[tag.value[0]:tag.value[1]] == '"a" "b"'
    assert TEXT[hashed.value[0]:hashed.value[1]] == '"#not a comment"'
    assert [f.path for f in stock.children[1].children] == ["stock.value.price"]
    assert pbtxt_edit.string_literals(TEXT) == ['"corner"', "'tea'", '"a"', '"b"',
                                                '"#not a comment"', '"tea"']


def test_find_by_path_with_wildcards():
    fields = pbtxt_edit.parse(TEXT)
    assert [f.path for f in pbtxt_edit.find(fields, ("item", "price"))] == ["item.price"] * 2
    assert [f.path for f in pbtxt_edit.find(fields, ("*", "value", "price"))] == ["stock.value.price"]
    assert pbtxt_edit.find(fields, ("item", "missing")) == []
    assert pbtxt_edit.value_of(TEXT, ("stock", "*", "price")) == "2.5"


@pytest.mark.parametrize("path, message", [
    (("item", "price"), "expected one item.price, found 2"),
    (("tag",), "expected one tag, found 2"),
    (("shelf",), "expected one shelf, found 0"),
])
def test_a_path_must_name_exactly_one_field(path, message):
    with pytest.raises(PbtxtError, match=message):
        pbtxt_edit.set_value(TEXT, path, "1")
    with pytest.raises(PbtxtError, match=message):
        pbtxt_edit.delete(TEXT, path)


def test_set_value_changes_only_that_value():
    text = pbtxt_edit.set_value(TEXT, ("name",), '"kiosk"', "renamed")
    assert text == TEXT.replace('name: "corner"  # its name',
                                'name: "kiosk"  # its name  # renamed')
    again = pbtxt_edit.set_value(text, ("name",), '"stall"', "renamed")
    assert again == text.replace('"kiosk"', '"stall"')  # the same comment is not added twice
    marked = pbtxt_edit.set_value(text, ("name",), '"stall"', "renamed twice", marker="renamed")
    assert marked == again
    assert pbtxt_edit.set_value(TEXT, ("item", "code"), "9") == TEXT.replace("code: 7", "code: 9")
    with pytest.raises(PbtxtError, match="item.sizes is not a single value"):
        pbtxt_edit.set_value(TEXT, ("item", "sizes"), "3")


def test_delete_removes_the_lines_of_one_field():
    text = pbtxt_edit.delete(TEXT, ("stock",), ("no stock", "today"))
    assert text == TEXT[:TEXT.index("stock {")] + "# no stock\n# today\n"
    nested = pbtxt_edit.delete(TEXT, ("*", "label"))
    assert nested == TEXT.replace("  label: 'tea'\n", "")
    [hashed] = [f for f in pbtxt_edit.parse(TEXT) if f.name == "tag" and "#" in TEXT[f.start:f.end]]
    assert pbtxt_edit.delete_field(TEXT, hashed) == TEXT.replace('tag: "#not a comment",\n', "")
    with pytest.raises(PbtxtError, match="item.code shares its line with other fields"):
        pbtxt_edit.delete(TEXT, ("item", "code"))


def test_insert_adds_a_last_field():
    text = pbtxt_edit.insert(TEXT, ("stock",), 'note: "fresh"', "added")
    assert text == TEXT.replace('  value { price: 2.5 }\n}',
                                '  value { price: 2.5 }\n  note: "fresh"  # added\n}')
    with pytest.raises(PbtxtError, match="the closing bracket of stock.value is not on its own line"):
        pbtxt_edit.insert(TEXT, ("stock", "value"), "price: 1")
    with pytest.raises(PbtxtError, match="name is not a message"):
        pbtxt_edit.insert(TEXT, ("name",), "price: 1")


def test_edited_text_still_parses_with_protobuf():
    text = pbtxt_edit.set_value(TEXT, ("item", "label"), "'coffee'", "renamed")
    text = pbtxt_edit.delete(text, ("stock", "key"), ("was tea",))
    text = pbtxt_edit.insert(text, ("stock",), "key: 'coffee'", "now coffee")
    text = pbtxt_edit.delete(text, ("name",))
    shop = message_classes("test.shop", SCHEMA)["Shop"]()
    text_format.Parse(text, shop)
    assert shop.item[0].label == "coffee" and not shop.HasField("name")
    assert list(shop.stock) == ["coffee"] and shop.stock["coffee"].price == 2.5
    assert list(shop.tag) == ["ab", "#not a comment"]


@pytest.mark.parametrize("text, message", [
    ("a { b: 1", "expected } at line 1, found ''"),
    ("a: 1\n}", "expected a field name at line 2, found '}'"),
    ("a: 1\nb:\n", "field b at line 2 has no value"),
    ('a: "unterminated\n', "cannot read '\"unterminated\\\\n' at line 1"),
])
def test_text_that_does_not_scan_is_refused(text, message):
    with pytest.raises(PbtxtError, match=message):
        pbtxt_edit.parse(text)
