"""Checks of arguments at audiolab's public boundary, with messages that say what to pass.

Every public function validates its numbers here before any work starts, so that a wrong
argument gives a :class:`TypeError` (wrong kind: ``2.5`` where a count is needed, ``True`` where
a sample rate is needed) or a :class:`ValueError` (right kind, impossible value: ``0`` steps, a
negative clipping norm) instead of a silently wrong result or a raw error from deep inside
torch or libsndfile.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def integer(name: str, value: Any, minimum: int | None = 1) -> int:
    """``value`` as an ``int``, refusing booleans, floats and anything below ``minimum``.

    Parameters
    ----------
    name
        The argument's name, for the message.
    value
        What was passed. Python and NumPy integers are accepted.
    minimum
        The smallest allowed value (``None``: no lower bound).

    Returns
    -------
    int
        The value.

    Raises
    ------
    TypeError
        If ``value`` is not a whole number (``bool`` and ``2.0`` included).
    ValueError
        If it is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number (an int), got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        what = "positive" if minimum == 1 else f"at least {minimum}"
        raise ValueError(f"{name} must be {what}, got {value}")
    return value


def number(
    name: str,
    value: Any,
    *,
    positive: bool = False,
    non_negative: bool = False,
    finite: bool = True,
) -> float:
    """``value`` as a ``float``, refusing booleans, NaN and (by default) infinities.

    Parameters
    ----------
    name
        The argument's name, for the message.
    value
        What was passed (a Python or NumPy real number).
    positive, non_negative
        Require ``value > 0`` or ``value >= 0``.
    finite
        Refuse ``inf`` and ``-inf`` (NaN is always refused).

    Returns
    -------
    float
        The value.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If it is NaN, infinite (with ``finite``), or out of the asked range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be positive, got {value:g}")
    if non_negative and not value >= 0:
        raise ValueError(f"{name} must not be negative, got {value:g}")
    return value


def sample_rate(value: Any, name: str = "sample_rate") -> int:
    """A sample rate in Hz: a positive ``int`` (``True`` is not 1 Hz, ``16000.0`` is refused).

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If it is not positive.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be a whole number of Hz (an int such as 16000), got {value!r}"
        )
    if value <= 0:
        raise ValueError(f"{name} must be a positive number of Hz, got {value}")
    return int(value)


def split_and_size(split: Any, size: Any, splits: Any, sizes: Any) -> str:
    """Check a corpus's ``split`` and ``size`` and return the size (``None``: the run's mode).

    Raises
    ------
    ValueError
        If ``split`` is not one of ``splits`` or ``size`` not one of ``sizes``.
    """
    from . import settings

    if not isinstance(split, str) or split not in splits:
        raise ValueError(f"split must be one of {tuple(splits)}, got {split!r}")
    size = size or settings.mode()
    if not isinstance(size, str) or size not in sizes:
        raise ValueError(f"size must be one of {tuple(sizes)} or None, got {size!r}")
    return size
