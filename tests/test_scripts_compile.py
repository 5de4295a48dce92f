"""Every script, benchmark and notebook source compiles under the supported Python (3.11: e.g. no
nested same-quote f-strings), including those the default test run does not execute."""

from __future__ import annotations

import py_compile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for d in ("scripts", "benchmarks", "notebooks") for p in (ROOT / d).glob("*.py"))


def test_there_are_sources():
    assert len(SOURCES) > 10


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_compiles(path, tmp_path):
    py_compile.compile(str(path), cfile=str(tmp_path / "out.pyc"), doraise=True)
