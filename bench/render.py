"""Fill the report's Markdown templates (``bench/templates/``) with a run's numbers.

``benchmarks.md`` is the whole document; ``parts.md`` holds the pieces the code puts in (the
results table, the verdicts, the paragraphs and phrases a run shows only when it has their
numbers), each after a ``<!-- part: name -->`` marker. Both are
``string.Template`` text. A value may be a list of lines: an empty list removes the line its
placeholder stands on, so optional paragraphs leave no gap.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from string import Template
from typing import Any

TEMPLATES = Path(__file__).resolve().parent / "templates"
DOCUMENT = TEMPLATES / "benchmarks.md"
PARTS = TEMPLATES / "parts.md"
_GONE = "\0"  # what an empty list of lines renders as, before its line is removed


def fill(text: str, values: dict[str, Any]) -> list[str]:
    """`text` with every ``$name`` replaced by ``values[name]``, as lines."""
    blocks = {
        name: ("\n".join(value) if value else _GONE) if isinstance(value, list) else str(value)
        for name, value in values.items()
    }
    rendered = Template(text).substitute(blocks)
    return [line for line in rendered.split("\n") if line != _GONE]


def part(name: str, **values: Any) -> list[str]:
    """The paragraph `name` of ``parts.md``, filled in, as lines."""
    return fill(_parts()[name], values)


def line(name: str, **values: Any) -> str:
    """The one-line part `name` of ``parts.md``, filled in: a phrase inside a line."""
    (text,) = part(name, **values)
    return text


def document(**values: Any) -> str:
    """``benchmarks.md`` filled in."""
    return "\n".join(fill(DOCUMENT.read_text(), values))


@functools.cache
def _parts() -> dict[str, str]:
    pieces = re.split(r"^<!-- part: (\w+) -->\n", PARTS.read_text(), flags=re.M)
    names, texts = pieces[1::2], pieces[2::2]
    return {name: text.rstrip("\n") for name, text in zip(names, texts, strict=True)}
