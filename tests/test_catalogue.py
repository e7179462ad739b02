"""docs/reliability.md keeps the bad-input catalogue: every row names a test that exists, and there are enough rows."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def catalogue_rows() -> list[tuple[str, str, str]]:
    text = (ROOT / "docs" / "reliability.md").read_text()
    section = text.split("## Bad-input catalogue", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        match = re.match(r"^\| (.+) \| (.+) \| `(tests/[^`]+)` \|$", line)
        if match:
            rows.append((match[1], match[2], match[3]))
    return rows


def test_the_catalogue_has_at_least_80_rows() -> None:
    assert len(catalogue_rows()) >= 80


def test_every_catalogue_row_names_a_test_that_exists() -> None:
    missing = []
    for mistake, _, ref in catalogue_rows():
        path, _, name = ref.partition("::")
        file = ROOT / path
        parts = name.split("::")
        source = file.read_text() if file.exists() else ""
        found = all(re.search(rf"^\s*(def|class) {re.escape(p)}\b", source, re.M) for p in parts)
        if not found:
            missing.append(f"{mistake}: {ref}")
    assert missing == []


def test_rows_are_not_repeated() -> None:
    mistakes = [m for m, _, _ in catalogue_rows()]
    assert len(mistakes) == len(set(mistakes))
