"""A damaged or hostile TorchScript archive is NotTheFormat, saying what is wrong with it,
never an internal error, and reading it costs memory in proportion to what Kiln reads:
the code entry up to SOURCE_MAX, and the head of data.pkl whatever its size.

Each archive is the example platform's real one (car-price-torch) with one entry changed.
"""

from __future__ import annotations

import re
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from compiler.formats import NotTheFormat, python_model
from compiler.formats.python_source import SOURCE_MAX
from compiler.formats.torchscript import check_torchscript, forward_arguments
from tests.tools import REPO_ROOT

EXAMPLE = REPO_ROOT / "specs" / "artifacts" / "models" / "car-price-torch" / "1" / "model.pt"
CODE = "archive/code/__torch__/runtime/examples/train_torch_example.py"
PICKLED = "archive/data.pkl"
UNREADABLE = re.escape(f"its entry {CODE} cannot be read: ")
# Deeper than CPython's parser goes: it raises MemoryError here (RecursionError from 5,000).
DEEP = "class CarPriceMLP:\n  def forward(self, x):\n    return " + "-" * 200_000 + "x\n"


def _archive(tmp_path: Path, replaced: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> Path:
    """The example archive with some entries' contents replaced."""
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(EXAMPLE) as source, zipfile.ZipFile(path, "w", method) as target:
        for info in source.infolist():
            target.writestr(info.filename, replaced.get(info.filename, source.read(info)))
    return path


def _data_offset(path: Path, name: str) -> int:
    """Where an entry's stored bytes begin: after its local header (30 bytes + name + extra)."""
    with zipfile.ZipFile(path) as archive:
        offset = archive.getinfo(name).header_offset
    header = path.read_bytes()[offset : offset + 30]
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return offset + 30 + name_length + extra_length


def _patched(path: Path, at: int, data: bytes) -> Path:
    content = bytearray(path.read_bytes())
    content[at : at + len(data)] = data
    path.write_bytes(bytes(content))
    return path


def test_the_example_archive_reads_as_before(tmp_path: Path) -> None:
    copy = _archive(tmp_path, {})
    check_torchscript(copy)
    assert forward_arguments(copy) == forward_arguments(EXAMPLE)
    assert forward_arguments(copy) is not None


def test_an_entry_whose_crc_does_not_match_is_named(tmp_path: Path) -> None:
    path = _archive(tmp_path, {})
    at = _data_offset(path, CODE) + path.read_bytes()[_data_offset(path, CODE) :].index(b"def")
    _patched(path, at, b"DEF")  # stored uncompressed: the bytes change, the CRC stays
    check_torchscript(path)  # the layout is intact
    with pytest.raises(NotTheFormat, match=UNREADABLE + "Bad CRC-32"):
        forward_arguments(path)


def test_a_corrupt_deflate_stream_is_named(tmp_path: Path) -> None:
    path = _archive(tmp_path, {}, zipfile.ZIP_DEFLATED)
    # 0xff opens a deflate block of the reserved type 3: zlib refuses the stream.
    _patched(path, _data_offset(path, CODE), b"\xff\xff")
    with pytest.raises(NotTheFormat, match=UNREADABLE + ".*invalid"):
        forward_arguments(path)


def test_a_compression_method_zipfile_lacks_is_named(tmp_path: Path) -> None:
    path = _archive(tmp_path, {})
    (record,) = _records(path.read_bytes(), CODE.encode())
    _patched(path, record + 10, struct.pack("<H", 99))  # the method zipfile reads: AES
    with pytest.raises(NotTheFormat, match=UNREADABLE + ".*not supported"):
        forward_arguments(path)


def _records(content: bytes, name: bytes) -> list[int]:
    """Offsets of an entry's central directory records, found by the name that follows
    each record's 46 fixed bytes."""
    found, at = [], content.find(b"PK\x01\x02")
    while at != -1:
        if content[at + 46 : at + 46 + len(name)] == name:
            found.append(at)
        at = content.find(b"PK\x01\x02", at + 4)
    return found


def test_a_damaged_central_directory_is_named(tmp_path: Path) -> None:
    path = _archive(tmp_path, {})
    content = path.read_bytes()
    assert zipfile.is_zipfile(path)
    _patched(path, content.index(b"PK\x01\x02"), b"XX\x01\x02")
    with pytest.raises(NotTheFormat, match="damaged zip archive"):
        check_torchscript(path)
    with pytest.raises(NotTheFormat, match="damaged zip archive"):
        forward_arguments(path)


def test_code_nesting_deeper_than_the_parser_is_named(tmp_path: Path) -> None:
    path = _archive(tmp_path, {CODE: DEEP.encode()}, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 10_000
    with pytest.raises(NotTheFormat, match=re.escape(f"{CODE} nests deeper than Python's")):
        forward_arguments(path)


def test_a_code_entry_over_the_cap_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    big = b"#" * SOURCE_MAX + b"\n"
    path = _archive(tmp_path, {CODE: big}, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 10_000
    tracemalloc.start()
    try:
        with pytest.raises(NotTheFormat, match=re.escape(f"{CODE} is {SOURCE_MAX + 1} bytes")):
            forward_arguments(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < SOURCE_MAX // 4  # what it would take to hold the entry


def test_only_the_head_of_a_large_data_pkl_is_inflated(tmp_path: Path) -> None:
    """The root class is named in the first opcodes; the 32 MiB after them never leave
    the archive (a 300 MB data.pkl took 600 MB before)."""
    with zipfile.ZipFile(EXAMPLE) as source:
        pickled = source.read(PICKLED)
    padding = 32 * 1024 * 1024
    path = _archive(tmp_path, {PICKLED: pickled + b"\0" * padding}, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < padding // 100
    tracemalloc.start()
    try:
        arguments = forward_arguments(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert arguments == forward_arguments(EXAMPLE)
    assert peak < padding // 32


def test_a_model_py_nesting_deeper_than_the_parser_is_named(tmp_path: Path) -> None:
    path = tmp_path / "model.py"
    path.write_text(DEEP.replace("CarPriceMLP", "TritonPythonModel"))
    with pytest.raises(NotTheFormat, match=r"model\.py nests deeper than Python's parser reads"):
        python_model.check_model_py(path)
