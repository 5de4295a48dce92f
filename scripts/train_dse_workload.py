"""Retrain the DSE's embedded default workload and write its shipped weights and manifest.

    python scripts/train_dse_workload.py [--epochs 2] [--threads 2]

Trains `brevitas_minifloat.dse.embedded.fashion_cnv` on the 60,000 Fashion-MNIST training images
(`train_float_model`: Adam 3e-3, cosine schedule, batch 100, seed 0; deterministic for a given
torch build and thread count), evaluates it on the 10,000 test images (reported, never used to choose
anything) and writes ``brevitas_minifloat/dse/weights/fashion_cnv.pt`` with
``fashion_cnv.json`` (recipe, accuracy, training time, sha256 checked on every load).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from brevitas_minifloat.dse.embedded import FASHION_CNV, WEIGHTS_DIR, sha256_file
from brevitas_minifloat.dse.workload import load_model, train_float_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch threads while training")
    ap.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="where fashion_cnv.pt/.json go")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trained = Path(tmp) / "fashion_cnv.pt"
        meta = train_float_model(FASHION_CNV, "fashion-mnist", trained, epochs=args.epochs, seed=0,
                                 threads=args.threads)
        args.out.mkdir(parents=True, exist_ok=True)
        target = args.out / "fashion_cnv.pt"
        shutil.copyfile(trained, target)
    params = sum(p.numel() for p in load_model(FASHION_CNV, str(target)).parameters())
    manifest = {**meta, "threads": args.threads, "parameters": params, "bytes": target.stat().st_size,
                "sha256": sha256_file(target)}
    (args.out / "fashion_cnv.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {target} ({manifest['bytes']:,} bytes, {params:,} parameters): test accuracy "
          f"{100 * meta['accuracy']:.2f}% after {args.epochs} epochs, {meta['seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
