"""Regenerate docs/mac_cost.md and docs/mac_cost.png: LUTs per MAC for minifloat vs integer formats.

Synthesizes (Yosys, cached as JSON) one MAC unit per (weight, activation) pair of every 3..8-bit
format -- INTn and each signed split EeMm with e >= 1, m >= 0 -- at equal bit widths, in both
architectures (`brevitas_minifloat.hw.rtl`), plus small DSP and SIMD-4 side tables, and compares
with FINN's analytic MVAU LUT model.

    python scripts/mac_cost_table.py [--bits 3-8] [--cross] [--workers 2] [--fan-in 64]
                                     [--cache-dir DIR] [--out docs] [--json results.json]

A cold run of the default sweep synthesizes ~400 units (tens of minutes on 2 cores); with a warm
cache it only renders. ``--cross`` sweeps the full cross product of widths (about 5x more units).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]

from brevitas_minifloat.hw import table  # noqa: E402
from brevitas_minifloat.hw.cost import default_cache_dir, yosys_missing  # noqa: E402


def parse_bits(text: str) -> list[int]:
    if "-" in text:
        lo, hi = map(int, text.split("-"))
        return list(range(lo, hi + 1))
    return [int(b) for b in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bits", default="3-8", help="bit widths, e.g. 3-8 or 4,8 (default 3-8)")
    p.add_argument("--cross", action="store_true", help="full cross product of widths, not only equal widths")
    p.add_argument("--fan-in", type=int, default=64)
    p.add_argument("--workers", type=int, default=2, help="parallel Yosys processes (default 2)")
    p.add_argument("--cache-dir", type=Path, default=None, help=f"JSON cache (default {default_cache_dir()})")
    p.add_argument("--max-decode-product-bits", type=int, default=72)
    p.add_argument("--timeout", type=float, default=1800, help="per-unit Yosys timeout in seconds")
    p.add_argument("--no-side-tables", action="store_true", help="skip the DSP and SIMD-4 tables")
    p.add_argument("--out", type=Path, default=ROOT / "docs")
    p.add_argument("--json", type=Path, default=None, help="also dump all records as JSON here")
    args = p.parse_args(argv)
    if yosys_missing():
        print(yosys_missing(), file=sys.stderr)
        return 2
    result = table.build(
        parse_bits(args.bits),
        cross=args.cross,
        side_tables=not args.no_side_tables,
        fan_in=args.fan_in,
        workers=args.workers,
        cache_dir=args.cache_dir,
        max_decode_product_bits=args.max_decode_product_bits,
        timeout=args.timeout,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mac_cost.md").write_text(table.render_markdown(result))
    table.plot(result, args.out / "mac_cost.png")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, sort_keys=True))
    meta = result["meta"]
    print(f"{meta['synthesized']} synthesized, {meta['cached']} from cache, {meta['seconds']:.1f} s "
          f"-> {args.out / 'mac_cost.md'}, {args.out / 'mac_cost.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
