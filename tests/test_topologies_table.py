"""scripts/topologies_table.py --update: only the rerun rows change; other rows and appended sections stay."""

from __future__ import annotations

import types

from tests.helpers import load_script


def _row(key: str, fmt: str, verify: str, lut: int) -> dict:
    table = load_script("topologies_table")
    return {"topology": table.TOPOLOGIES[key][0], "key": key, "format": fmt, "input_shape": [1, 640],
            "status": "builds", "lut": lut, "bram_18k": 2, "dsp": 0, "max_cycles": 5, "fps": 6, "layers": 12,
            "verify": verify, "build_s": 1.0, "wall_s": 2.0}


def test_update_replaces_only_the_rerun_rows():
    table = load_script("topologies_table")
    args = types.SimpleNamespace(target_fps=1000.0)
    old = [_row("fc_autoencoder", "INT4", "mismatch: hw 13/1280", 111), _row("fc_autoencoder", "E2M1", "exact", 222),
           _row("resnet8", "INT8", "mismatch: hw 10/20", 333)]
    bench = "\n<!-- bench_topologies:start -->\n## Benchmark\n\n| ResNet-8 | fails | 1 |\n<!-- bench_topologies:end -->\n"
    document = table.render(old, args, 60.0) + bench
    new = [_row("fc_autoencoder", "INT4", "exact", 444)]
    kept = table.kept_rows(document, {("fc_autoencoder", "INT4")})
    updated = table.render(new, args, 30.0, kept) + table._appended_sections(document)
    lines = updated.splitlines()
    rows = [line for line in lines if line.startswith("| ResNet-8 |") or line.startswith("| FC autoencoder")]
    # table order (topology, then format); the benchmark's ResNet-8 line is not taken for a table row
    assert [r.split(" | ")[2] for r in rows[:3]] == ["INT8", "INT4", "E2M1"]
    assert "444" in rows[1] and "| exact |" in rows[1] and "111" not in updated
    assert "222" in rows[2] and "mismatch: hw 10/20" in rows[0]
    assert updated.endswith(bench) and "Rows updated by" in lines[2] and "FC autoencoder (AD) INT4" in lines[2]
