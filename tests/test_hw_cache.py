"""The one result cache (`brevitas_minifloat.hw.cache.JsonCache`) used by synthesis and the DSE."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from brevitas_minifloat.hw.cache import CACHE_ENV, JsonCache, default_cache_dir

keys = st.dictionaries(st.text(min_size=1, max_size=8), st.integers() | st.text(max_size=8), min_size=1, max_size=4)


@given(keys, keys)
def test_round_trip_and_distinct_keys(tmp_path_factory, a, b):
    cache = JsonCache(tmp_path_factory.mktemp("c"))
    assert cache.get(a, "x") is None
    cache.put(a, {"LUT": 7}, "x")
    assert cache.get(a, "x") == {"LUT": 7}
    if a != b:
        assert cache.get(b, "x") is None and cache.path(a, "x") != cache.path(b, "x")


def test_foreign_torn_and_edited_entries_count_as_missing(tmp_path):
    cache = JsonCache(tmp_path / "sub")
    key = {"kind": "point", "w": "E2M1"}
    path = cache.path(key, "point")
    assert path.parent == tmp_path / "sub" and path.name.startswith("point_")
    cache.put(key, {"acc": 0.5}, "point")
    stored = json.loads(path.read_text())
    assert stored == {"key": key, "result": {"acc": 0.5}}  # plain JSON, key beside the result
    path.write_text(json.dumps({"key": {"kind": "other"}, "result": {"acc": 1.0}}))  # edited / collision
    assert cache.get(key, "point") is None
    path.write_text('{"key": ')  # torn
    assert cache.get(key, "point") is None
    path.write_text("[1, 2]")  # not an entry
    assert cache.get(key, "point") is None
    assert not list(path.parent.glob("*.tmp"))


def test_default_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_dir().parts[-2:] == ("brevitas_minifloat", "hw")
