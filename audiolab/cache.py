"""A small on-disk cache for generated corpora.

An entry is one uncompressed ``.npz`` file in :func:`audiolab.settings.cache_dir`, named after
the corpus, its version and a hash of the parameters that generated it::

    spoken_digits-v1-3f2a9c0d1e7b5a64.npz

Three properties make it safe to share between notebooks running at the same time:

* **atomic writes**: an entry is written to a temporary file in the same folder and renamed
  (:func:`os.replace`), so a killed process never leaves half a file under the final name;
* **one build at a time**: building holds a lock file (``<entry>.lock``); a second process
  asking for the same entry waits, then reads the first one's result instead of rebuilding;
* **checked reads**: every array is read in full, so the zip CRC catches damaged bytes, and
  the stored names, shapes and dtypes must match the entry's manifest; a damaged entry is
  reported with a warning and rebuilt.

Examples
--------
::

    def build():                        # slow: called only when the entry is missing
        return {"x": np.arange(3), "notes": np.array(json.dumps([{"n": 3}]))}

    arrays = cached_arrays("demo", {"n": 3}, build, version=1)
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from filelock import FileLock

from audiolab import settings

#: Name of the manifest stored inside every entry (a JSON string).
MANIFEST_KEY = "__manifest__"


def params_hash(params: Mapping[str, Any]) -> str:
    """A stable 16-hex-digit hash of JSON-serialisable parameters (key order does not matter)."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):  # NumPy scalars, e.g. np.float32(0.5)
        return value.item()
    raise TypeError(f"cache parameters must be JSON-serialisable, got {type(value).__name__}")


def entry_path(name: str, params: Mapping[str, Any], version: int | str) -> Path:
    """Where the entry for ``name``/``params``/``version`` lives (it may not exist yet)."""
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"cache entry name {name!r} must be a plain, non-empty file name")
    return settings.cache_dir() / f"{name}-v{version}-{params_hash(params)}.npz"


def cached_arrays(
    name: str,
    params: Mapping[str, Any],
    build_fn: Callable[[], Mapping[str, np.ndarray]],
    version: int | str,
) -> dict[str, np.ndarray]:
    """Return the arrays that ``build_fn()`` makes, building them at most once per machine.

    Parameters
    ----------
    name
        Name of the corpus (the start of the file name).
    params
        Every parameter that changes the result (JSON-serialisable); together with ``version``
        it identifies the entry.
    build_fn
        Makes the arrays when the entry is missing or damaged. Its result must be a dict of
        non-object NumPy arrays (store structured metadata as a JSON string, ``np.array(text)``).
    version
        Bump it when the generating code changes, so old entries are not reused.

    Returns
    -------
    dict of str to numpy.ndarray
        The stored arrays.
    """
    path = entry_path(name, params, version)
    manifest = {"name": name, "version": version, "params": json.loads(_dump(params))}
    if path.exists():  # fast path: no lock needed, entries are only ever replaced atomically
        try:
            return _read(path, manifest)
        except Exception:
            pass  # damaged: check again (and warn) under the lock, another process may be on it
    with FileLock(f"{path}.lock"):
        if path.exists():
            try:
                return _read(path, manifest)
            except Exception as err:
                warnings.warn(
                    f"cache file {path} is damaged or unreadable ({type(err).__name__}: {err}); "
                    "deleting it and rebuilding the corpus",
                    stacklevel=2,
                )
                path.unlink()
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a killed process
            stale.unlink(missing_ok=True)
        arrays = _check_built(dict(build_fn()), name)
        _write_atomically(path, arrays, manifest)
        return arrays


def _dump(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=_json_default)


def _check_built(arrays: dict[str, Any], name: str) -> dict[str, np.ndarray]:
    for key, value in arrays.items():
        if key == MANIFEST_KEY or not isinstance(value, np.ndarray) or value.dtype.hasobject:
            raise TypeError(
                f"the build function of {name!r} returned {key!r} as {type(value).__name__} "
                f"(dtype {getattr(value, 'dtype', None)}); it must return a dict of numeric or "
                f"string NumPy arrays, none named {MANIFEST_KEY!r}"
            )
    return arrays


def _write_atomically(path: Path, arrays: dict[str, np.ndarray], manifest: dict) -> None:
    manifest = dict(
        manifest,
        arrays={k: {"shape": list(v.shape), "dtype": v.dtype.str} for k, v in arrays.items()},
    )
    arrays = {**arrays, MANIFEST_KEY: np.array(json.dumps(manifest))}
    write_atomically(path, lambda file: np.savez(file, **arrays))


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(file)`` so that it is never seen half-written.

    The data go to a temporary file ``.NAME.PID-XXXX.tmp`` in the same folder, flushed to disk,
    which then replaces ``path`` in one step (:func:`os.replace`): a process killed at any
    moment leaves either the previous file or the complete new one. Used for corpora,
    checkpoints, audio files and model weights.

    The temporary file is deleted on every exit that Python sees (an exception, Ctrl-C,
    ``sys.exit``); one left by a process that could not clean up (``SIGKILL``, a power cut) is
    deleted by the next write of the same ``path`` once its process is gone.

    Raises
    ------
    FileNotFoundError
        If the folder of ``path`` does not exist.
    PermissionError
        If the folder cannot be written.
    IsADirectoryError
        If ``path`` is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give a file name")
    sweep_stale(path)
    try:
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp"
        )
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"cannot write {path}: the folder {path.parent} does not exist; create it first"
        ) from err
    except PermissionError as err:
        raise PermissionError(
            f"cannot write {path}: permission denied in the folder {path.parent} (read-only?); "
            "choose another folder or fix its permissions"
        ) from err
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache may be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # it exists but is someone else's (or the number is odd): leave it
    return True


def _owner(name: str, prefix: str) -> int | None:
    """The process id in a scratch name ``PREFIX PID-XXXX...``, or ``None`` if there is none."""
    digits = name[len(prefix) :].split("-", 1)[0]
    return int(digits) if digits.isdigit() else None


def sweep_stale(path: Path) -> list[Path]:
    """Delete the temporary files of ``path`` left by processes that no longer run.

    ``.NAME.PID-XXXX.tmp`` files (see :func:`write_atomically`) whose process is gone are
    deleted; files of the older ``.NAME.XXXX.tmp`` form, which name no process, are deleted
    when they are more than an hour old. Returns what was deleted.
    """
    path = Path(path)
    prefix = f".{path.name}."
    swept = []
    try:
        candidates = list(path.parent.glob(f"{glob.escape(prefix)}*.tmp"))
    except OSError:
        return swept
    for tmp in candidates:
        pid = _owner(tmp.name, prefix)
        try:
            stale = (
                not _pid_alive(pid) if pid is not None else time.time() - tmp.stat().st_mtime > 3600
            )
            if stale:
                tmp.unlink()
                swept.append(tmp)
        except OSError:
            continue  # gone already, or not ours to delete
    return swept


def sweep_scratch_folders(parent: Path, prefix: str) -> list[Path]:
    """Delete the folders ``PREFIX PID-XXXX`` in ``parent`` whose process no longer runs."""
    swept = []
    if not parent.is_dir():
        return swept
    for folder in parent.glob(f"{glob.escape(prefix)}*"):
        pid = _owner(folder.name, prefix)
        if folder.is_dir() and pid is not None and not _pid_alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            swept.append(folder)
    return swept


def _read(path: Path, expected: dict) -> dict[str, np.ndarray]:
    """Read and check an entry; any problem raises."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}  # reads every byte: the zip CRC is checked
    manifest = json.loads(str(arrays.pop(MANIFEST_KEY)))
    for key in ("name", "version", "params"):
        if manifest[key] != expected[key]:
            raise ValueError(f"manifest {key} {manifest[key]!r} != expected {expected[key]!r}")
    described = manifest["arrays"]
    if set(described) != set(arrays):
        raise ValueError(f"arrays {sorted(arrays)} != manifest {sorted(described)}")
    for key, value in arrays.items():
        shape, dtype = described[key]["shape"], described[key]["dtype"]
        if list(value.shape) != shape or value.dtype.str != dtype:
            raise ValueError(f"array {key!r} is {value.dtype.str}{value.shape}, not {dtype}{shape}")
    return arrays
