"""Set variables in a `.env` file in place: each named variable ends up on exactly one line
with its new value, every other line (comments, other variables) stays as it was.
Imports nothing from syncd.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")
_PLAIN = re.compile(r"[A-Za-z0-9_.,:/@+=%-]*")


def line(name: str, value: str) -> str:
    """`NAME=value`, single-quoted (taken literally by python-dotenv and by a shell) unless
    the value is plain."""
    if _PLAIN.fullmatch(value):
        return f"{name}={value}"
    if "'" in value:
        raise ValueError(f"{name}: a value with a single quote cannot be written to .env")
    return f"{name}='{value}'"


def read(path: Path) -> tuple[set[str], list[str]]:
    """The variables the file at `path` sets, and its comment lines (nothing when missing)."""
    names: set[str] = set()
    comments: list[str] = []
    for text in path.read_text().splitlines() if path.is_file() else []:
        if text.lstrip().startswith("#"):
            comments.append(text.lstrip("# ").rstrip())
        elif match := _ASSIGNMENT.match(text):
            names.add(match.group(1))
    return names, comments


def update(path: Path, values: Mapping[str, str], *, header: str) -> None:
    """Write `values` into the file at `path` (created if missing, readable by its owner only,
    as it holds secrets): a variable already there keeps its place and takes the new value,
    later lines setting it again are dropped, and the others are appended under `header`."""
    old = path.read_text().splitlines() if path.is_file() else []
    kept: list[str] = []
    written: set[str] = set()
    for text in old:
        match = _ASSIGNMENT.match(text)
        name = match.group(1) if match else None
        if name is None or name not in values:
            kept.append(text)
        elif name not in written:
            kept.append(line(name, values[name]))
            written.add(name)
    missing = [name for name in values if name not in written]
    if missing:
        if kept and kept[-1].strip():
            kept.append("")
        kept.append(f"# {header}")
        kept.extend(line(name, values[name]) for name in missing)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write("\n".join(kept) + "\n")
    os.replace(temporary, path)
