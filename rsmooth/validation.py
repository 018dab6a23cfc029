"""One home per kind of value: the rules for the settings that several entry points take.

- ``sigma``, the noise level of smoothing: a finite number > 0 (:func:`check_sigma`). Training may use
  sigma 0 (the noise-free methods); that rule is the training option's own (``rsmooth.train_config``).
- ``alpha``, a failure probability: in (0, 0.5) (:func:`check_alpha`; also the sequential test's ``beta``).
- counts: ``N``, ``N0``, ``n_max``, batch sizes, ``skip``: positive integers; ``start``: a non-negative integer
  (:func:`check_int`, :func:`check_positive_int`).
- attack sizes (``eps``, step sizes, norms): finite numbers >= 0 (:func:`check_non_negative`).

Where values are checked: once, at the edge where they enter: the command line (``rsmooth.cli`` turns the error
into ``prog: error: ...``, exit 2), the workflow's config (its schema), and the public functions and classes
(``Smooth``, ``SequentialTest``, ``lower_confidence_bound``, the attacks), so that a bad value fails before any
work. Code behind an edge takes the value as checked.

Every check raises :class:`rsmooth.errors.SettingError` (a ``ValueError``) with the message ``"<name> must
<rule>, got <value!r>"``; ``name`` is the caller's spelling (``"sigma"``, ``"--sigma"``, ``"n0"``). Each returns
the value as a Python ``float`` or ``int``. Standard library only (no torch, no numpy).
"""

from __future__ import annotations

import math
import operator
from typing import Any

from rsmooth.errors import SettingError


def _fail(name: str, requirement: str, value: Any) -> SettingError:
    return SettingError(f"{name} must {requirement}, got {value!r}", name, value)


def _number(value: Any, name: str, requirement: str) -> float:
    """``value`` as a float, or the error; numpy and torch scalars are numbers, strings and booleans are not."""
    if isinstance(value, bool | str | bytes):
        raise _fail(name, requirement, value)
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of several elements
        raise _fail(name, requirement, value) from None


def check_sigma(value: Any, name: str = "sigma") -> float:
    """A noise level of smoothing: a finite number > 0."""
    requirement = "be a positive number"
    sigma = _number(value, name, requirement)
    if not (math.isfinite(sigma) and sigma > 0):
        raise _fail(name, requirement, value)
    return sigma


def check_alpha(value: Any, name: str = "alpha") -> float:
    """A failure probability: in the open interval (0, 0.5)."""
    requirement = "lie in (0, 0.5)"
    alpha = _number(value, name, requirement)
    if not 0.0 < alpha < 0.5:
        raise _fail(name, requirement, value)
    return alpha


def check_int(value: Any, name: str, minimum: int) -> int:
    """An integer (numpy and torch integers included, booleans not) >= ``minimum``."""
    kind = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, f"an integer >= {minimum}")
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        raise _fail(name, f"be {kind}", value) from None
    if number < minimum:
        raise _fail(name, f"be {kind}", value)
    return number


def check_positive_int(value: Any, name: str) -> int:
    """A count or a size: an integer >= 1."""
    return check_int(value, name, 1)


def check_non_negative(value: Any, name: str) -> float:
    """A size such as an attack radius or step: a finite number >= 0."""
    requirement = "be a finite number >= 0"
    number = _number(value, name, requirement)
    if not (math.isfinite(number) and number >= 0):
        raise _fail(name, requirement, value)
    return number


__all__ = ["check_alpha", "check_int", "check_non_negative", "check_positive_int", "check_sigma"]
