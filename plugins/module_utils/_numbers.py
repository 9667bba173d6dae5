"""Private to this collection: number checking and formatting shared by the gate and the baseline judge.

The leading underscore marks it private, as community.docker marks its own (``_api``, ``_logfmt``):
no compatibility promise; import it only from this collection's plugins.
"""

from __future__ import annotations

import math
from typing import Any


def as_float(value: Any) -> float | None:
    """``value`` as a float, or None for anything that is not a number (booleans included)."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def is_nan(value: float | None) -> bool:
    """True for a float NaN; None (no data) and every real number are not NaN."""
    return isinstance(value, float) and math.isnan(value)


def _bounds(minimum: float, maximum: float, open_low: bool, open_high: bool) -> str:
    if maximum == math.inf:
        return f"{'>' if open_low else '>='} {minimum:g}"
    low, high = "(" if open_low else "[", ")" if open_high else "]"
    return f"in {low}{minimum:g}, {maximum:g}{high}"


def number(
    name: str,
    value: Any,
    *,
    minimum: float,
    maximum: float = math.inf,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """A finite number within bounds; ValueError names ``name``, the full setting (``thresholds.x``).

    Booleans are refused; numeric strings are accepted because templating makes them. NaN and the
    infinities are refused whatever the bounds.
    """
    result = as_float(value)
    if result is None:
        raise ValueError(f"{name}: expected a number, got {value!r}")
    too_low = result <= minimum if open_low else result < minimum
    too_high = result >= maximum if open_high else result > maximum
    if not math.isfinite(result) or too_low or too_high:
        raise ValueError(f"{name}: must be {_bounds(minimum, maximum, open_low, open_high)}, got {value!r}")
    return result


def whole_number(name: str, value: Any, *, minimum: float, maximum: float = math.inf) -> int:
    """A whole number within bounds, accepting 3, 3.0 and "3" alike (templating makes strings)."""
    result = number(name, value, minimum=minimum, maximum=maximum)
    if result != int(result):
        raise ValueError(f"{name}: must be a whole number, got {value!r}")
    return int(result)


def strict_int(name: str, value: Any, minimum: int) -> int:
    """An ``int`` (not a float or a string: argument specs have converted already) of at least minimum."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: must be a whole number >= {minimum}, got {value!r}")
    return value


def fmt(value: float, digits: int = 3) -> str:
    """A number for a human: at most ``digits`` decimals, no trailing zeros, never "-0"."""
    if is_nan(value):
        return "NaN"
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def fmt_pair(value: float, threshold: float) -> tuple[str, str]:
    """Both numbers with enough digits that a breach never reads as '99 % < threshold 99 %'."""
    digits = 3
    while digits < 9 and value != threshold and fmt(value, digits) == fmt(threshold, digits):
        digits += 1
    return fmt(value, digits), fmt(threshold, digits)


def rounded(value: float | None, digits: int = 3) -> float | int | None:
    """For JSON results: whole numbers as ints (counts of requests), others rounded; None stays None."""
    if value is None or is_nan(value):
        return None
    if float(value).is_integer():
        return int(value)
    return round(value, digits)


def round_or_none(value: float | None, digits: int = 4) -> float | None:
    """``round`` that lets None through."""
    return None if value is None else round(value, digits)
