"""Argument checks shared by strategies, models and the engine.

Every check raises ``ValueError`` naming the offending parameter, so a typo in a
sweep file or a bad keyword argument is reported before any tensor is touched.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from numbers import Integral, Real


def closest_match(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``name`` most likely means, or None; case is ignored, so that
    ``OGM_GE`` finds ``ogm_ge``."""
    by_folded = {candidate.casefold(): candidate for candidate in candidates}
    matches = difflib.get_close_matches(name.casefold(), list(by_folded), n=1, cutoff=0.6)
    return by_folded[matches[0]] if matches else None


def unknown_name_message(kind: str, name: object, available: Iterable[str]) -> str:
    available = sorted(available)
    message = f"unknown {kind} {name!r}"
    suggestion = closest_match(name, available) if isinstance(name, str) else None
    message += f"; did you mean {suggestion!r}?" if suggestion is not None else "."
    return message + f" Available: {', '.join(available)}"


def real(name: str, value: object) -> float:
    """``value`` as a finite float; bools and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def positive(name: str, value: object, *, maximum: float | None = None) -> float:
    value = real(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return _at_most(name, value, maximum)


def non_negative(name: str, value: object, *, maximum: float | None = None) -> float:
    value = real(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return _at_most(name, value, maximum)


def _at_most(name: str, value: float, maximum: float | None) -> float:
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum:g}, got {value!r}")
    return value


def in_unit_interval(name: str, value: object, *, closed_right: bool = False) -> float:
    value = real(name, value)
    upper_ok = value <= 1 if closed_right else value < 1
    if value < 0 or not upper_ok:
        bracket = "]" if closed_right else ")"
        raise ValueError(f"{name} must lie in [0, 1{bracket}, got {value!r}")
    return value


def integer(name: str, value: object, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def choice(name: str, value: object, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(unknown_name_message(f"value for {name}:", value, allowed))
    return value  # type: ignore[return-value]
