"""What counts as an empty manifest cell, for every type a Parquet column hands back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sonic_model.cells import is_missing


@pytest.mark.parametrize("value", [None, float("nan"), np.float32("nan"), pd.NA, pd.NaT, np.datetime64("NaT")])
def test_missing_values(value):
    assert is_missing(value)


@pytest.mark.parametrize("value", [0, 0.0, "", "off", False, [], ["vertical"], np.array([1.0, np.nan]), -14.0])
def test_real_values_are_not_missing(value):
    assert not is_missing(value)


def test_every_null_cell_of_a_parquet_table_is_missing(tmp_path):
    frame = pd.DataFrame(
        {
            "steps": pd.array([None, 3], dtype="Int64"),
            "scale": [np.nan, 1.0],
            "preset": pd.array([None, "fast"], dtype="string"),
            "when": pd.to_datetime([None, "2026-01-01"]),
        }
    )
    frame.to_parquet(tmp_path / "m.parquet")
    back = pd.read_parquet(tmp_path / "m.parquet")
    first, second = back.iloc[0].tolist(), back.iloc[1].tolist()
    assert all(is_missing(value) for value in first)
    assert not any(is_missing(value) for value in second)
