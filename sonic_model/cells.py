"""What counts as an empty manifest cell, for every reader of one (schema, presets, loudness, records).

A null cell reaches us as None, a float NaN (pandas' missing float), pandas' NA or NaT, depending
on the column's dtype and on how the row was taken out of the table. This module needs neither
numpy nor pandas: every one of those is either None or compares unequal to itself.
"""

from __future__ import annotations

from typing import Any


def is_missing(value: Any) -> bool:
    """True for None, NaN, NaT and pandas' NA; False for every real value (0, "", False, lists...)."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN and NaT are the only values unequal to themselves
    except TypeError:  # pandas' NA: NA != NA is NA, which refuses to be a bool
        return True
    except ValueError:  # an array-like cell compares element-wise: a value, not a missing one
        return False
