"""What a spec's text must be before a YAML parser reads it.

ruamel's parsers are fed only text that cannot hurt them or misplace a problem:
valid UTF-8 (a leading byte-order mark is dropped), no character YAML forbids and
no line separator an editor does not count, and nesting well within what the C
composer survives. Each refusal names the line and column an editor shows.
"""

from __future__ import annotations

import re

from compiler.diagnostics import Location

# The builder refuses documents deeper than this (compiler.load); bracket nesting
# may reach a few times more before the composers see it.
MAX_DEPTH = 64
# ruamel's C composer recurses once per level of nesting and overflows the C stack (a
# segfault, not an exception) somewhere past ten thousand levels; the pure composer
# hits Python's recursion limit far earlier. Flow nesting is measured first.
MAX_FLOW_DEPTH = 4 * MAX_DEPTH
# Block nesting makes it recurse the same way: `- - - x` and `? ? x` open a level per
# indicator on one line, and indentation opens at most two per column (a sequence may
# sit at its key's column). A line is refused when it starts with more indicators, or
# more indentation, than any spec needs; together the two bound the nesting a 1 MiB
# file can reach far below where the C stack gives out.
MAX_LINE_INDICATORS = 256
MAX_INDENT = 1000
FLATTEN = "flatten the structure; specs nest a handful of levels"

# YAML forbids the non-printable characters; YAML 1.1 parsers (ruamel's reader among
# them) end lines at NEL, LS and PS too, where editors and YAML 1.2 do not, so every
# position after one would be off. Tab, LF and CR are fine; a BOM is dropped first.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
_CHARACTER_NAMES = {
    "\x00": "NUL",
    "\x85": "NEXT LINE",
    "\u2028": "LINE SEPARATOR",
    "\u2029": "PARAGRAPH SEPARATOR",
    "\ufeff": "BYTE ORDER MARK, away from the start",
    "\ufffe": "a noncharacter",
    "\uffff": "a noncharacter",
}
_BRACKETS = re.compile(r"[\[\]{}]")
_DEEP_INDENT = " " * MAX_INDENT
_INDICATOR_PAIRS = ("- ", "-\t", "? ", "?\t", ": ", ":\t")
_INDICATOR_RUN = re.compile(r"(?:(?:[-?:]|[&!][^ \t\r\n]*)[ \t]+)*+")


class TextProblem(Exception):
    """Why a spec's text is not read, and where."""

    def __init__(self, code: str, message: str, where: Location, hint: str) -> None:
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint
        self.line, self.col = where


def readable_text(raw: bytes) -> str:
    """The text of a spec file, or TextProblem saying why its bytes are not read."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start].decode("utf-8")
        where = editor_location(before, len(before))
        message = f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})"
        raise TextProblem("KILN1001", message, where, "save the file as UTF-8") from exc
    text = text.removeprefix("\ufeff")
    too_deep = _flow_too_deep(text)
    if too_deep is not None:
        message = f"brackets nest more than {MAX_FLOW_DEPTH} levels deep"
        raise TextProblem("KILN1008", message, too_deep, FLATTEN)
    forbidden = _forbidden_character(text)
    if forbidden is not None:
        what, where = forbidden
        hint = "delete it, or write it as an escape (\\uXXXX) inside a double-quoted string"
        raise TextProblem("KILN1014", f"{what} is not allowed in a spec", where, hint)
    deep_block = _block_too_deep(text)
    if deep_block is not None:
        what, where = deep_block
        message = f"the document nests too deeply to be read ({what})"
        raise TextProblem("KILN1008", message, where, FLATTEN)
    return text


def editor_location(text: str, index: int) -> Location:
    """Line and column of `text[index]` as an editor counts them: LF, CRLF and CR end lines."""
    before = text[:index].replace("\r\n", "\n").replace("\r", "\n")
    return before.count("\n") + 1, len(before) - before.rfind("\n")


def _forbidden_character(text: str) -> tuple[str, Location] | None:
    """The first character a spec may not hold, named, and where an editor shows it."""
    match = _FORBIDDEN.search(text)
    if match is None:
        return None
    char = match.group()
    name = _CHARACTER_NAMES.get(char, "a control character")
    return f"U+{ord(char):04X} ({name})", editor_location(text, match.start())


def _flow_too_deep(text: str) -> Location | None:
    """Where `[`/`{` nesting first passes MAX_FLOW_DEPTH, if it does.

    Brackets inside quotes and comments count too; that can only err towards
    refusing a document no person would write.
    """
    if text.count("[") + text.count("{") <= MAX_FLOW_DEPTH:
        return None
    depth = 0
    for match in _BRACKETS.finditer(text):
        depth = depth + 1 if match.group() in "[{" else max(depth - 1, 0)
        if depth > MAX_FLOW_DEPTH:
            return editor_location(text, match.start())
    return None


def _block_too_deep(text: str) -> tuple[str, Location] | None:
    """The first line that opens too many block levels, and why, if one does.

    Counting indicator characters first keeps this free for every real spec: only a
    file holding hundreds of `- `, `? ` or `: ` is scanned line by line.
    """
    indented = _DEEP_INDENT in text
    tokens = sum(map(text.count, _INDICATOR_PAIRS))
    if not indented and tokens <= MAX_LINE_INDICATORS:
        return None
    for number, line in enumerate(text.splitlines(), start=1):
        indent = len(line) - len(line.lstrip(" "))
        if indent >= MAX_INDENT:
            return f"a line indented {indent} columns", (number, 1)
        run = _INDICATOR_RUN.match(line, indent)
        if run is not None and run.end() - indent > 2 * MAX_LINE_INDICATORS:
            # Anchors and tags may stand between the indicators; they open nothing.
            opened = sum(token in ("-", "?", ":") for token in line[indent : run.end()].split())
            if opened > MAX_LINE_INDICATORS:
                return f"{opened} nesting indicators on one line", (number, indent + 1)
    return None
