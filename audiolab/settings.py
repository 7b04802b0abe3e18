"""Run settings: execution mode, device, seeding, cache location and a versions report.

Every notebook starts from these so that one switch (``AUDIOLAB_MODE``) moves a chapter between
the 2-core-CPU ``quick`` lab and the one-GPU ``full`` experiment.
"""

from __future__ import annotations

import os
import platform
import random
from importlib import metadata
from pathlib import Path
from typing import Literal

import numpy as np
import torch

Mode = Literal["quick", "full"]
MODES: tuple[str, ...] = ("quick", "full")

#: Packages whose versions every results cell reports.
REPORTED_PACKAGES: tuple[str, ...] = (
    "torch",
    "torchaudio",
    "numpy",
    "librosa",
    "soundfile",
)


def mode() -> Mode:
    """Return the execution mode.

    ``AUDIOLAB_MODE`` (``quick`` or ``full``) wins; otherwise ``full`` when CUDA is available and
    ``quick`` on a CPU-only machine.

    Raises
    ------
    ValueError
        If ``AUDIOLAB_MODE`` is set to anything else.
    """
    value = os.environ.get("AUDIOLAB_MODE", "").strip().lower()
    if not value:
        return "full" if torch.cuda.is_available() else "quick"
    if value not in MODES:
        raise ValueError(
            f"AUDIOLAB_MODE={value!r} is not a mode; set it to 'quick' (small, CPU, minutes) or "
            "'full' (the real experiment, meant for a GPU), or unset it to choose automatically."
        )
    return value  # type: ignore[return-value]


def is_quick() -> bool:
    """``True`` in quick mode."""
    return mode() == "quick"


def device(prefer: str | None = None) -> torch.device:
    """Return the compute device.

    Parameters
    ----------
    prefer
        ``"cpu"`` or ``"cuda"``; ``AUDIOLAB_DEVICE`` is used when ``None``. Without either, CUDA
        when available, else the CPU.

    Raises
    ------
    RuntimeError
        If CUDA is asked for but not available.
    """
    choice = (prefer or os.environ.get("AUDIOLAB_DEVICE", "")).strip().lower()
    if not choice:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(choice)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {choice!r} was requested but CUDA is not available on this machine; "
            "unset AUDIOLAB_DEVICE or set it to 'cpu'."
        )
    return dev


def device_name(dev: torch.device | None = None) -> str:
    """A readable name of ``dev`` (the GPU model, or the CPU's architecture and core count)."""
    dev = dev or device()
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores)"


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices) and return a CPU generator with that seed."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (libraries still draw from the global RNG)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def cache_dir() -> Path:
    """Directory of the generated corpora (``AUDIOLAB_CACHE`` overrides the platform default).

    The directory is created if it does not exist.
    """
    env = os.environ.get("AUDIOLAB_CACHE")
    if env:
        path = Path(env).expanduser()
    else:
        from platformdirs import user_cache_dir

        path = Path(user_cache_dir("audiolab", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def versions() -> dict[str, str]:
    """Python and the reported packages' versions (``"not installed"`` where missing)."""
    out = {"python": platform.python_version()}
    for name in REPORTED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    from . import __version__

    out["audiolab"] = __version__
    out["cuda"] = torch.version.cuda or "none"
    return out


def info() -> dict[str, object]:
    """Everything a bug report or a results cell needs about this run's environment."""
    dev = device()
    return {
        "mode": mode(),
        "device": str(dev),
        "device_name": device_name(dev),
        "torch_threads": torch.get_num_threads(),
        "cache": str(cache_dir()),
        "versions": versions(),
    }


def describe() -> str:
    """A short, human-readable summary of this run for a notebook's first cell.

    Mode, device and the main library versions; no machine paths (``info()`` has everything,
    including the cache folder, for bug reports).
    """
    data = info()
    v = data["versions"]
    libraries = ", ".join(
        f"{name} {v[name]}" for name in ("torch", "torchaudio", "numpy", "librosa") if name in v
    )
    return (
        f"mode {data['mode']} on {data['device']} ({data['device_name']}); "
        f"Python {v['python']}, {libraries}, audiolab {v['audiolab']}"
    )
