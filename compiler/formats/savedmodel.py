"""The serving signature of a TensorFlow SavedModel, read from saved_model.pb with
protobuf alone.

No small, maintained package ships TensorFlow's SavedModel messages without
TensorFlow itself (tensorflow-serving-api depends on it; tensorboard's copies are
an internal detail of a large package). So Kiln declares the few messages it
reads, with TensorFlow's field numbers (tensorflow/core/protobuf/saved_model.proto,
meta_graph.proto, framework/tensor_shape.proto, types.proto), as a descriptor
built here; protobuf skips every field not declared, so the graph itself is
never decoded into objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from compiler.formats import NotTheFormat

SAVED_MODEL_FILE = "saved_model.pb"
SERVING_TAG = "serve"
# The signature Triton's TensorFlow backend serves unless told otherwise.
DEFAULT_SIGNATURE = "serving_default"
# TensorFlow's DataType numbers (types.proto) -> Kiln dtypes; the rest Triton cannot serve.
TF_DTYPES = {
    1: "fp32",
    2: "fp64",
    3: "int32",
    4: "uint8",
    5: "int16",
    6: "int8",
    7: "string",
    9: "int64",
    10: "bool",
    17: "uint16",
    19: "fp16",
    22: "uint32",
    23: "uint64",
}
F = descriptor_pb2.FieldDescriptorProto
# message -> fields as (name, number, type, label, message type or None)
_MESSAGES: dict[str, list[tuple[str, int, int, int, str | None]]] = {
    "SavedModel": [("meta_graphs", 2, F.TYPE_MESSAGE, F.LABEL_REPEATED, "MetaGraphDef")],
    "MetaGraphDef": [
        ("meta_info_def", 1, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, "MetaInfoDef"),
        ("signature_def", 5, F.TYPE_MESSAGE, F.LABEL_REPEATED, "SignatureDefEntry"),
    ],
    "MetaInfoDef": [("tags", 4, F.TYPE_STRING, F.LABEL_REPEATED, None)],
    "SignatureDefEntry": [
        ("key", 1, F.TYPE_STRING, F.LABEL_OPTIONAL, None),
        ("value", 2, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, "SignatureDef"),
    ],
    "SignatureDef": [
        ("inputs", 1, F.TYPE_MESSAGE, F.LABEL_REPEATED, "TensorInfoEntry"),
        ("outputs", 2, F.TYPE_MESSAGE, F.LABEL_REPEATED, "TensorInfoEntry"),
        ("method_name", 3, F.TYPE_STRING, F.LABEL_OPTIONAL, None),
    ],
    "TensorInfoEntry": [
        ("key", 1, F.TYPE_STRING, F.LABEL_OPTIONAL, None),
        ("value", 2, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, "TensorInfo"),
    ],
    "TensorInfo": [
        ("name", 1, F.TYPE_STRING, F.LABEL_OPTIONAL, None),
        ("dtype", 2, F.TYPE_INT32, F.LABEL_OPTIONAL, None),
        ("tensor_shape", 3, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, "TensorShapeProto"),
    ],
    "TensorShapeProto": [
        ("dim", 2, F.TYPE_MESSAGE, F.LABEL_REPEATED, "Dim"),
        ("unknown_rank", 3, F.TYPE_BOOL, F.LABEL_OPTIONAL, None),
    ],
    "Dim": [("size", 1, F.TYPE_INT64, F.LABEL_OPTIONAL, None)],
}
# Map fields are repeated entries with key = 1 and value = 2 on the wire.
_MAP_ENTRIES = ("SignatureDefEntry", "TensorInfoEntry")
_PACKAGE = "kiln_savedmodel"


@cache
def _saved_model_class() -> Any:
    """The SavedModel message class, built once from the declarations above."""
    file = descriptor_pb2.FileDescriptorProto(name="kiln_savedmodel.proto", package=_PACKAGE)
    file.syntax = "proto3"
    for name, fields in _MESSAGES.items():
        declared = file.message_type.add(name=name)
        if name in _MAP_ENTRIES:
            declared.options.map_entry = True
        for field_name, number, kind, label, type_name in fields:
            field = declared.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name is not None:
                field.type_name = f".{_PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.SavedModel"))


@dataclass(frozen=True)
class SavedModelSignature:
    # name (the signature's key, which Triton serves), TF dtype number, shape (-1: any)
    inputs: tuple[tuple[str, int, tuple[int, ...]], ...]
    outputs: tuple[tuple[str, int, tuple[int, ...]], ...]


def read_signature(folder: Path, wanted: str = DEFAULT_SIGNATURE) -> SavedModelSignature:
    """The `wanted` signature of the meta graph tagged `serve`."""
    path = folder / SAVED_MODEL_FILE
    if not path.is_file():
        raise NotTheFormat(f"a SavedModel is a folder with {SAVED_MODEL_FILE}; none found")
    saved = _saved_model_class()()
    try:
        saved.ParseFromString(path.read_bytes())
    except message.DecodeError as exc:
        raise NotTheFormat(f"{SAVED_MODEL_FILE} is not a SavedModel protobuf") from exc
    graphs = [g for g in saved.meta_graphs if SERVING_TAG in g.meta_info_def.tags]
    if not graphs:
        raise NotTheFormat(f"no meta graph is tagged `{SERVING_TAG}`")
    signatures = graphs[0].signature_def
    if wanted not in signatures:
        known = ", ".join(sorted(signatures)) or "none"
        raise NotTheFormat(f"no signature `{wanted}` (it has {known})")
    signature = signatures[wanted]
    return SavedModelSignature(_tensors(signature.inputs), _tensors(signature.outputs))


def _tensors(entries: Any) -> tuple[tuple[str, int, tuple[int, ...]], ...]:
    found = []
    for key in sorted(entries):
        info = entries[key]
        shape: tuple[int, ...] = (
            (-1,)
            if info.tensor_shape.unknown_rank
            else tuple(d.size if d.size > 0 else -1 for d in info.tensor_shape.dim)
        )
        found.append((key, info.dtype, shape))
    return tuple(found)
