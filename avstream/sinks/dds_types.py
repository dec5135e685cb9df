"""cyclonedds IdlStruct mirrors of ROS 2 messages, generated from rosbags' definitions.

The mirrors give DDS topics the exact ROS 2 type (name ``pkg::msg::dds_::Type_`` and layout,
final extensibility so plain XCDR1) for the chosen distro, without hand-copied IDL. The data
itself is not serialized through them: the DDS sink writes rosbags' CDR bytes directly (the
fast path of docs FACTS 1.5). Readers (tests, tools) can decode with them.
"""
from __future__ import annotations

import types
from dataclasses import dataclass

_BASE = None


def _base_types():
    global _BASE
    if _BASE is None:
        from cyclonedds.idl import types as t

        _BASE = {"bool": bool, "byte": t.uint8, "char": t.uint8, "int8": t.int8, "uint8": t.uint8,
                 "int16": t.int16, "uint16": t.uint16, "int32": t.int32, "uint32": t.uint32, "int64": t.int64,
                 "uint64": t.uint64, "float32": t.float32, "float64": t.float64}
    return _BASE


def dds_typename(ros_type: str) -> str:
    """``pkg/msg/Type`` -> ``pkg::msg::dds_::Type_`` (the ROS 2 RMW mangling)."""
    pkg, kind, name = ros_type.split("/")
    return f"{pkg}::{kind}::dds_::{name}_"


class IdlTypes:
    """Builds (and caches) IdlStruct classes for ROS 2 message types of one type store."""

    def __init__(self, typestore):
        self.ts = typestore
        self._cache: dict = {}

    def __getitem__(self, ros_type: str):
        if ros_type not in self._cache:
            self._cache[ros_type] = self._build(ros_type)
        return self._cache[ros_type]

    def _field_type(self, node):
        from cyclonedds.idl import types as t
        from rosbags.typesys.base import Nodetype

        kind, detail = node
        if kind == Nodetype.BASE:
            name, bound = detail
            if name == "string":
                return t.bounded_str[bound] if bound else str
            return _base_types()[name]
        if kind == Nodetype.NAME:
            return self[detail]
        inner, size = detail
        if kind == Nodetype.ARRAY:
            return t.array[self._field_type(inner), size]
        return t.sequence[self._field_type(inner), size] if size else t.sequence[self._field_type(inner)]

    def _build(self, ros_type: str):
        from cyclonedds.idl import IdlStruct

        _, fields = self.ts.fielddefs[ros_type]
        annotations = {name: self._field_type(node) for name, node in fields}
        if not annotations:  # ROS gives empty messages one dummy byte
            annotations = {"structure_needs_at_least_one_member": _base_types()["uint8"]}
        cls = types.new_class(ros_type.replace("/", "_"), (IdlStruct,), {"typename": dds_typename(ros_type)},
                              lambda ns: ns.update({"__annotations__": annotations, "__module__": __name__}))
        return dataclass(cls)
