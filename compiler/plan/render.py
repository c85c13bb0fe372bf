"""Rendering: Markdown for a pull request comment, plain text for a terminal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from compiler.diagnostics import Diagnostic
from compiler.plan.result import Plan
from runtime.contract.secrets import redact

MARKER = "<!-- kiln-plan -->"  # finds the comment to update; first line of the Markdown
# GitHub refuses comments over 65,536 characters; bytes are never fewer than characters.
MARKDOWN_LIMIT = 64_000
TEMPLATES = Path(__file__).parent.parent / "templates"  # compiler/templates


@dataclass(frozen=True)
class Limits:
    """How much of a plan to show; None is everything."""

    lines: int | None = None  # sentences per group of environments
    sections: int | None = None  # models
    folders: int | None = None  # rows of the file summary
    names: bool = True  # file names in the file summary
    applications: int | None = None  # names of deleted Applications
    problems: int | None = 20  # diagnostics of a base that does not compile


# Tried in order until the Markdown fits; the last one fits any plan but a pathological one,
# which is cut by hand.
LEVELS = (
    Limits(),
    Limits(names=False, applications=100),
    Limits(lines=40, folders=300, names=False, applications=100),
    Limits(lines=15, sections=150, folders=100, names=False, applications=50, problems=10),
    Limits(lines=5, sections=40, folders=30, names=False, applications=20, problems=5),
    Limits(lines=2, sections=10, folders=10, names=False, applications=10, problems=3),
)


def _cap(items: list[Any], limit: int | None) -> tuple[list[Any], int]:
    if limit is None or len(items) <= limit:
        return items, 0
    return items[:limit], len(items) - limit


def headline(plan: Plan) -> str:
    counts = plan.counts()
    base = f"{plan.ref} ({plan.commit[:12]})"
    models = ", ".join(f"{counts[k]} {k}" for k in ("changed", "added", "removed") if counts[k])
    files = ", ".join(
        f"{counts['files ' + k]} {k}"
        for k in ("changed", "added", "removed")
        if counts["files " + k]
    )
    if not models and not files and not plan.project:
        return f"Compared with {base}: no change to what Kiln generates."
    parts = [f"Compared with {base}:"]
    parts.append(f"model-environments {models or 'unchanged'};")
    parts.append(f"generated files {files or 'unchanged'}.")
    return " ".join(parts)


def _view(plan: Plan, limits: Limits, fmt: str) -> dict[str, Any]:
    sections, hidden_sections = _cap(plan.sections, limits.sections)
    shown_sections = []
    hidden_lines = 0
    for section in sections:
        groups = []
        for group in section.groups:
            lines, more = _cap(group.lines, limits.lines)
            hidden_lines += more * len(group.environments)
            groups.append({"group": group, "lines": lines, "more": more})
        shown_sections.append({"model": section.model, "groups": groups})
    project, hidden_project = _cap(plan.project, limits.lines)
    folders, hidden_folders = _cap(plan.folders, limits.folders)
    applications, hidden_applications = _cap(plan.deleted_applications, limits.applications)
    problems, hidden_problems = _cap(plan.base_problems, limits.problems)
    truncated = bool(
        hidden_sections or hidden_lines or hidden_project or hidden_folders or hidden_applications
    )
    return {
        "fmt": fmt,
        "marker": MARKER,
        "plan": plan,
        "headline": headline(plan),
        "sections": shown_sections,
        "hidden_sections": hidden_sections,
        "project": project,
        "hidden_project": hidden_project,
        "folders": folders,
        "hidden_folders": hidden_folders,
        "names": limits.names,
        "applications": applications,
        "hidden_applications": hidden_applications,
        "problems": [d.text() for d in problems],
        "hidden_problems": hidden_problems,
        "truncated": truncated,
    }


_MARKDOWN_SPECIAL = str.maketrans(
    {
        "\\": "\\\\",
        "`": "\\`",
        "*": "\\*",
        "_": "\\_",
        "[": "\\[",
        "]": "\\]",
        "|": "\\|",
        "~": "\\~",
        "<": "&lt;",  # no HTML (nor a second plan marker); `>` only quotes at a line start
        "&": "&amp;",
        "\n": " ",
    }
)


def markdown_text(value: object) -> str:
    """Text that Markdown shows as it is: no emphasis, links, tables or HTML, no secret."""
    return redact(str(value)).translate(_MARKDOWN_SPECIAL)


def markdown_code(value: object) -> str:
    """A code span, without a secret; safe inside a table cell."""
    text = redact(str(value)).replace("`", "'").replace("|", "\\|").replace("\n", " ")
    return f"`{text}`"


def _environment() -> SandboxedEnvironment:

    environment = SandboxedEnvironment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=False,  # Markdown and text, not HTML: values are escaped by `md`
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["md"] = markdown_text
    environment.filters["code"] = markdown_code
    return environment


def _render(plan: Plan, limits: Limits, fmt: str) -> str:
    template = _environment().get_template("plan.md.j2" if fmt == "markdown" else "plan.txt.j2")
    text: str = template.render(_view(plan, limits, fmt))
    # Markdown values were redacted before they were escaped (an escape can hide a
    # token's shape); plain text is redacted whole.
    return text if fmt == "markdown" else redact(text)


def _cut(text: str, limit: int, note: str) -> str:
    """The longest run of whole lines that fits with the note; the last resort."""
    budget = limit - len(note.encode("utf-8")) - 2
    kept: list[str] = []
    used = 0
    for line in text.splitlines(keepends=True):
        size = len(line.encode("utf-8"))
        if used + size > budget:
            break
        kept.append(line)
        used += size
    return "".join(kept) + "\n" + note + "\n"


def render_plan(plan: Plan, fmt: str = "markdown", limit: int = MARKDOWN_LIMIT) -> str:
    """The plan as Markdown (always under `limit` bytes) or as plain text (all of it)."""
    if fmt != "markdown":
        return _render(plan, Limits(problems=None), fmt)
    for limits in LEVELS:
        text = _render(plan, limits, fmt)
        if len(text.encode("utf-8")) <= limit:
            return text
    command = markdown_code(f"kiln plan --base {plan.ref} --format text")
    note = f"_The plan is too long for a comment and was cut: run {command} for all of it._"
    return _cut(text, limit, note)


def render_failure(diagnostics: list[Diagnostic], fmt: str, limit: int = MARKDOWN_LIMIT) -> str:
    """What the plan says when the working tree does not compile."""
    errors = [d for d in diagnostics if d.is_error]
    title = f"The specs do not compile ({len(errors)} error(s)): there is nothing to plan."
    if fmt != "markdown":
        return "\n".join(["Kiln plan", title, *(f"  {d.text()}" for d in errors)]) + "\n"
    lines = [MARKER, "## Kiln plan", "", markdown_text(title), ""]
    lines += [f"- {markdown_text(d.text())}" for d in errors]
    text = "\n".join(lines) + "\n"
    if len(text.encode("utf-8")) > limit:
        text = _cut(text, limit, "_(more errors not shown)_")
    return text
