"""Protobuf message classes declared from a compact schema, without generated ``*_pb2`` modules.

Three schemas are declared this way, so that their messages are written and read by protobuf
itself (binary and text format) although the code that generates them is not installed or too
slow to import: ``tf.train.Example`` (`spatule_synth.formats.tfrecord`), the OD API's
``StringIntLabelMap`` (`spatule_synth.formats.label_map`) and the part of its
``TrainEvalPipelineConfig`` that `spatule_synth.modes.pipeline_config` checks.

A schema maps each message name to its fields, ``(name, number, type, label[, message type])``:

* ``type``: a scalar type as a .proto file spells it (``"string"``, ``"bytes"``, ``"bool"``,
  ``"int32"``, ``"uint32"``, ``"int64"``, ``"float"``, ...), or ``"message"``, then followed by the
  name of a message of the same schema;
* ``label``: ``"optional"``, ``"repeated"``, ``"oneof NAME"`` (a member of the oneof ``NAME``) or
  ``"map KEY_TYPE"`` (``map<KEY_TYPE, type>``; its entry message is declared as protoc does).

Numbers and types are what goes on the wire and names what the text format reads and writes, so
both must be those of the original .proto files; fields left out are unknown fields to protobuf.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_FIELD = descriptor_pb2.FieldDescriptorProto


def message_classes(package: str, messages: dict[str, list[tuple]],
                    syntax: str = "proto2") -> dict[str, type]:
    """The class of every message of the schema ``messages``, by name, declared as
    ``PACKAGE.NAME`` in a new private descriptor pool. ``syntax``: ``"proto2"`` (fields know
    whether they are set) or ``"proto3"`` (repeated numbers packed)."""
    proto = descriptor_pb2.FileDescriptorProto(name=f"spatule_synth/{package}.proto",
                                               package=package, syntax=syntax)
    for message_name, fields in messages.items():
        message = proto.message_type.add(name=message_name)
        for name, number, kind, label, *message_type in fields:
            _add_field(message, f".{package}.", name, number, kind, label, *message_type)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
            for name in messages}


def _add_field(message, scope: str, name: str, number: int, kind: str, label: str,
               message_type: str | None = None) -> None:
    """Add one field of the module docstring's form to the DescriptorProto ``message``; ``scope``
    is ``.PACKAGE.``, which message type names are relative to."""
    if (kind == "message") != (message_type is not None):
        raise ValueError(f"{message.name}.{name}: a message type goes with type 'message' only")
    field = message.field.add(name=name, number=number, label=_FIELD.LABEL_OPTIONAL, type=_type(kind))
    if message_type is not None:
        field.type_name = scope + message_type
    word, _, argument = label.partition(" ")
    if word == "repeated" and not argument:
        field.label = _FIELD.LABEL_REPEATED
    elif word == "oneof" and argument:
        names = [oneof.name for oneof in message.oneof_decl]
        if argument not in names:
            message.oneof_decl.add(name=argument)
            names.append(argument)
        field.oneof_index = names.index(argument)
    elif word == "map" and argument:
        entry = message.nested_type.add(
            name="".join(part[:1].upper() + part[1:] for part in name.split("_")) + "Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, label=_FIELD.LABEL_OPTIONAL, type=_type(argument))
        entry.field.add().CopyFrom(field)
        entry.field[1].name, entry.field[1].number = "value", 2
        field.label, field.type = _FIELD.LABEL_REPEATED, _FIELD.TYPE_MESSAGE
        field.type_name = f"{scope}{message.name}.{entry.name}"
    elif label != "optional":
        raise ValueError(f"{message.name}.{name}: label {label!r} is not optional, repeated, "
                         "'oneof NAME' or 'map KEY_TYPE'")


def _type(name: str) -> int:
    """The ``FieldDescriptorProto.Type`` of a .proto type name (``"uint32"``, ``"message"``)."""
    try:
        return _FIELD.Type.Value(f"TYPE_{name.upper()}")
    except ValueError:
        raise ValueError(f"unknown field type {name!r}") from None
