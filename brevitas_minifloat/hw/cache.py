"""`JsonCache`: the one on-disk result cache (MAC and layer synthesis, threshold synthesis, DSE points).

One plain JSON file per result, ``<root>/<name>_<hash>.json`` (``<hash>`` is 24 hex digits of the
SHA-256 of the key as sorted JSON). The file stores the key beside the result; a file whose stored key
differs (a hash collision, an edited or foreign file) or that cannot be read counts as missing, so a
stale entry is never trusted. Writes are atomic, so concurrent writers never leave a torn file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

__all__ = ["CACHE_ENV", "JsonCache", "default_cache_dir"]

#: Environment variable naming the hardware cost cache folder.
CACHE_ENV = "BREVITAS_MINIFLOAT_HW_CACHE"


def default_cache_dir() -> Path:
    """``$BREVITAS_MINIFLOAT_HW_CACHE`` if set, else ``~/.cache/brevitas_minifloat/hw``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "brevitas_minifloat" / "hw"


def _digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


class JsonCache:
    """A folder of JSON results addressed by their key (a JSON-serialisable dict)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, key: dict, name: str = "") -> Path:
        """Where the result of ``key`` is stored; ``name`` is a readable file-name prefix."""
        return self.root / (f"{name}_{_digest(key)}.json" if name else f"{_digest(key)}.json")

    def get(self, key: dict, name: str = "") -> dict | None:
        """The result stored under exactly ``key``, else ``None``."""
        try:
            stored = json.loads(self.path(key, name).read_text())
        except (OSError, ValueError):
            return None
        return stored["result"] if isinstance(stored, dict) and stored.get("key") == key else None

    def put(self, key: dict, result: dict, name: str = "") -> None:
        """Store ``result`` under ``key``."""
        path = self.path(key, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "result": result}, indent=1, sort_keys=True))
        os.replace(tmp, path)
