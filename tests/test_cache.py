"""audiolab.cache: keyed, atomic, locked, checked on-disk cache of generated arrays."""

import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest

from audiolab.cache import cached_arrays, entry_path, params_hash


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUDIOLAB_CACHE", str(tmp_path))
    return tmp_path


class Builder:
    """A build function that counts its calls."""

    def __init__(self, n: int = 5, fail: bool = False):
        self.n, self.fail, self.calls = n, fail, 0

    def __call__(self) -> dict[str, np.ndarray]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("build crashed")
        return {
            "x": np.arange(self.n * 1000, dtype=np.int16).reshape(self.n, 1000),
            "meta": np.array(json.dumps([{"i": i} for i in range(self.n)])),
        }


def test_roundtrip_builds_once(cache_dir: Path):
    build = Builder()
    first = cached_arrays("demo", {"n": 5}, build, version=1)
    second = cached_arrays("demo", {"n": 5}, build, version=1)
    assert build.calls == 1
    assert set(second) == {"x", "meta"} and second["x"].dtype == np.int16
    np.testing.assert_array_equal(first["x"], second["x"])
    assert json.loads(str(second["meta"]))[4] == {"i": 4}
    assert [p.name for p in cache_dir.glob("*.npz")] == [entry_path("demo", {"n": 5}, 1).name]


def test_key_depends_on_params_and_version_not_on_key_order():
    assert params_hash({"a": 1, "b": [1, 2]}) == params_hash({"b": [1, 2], "a": 1})
    assert params_hash({"a": 1}) != params_hash({"a": 2})
    build = Builder()
    cached_arrays("demo", {"n": 5, "m": 1}, build, version=1)
    cached_arrays("demo", {"m": 1, "n": 5}, build, version=1)
    assert build.calls == 1
    cached_arrays("demo", {"n": 5, "m": 2}, build, version=1)
    cached_arrays("demo", {"n": 5, "m": 1}, build, version=2)
    assert build.calls == 3


def test_crash_during_build_leaves_nothing_and_next_call_rebuilds(cache_dir: Path):
    with pytest.raises(RuntimeError, match="build crashed"):
        cached_arrays("demo", {}, Builder(fail=True), version=1)
    assert not entry_path("demo", {}, 1).exists()
    assert not list(cache_dir.glob("*.tmp")) and not list(cache_dir.glob(".*.tmp"))
    build = Builder()
    assert cached_arrays("demo", {}, build, version=1)["x"].shape == (5, 1000)
    assert build.calls == 1


def test_crash_while_writing_leaves_no_final_file(cache_dir: Path, monkeypatch):
    def killed(file, **arrays):
        file.write(b"PK half a zip")  # then the process is interrupted
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(np, "savez", killed)
        with pytest.raises(KeyboardInterrupt):
            cached_arrays("demo", {}, Builder(), version=1)
    assert not entry_path("demo", {}, 1).exists() and not list(cache_dir.glob(".*.tmp"))
    # a temporary file left by a process killed outright is ignored and cleaned up
    stale = cache_dir / f".{entry_path('demo', {}, 1).name}.abc.tmp"
    stale.write_bytes(b"PK half a zip")
    build = Builder()
    cached_arrays("demo", {}, build, version=1)
    assert build.calls == 1 and not stale.exists()


@pytest.mark.parametrize("damage", ["flip_middle", "truncate", "empty"])
def test_damaged_file_is_reported_and_rebuilt(damage: str):
    build = Builder()
    good = cached_arrays("demo", {}, build, version=1)
    path = entry_path("demo", {}, 1)
    data = bytearray(path.read_bytes())
    if damage == "flip_middle":
        middle = len(data) // 2
        data[middle : middle + 16] = bytes(255 - b for b in data[middle : middle + 16])
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=rf"{path.name}.*damaged.*rebuilding"):
        again = cached_arrays("demo", {}, build, version=1)
    assert build.calls == 2
    np.testing.assert_array_equal(again["x"], good["x"])
    cached_arrays("demo", {}, build, version=1)  # the rebuilt file is fine
    assert build.calls == 2


def test_file_with_wrong_contents_is_rebuilt():
    build = Builder()
    cached_arrays("demo", {}, build, version=1)
    path = entry_path("demo", {}, 1)
    with open(path, "wb") as file:  # a readable npz, but not what the manifest promises
        np.savez(file, x=np.zeros(3))
    with pytest.warns(UserWarning, match="damaged"):
        assert cached_arrays("demo", {}, build, version=1)["x"].shape == (5, 1000)
    assert build.calls == 2


def test_build_function_must_return_arrays():
    with pytest.raises(TypeError, match="'x'.*NumPy arrays"):
        cached_arrays("demo", {}, lambda: {"x": [1, 2, 3]}, version=1)


def _slow_build(marker: str) -> dict[str, np.ndarray]:
    with open(marker, "a") as file:
        file.write(f"{os.getpid()}\n")
    time.sleep(1.0)  # long enough for the other process to arrive and wait
    return {"x": np.arange(10) * 3}


def _race(marker: str, barrier, results) -> None:
    barrier.wait()  # both processes ask for the entry at the same moment
    arrays = cached_arrays("race", {"n": 10}, lambda: _slow_build(marker), version=1)
    results.put(arrays["x"].tolist())


def test_two_processes_build_once(cache_dir: Path):
    marker = str(cache_dir / "builds.txt")
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_race, args=(marker, barrier, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    outputs = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert Path(marker).read_text().count("\n") == 1, "the entry was built more than once"
    assert outputs[0] == outputs[1] == list(range(0, 30, 3))
