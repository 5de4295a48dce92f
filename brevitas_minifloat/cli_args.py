"""Argument parsing for ``brevitas-minifloat``: one-line usage errors, defaults in every help, checked values.

Everything here imports only the standard library at module level, so ``--help`` stays fast; value
checks that need the package (number formats, techniques, space presets) import it when they run,
which is during parsing, before any model or data is loaded.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

#: exit code of usage errors (argparse's convention)
EXIT_USAGE = 2

#: `brevitas_minifloat.dse.space.PRESETS`, spelled out so ``--help`` need not import torch (a test keeps them equal)
SPACE_PRESETS = ("tiny", "default", "full")
#: `brevitas_minifloat.data.DATASETS` (a test keeps them equal)
DATASETS = ("mnist-5k", "fashion-mnist")
FORMAT_KINDS = ("int", "minifloat")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (plus where to read more), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` to every option that has a default and does not state it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default in (None, False, argparse.SUPPRESS) or action.option_strings == []:
            return text
        if isinstance(default, tuple):
            default = ",".join(map(str, default))
        return f"{text} (default: {default})"


def ints(text: str) -> tuple[int, ...]:
    """``"4,6,8"`` -> ``(4, 6, 8)``."""
    try:
        values = tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    return values


def shape(text: str) -> tuple[int, ...]:
    """``"1,1,28,28"`` -> ``(1, 1, 28, 28)``, every dimension positive."""
    dims = ints(text)
    if any(d <= 0 for d in dims) or len(dims) < 2:
        raise argparse.ArgumentTypeError(f"expected a shape like 1,1,28,28 (batch first, positive sizes), got {text!r}")
    return dims


def bit_widths(text: str) -> tuple[int, ...]:
    """``"4,6,8"``: bit widths of 2..16."""
    values = ints(text)
    if not all(2 <= b <= 16 for b in values):
        raise argparse.ArgumentTypeError(f"bit widths must be 2..16, got {text!r}")
    return values


def _number(text: str, kind: type, minimum: float, strict: bool) -> int | float:
    """``text`` as ``kind`` (int or float) that is > ``minimum`` (``strict``) or >= it, and finite."""
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not (value > minimum if strict else value >= minimum) or value == float("inf"):
        bound = f"{'>' if strict else '>='} {minimum:g}"
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'} {bound}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, 0, strict=True)


def non_negative_int(text: str) -> int:
    return _number(text, int, 0, strict=False)


def positive_float(text: str) -> float:
    return _number(text, float, 0.0, strict=True)


def number_format(text: str) -> str:
    """A format name PTQ accepts (``INT4``, ``UINT8``, ``E2M3``, ``E3M2_U``, ``float8_e4m3fn``)."""
    from brevitas_minifloat.ptq.spec import QuantSpec

    try:
        return QuantSpec.parse(text).name
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number format: {err}") from None


def kinds(text: str) -> tuple[str, ...]:
    """``"int,minifloat"`` -> ``("int", "minifloat")``."""
    names = tuple(t for t in text.replace(" ", "").split(",") if t)
    bad = [n for n in names if n not in FORMAT_KINDS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown format kind(s) {', '.join(bad) or repr(text)} in {text!r}; "
                                         f"use {' and/or '.join(FORMAT_KINDS)}, comma-separated")
    return names


def techniques(text: str) -> tuple[tuple[str, ...], ...]:
    """``"none;mse+bias_correction"`` -> ``((), ("mse", "bias_correction"))``."""
    from brevitas_minifloat.ptq import check_techniques

    combos = []
    for part in text.split(";"):
        part = part.strip()
        names = [] if part in ("", "none") else [t for t in part.replace(",", "+").split("+") if t]
        try:
            combos.append(check_techniques(names))
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{text!r}: {err}") from None
    return tuple(combos)


def entry_point(text: str) -> str:
    """``"package.module:function"`` (checked for its form only; it is imported later)."""
    module, sep, attr = text.partition(":")
    if not (sep and module and attr.isidentifier()):
        raise argparse.ArgumentTypeError(f"expected 'package.module:function', got {text!r}")
    return text


def print_error(prog: str, message: str) -> None:
    """The CLI's one-line error format for problems found after parsing (line breaks are joined)."""
    line = " ".join(part.strip() for part in str(message).strip().splitlines() if part.strip())
    print(f"{prog}: error: {line}", file=sys.stderr)
