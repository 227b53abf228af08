"""SECURITY.md's statements stay true to the suite: every statement names at least one test, and
every test it names exists (a renamed or deleted test fails here, not silently in the document)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "SECURITY.md").read_text()
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_statement_names_a_test() -> None:
    statements = re.split(r"\n\*\*S\d+\. ", DOC)[1:]
    assert len(statements) >= 15
    for statement in statements:
        assert REFERENCE.search(statement), statement.split("\n", 1)[0]


def test_every_named_test_exists() -> None:
    named = REFERENCE.findall(DOC)
    assert named
    missing = [f"{f}::{t}" for f, t in named if not (ROOT / f).is_file() or t not in _tests_in(ROOT / f)]
    assert missing == []
