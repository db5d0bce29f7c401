"""The README, CONTRIBUTING and docs/ read in a minute: sizes, widths, paragraph lengths, no dates or commit hashes
outside docs/history.md (issue: a README and REPORT a newcomer takes in at once)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
COMMIT = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,12}\b")


def paragraphs(text: str) -> list[str]:
    """Runs of prose lines: code fences, tables and headings end one, and so does each list item."""
    out, current, fence = [], [], False
    for line in text.splitlines():
        starts_fence = line.startswith("```")
        fence = fence != starts_fence
        if fence or starts_fence or line.startswith(("|", "#")) or not line.strip() \
                or (re.match(r"^\s*([-*]|\d+\.)\s", line) and current):
            if current:
                out.append(" ".join(current))
            current = []
            if fence or starts_fence or line.startswith(("|", "#")) or not line.strip():
                continue
        current.append(line.strip())
    return out + ([" ".join(current)] if current else [])


def prose_lines(text: str) -> list[str]:
    fence, out = False, []
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and not line.startswith("|"):
            out.append(line)
    return out


def test_paragraphs_split_where_they_should():
    text = "# t\n\none two\nthree\n\n- a b\n- c\n\n```\nx y z\n```\n| a | b |\nfour"
    assert paragraphs(text) == ["one two three", "- a b", "- c", "four"]


def test_the_readme_is_an_entry_point():
    text = (ROOT / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= 100
    head = "\n".join(lines[:15])
    assert "./setup.sh && .venv/bin/lazarus-bench run" in head and "python -m pytest" in head
    assert "REPORT.md" in head and "--fresh" in head
    for verdict in ("SUPPORTED", "REFUTED", "INCONCLUSIVE", "NOT TESTABLE"):
        assert re.search(rf"^- \*\*{verdict}\*\*", head, re.M), verdict
    assert max(len(p.split()) for p in paragraphs(text)) <= 80
    assert max(len(line) for line in prose_lines(text)) <= 120


@pytest.mark.parametrize("path", [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *DOCS], ids=lambda p: p.name)
def test_docs_have_short_paragraphs_and_no_dates_or_commits(path: Path):
    text = path.read_text()
    long = [p[:60] for p in paragraphs(text) if len(p.split()) > 150]
    assert not long, long
    if path.name != "history.md":
        assert not DATE.findall(text) and not COMMIT.findall(text), (DATE.findall(text), COMMIT.findall(text))


def test_the_zoo_page_is_reference():
    assert len((ROOT / "docs" / "zoo.md").read_text().splitlines()) <= 120


def tables(text: str) -> list[list[str]]:
    """Each markdown table's lines."""
    out, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            out.append(current)
            current = []
    return out


def test_the_committed_report_answers_on_one_screen():
    """REPORT.md opens with one sentence counting the four verdicts, then a table of at most five columns no wider
    than 160 characters, then the verdicts per build; detail lives in the pages it links."""
    report = ROOT / "reports" / "REPORT.md"
    text = report.read_text()
    lines = text.splitlines()
    assert len(lines) <= 300
    sentence = next(line for line in lines[1:] if line.strip())
    assert all(re.search(rf"\d+ {v}\b", sentence) for v in ("SUPPORTED", "REFUTED", "INCONCLUSIVE", "NOT TESTABLE"))
    first, *_ = tables(text)
    assert first[0].count("|") - 1 <= 5 and max(map(len, first)) <= 160
    cells = [cell.strip() for table in tables(text) for row in table for cell in row.strip("|").split("|")]
    assert max(map(len, cells)) <= 120
    headings = [line for line in lines if line.startswith("## ")]
    assert any("across builds" in h for h in headings) and any("per build" in h for h in headings)
    for link in re.findall(r"\]\(([^)#]+\.md)", text):
        assert (report.parent / link).is_file(), link
    assert text.index("## Verdict per claim, across builds") < text.index("## Verdict per build")
