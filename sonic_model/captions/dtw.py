"""Dynamic time warping of two feature sequences inside a band around their diagonal.

No maintained DTW package is available to the project's environment (librosa, tslearn, dtw-python
are not dependencies), so this is the textbook recurrence with steps (1,0), (0,1), (1,1), written
so each row is a few numpy operations: the horizontal chain within a row is a running minimum over
prefix sums. The band (Sakoe-Chiba) keeps memory and time linear in the length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Each cell's step in: from (i-1, j-1), (i-1, j), (i, j-1), or none (not reachable).
_DIAGONAL, _ABOVE, _LEFT, _NONE = 0, 1, 2, 3


@dataclass(frozen=True)
class WarpPath:
    reference: np.ndarray  # frame indices into the first sequence, non-decreasing
    query: np.ndarray  # matching frame indices into the second
    mean_cost: float  # mean local cost along the path
    # Mean z-score along the path of each step's cost among its row's costs over the voiced query
    # frames in the band (NaN without voiced masks): how much better than the frames the row
    # could have matched the path's frame is, in that row's own spread. It does not depend on how
    # far the two voices are apart, which scales every distance of a row alike.
    mean_z: float = float("nan")


def _band(n: int, m: int, half_width: int) -> tuple[np.ndarray, np.ndarray]:
    centre = np.arange(n) * ((m - 1) / max(n - 1, 1))
    low = np.clip(np.floor(centre - half_width), 0, m - 1).astype(np.int64)
    high = np.clip(np.ceil(centre + half_width) + 1, 1, m).astype(np.int64)
    low[0], high[-1] = 0, m
    return low, high


def warp(
    reference: np.ndarray,
    query: np.ndarray,
    half_width: int,
    reference_voiced: np.ndarray | None = None,
    query_voiced: np.ndarray | None = None,
) -> WarpPath:
    """Cheapest monotone path from (0, 0) to (n-1, m-1) under Euclidean frame distance.

    With both voiced masks, `mean_z` is measured over the path's steps between voiced frames.
    """
    n, m = len(reference), len(query)
    with_z = reference_voiced is not None and query_voiced is not None
    row_mean = np.full(n, np.nan)
    row_std = np.full(n, np.nan)
    low, high = _band(n, m, half_width)
    width = int((high - low).max())
    # Only each cell's step in (the cheapest way into it) is kept, one byte a cell, and the last
    # row of costs: a 10-minute script's 24,000 frames x 1,500 band columns are 36 MB, not 288.
    steps = np.full((n, width), _NONE, np.int8)
    q_sq = (query**2).sum(axis=1)
    previous = None
    for i in range(n):
        lo, hi = low[i], high[i]
        local = np.sqrt(
            np.maximum(q_sq[lo:hi] - 2.0 * (query[lo:hi] @ reference[i]) + reference[i] @ reference[i], 0.0)
        )
        if with_z and reference_voiced[i]:
            voiced_local = local[query_voiced[lo:hi]]
            count = len(voiced_local)
            if count >= 2:  # mean and standard deviation from two sums (numpy's std costs 4x)
                mean = voiced_local.sum() / count
                row_mean[i] = mean
                row_std[i] = np.sqrt(max(voiced_local @ voiced_local / count - mean * mean, 0.0)) + 1e-6
        if previous is None:
            best_from_above = np.full(hi - lo, np.inf)
            best_from_above[0] = 0.0
        else:
            p_lo, p_row = previous
            above = _shifted(p_row, lo - p_lo, hi - lo)
            diagonal = _shifted(p_row, lo - 1 - p_lo, hi - lo)
            best_from_above = np.minimum(above, diagonal)
        vertical = best_from_above + local
        # horizontal steps: acc[j] = min_k<=j (vertical[k] + sum(local[k+1..j]))
        prefix = np.cumsum(local)
        entering = vertical - prefix
        best = np.minimum.accumulate(entering)
        row = prefix + best
        came_from_above = entering <= best  # else the cheapest way in is from the left
        if previous is None:
            from_above = np.full(hi - lo, _DIAGONAL, np.int8)
        else:
            from_above = np.where(diagonal <= above, _DIAGONAL, _ABOVE).astype(np.int8)
        steps[i, : hi - lo] = np.where(np.isfinite(row), np.where(came_from_above, from_above, _LEFT), _NONE)
        previous = (lo, row)
    path_r, path_q = _backtrack(steps, low, high)
    local_path = np.sqrt(((reference[path_r] - query[path_q]) ** 2).sum(axis=1))
    mean_z = float("nan")
    if with_z:
        on = query_voiced[path_q] & ~np.isnan(row_mean[path_r])
        if on.any():
            mean_z = float(((local_path[on] - row_mean[path_r][on]) / row_std[path_r][on]).mean())
    return WarpPath(path_r, path_q, float(local_path.mean()), mean_z)


def _shifted(row: np.ndarray, first: int, length: int) -> np.ndarray:
    """`length` values of `row` from index `first` on, inf where that runs outside `row`."""
    out = np.full(length, np.inf)
    start, end = max(first, 0), min(first + length, len(row))
    if start < end:
        out[start - first : end - first] = row[start:end]
    return out


def _backtrack(steps: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The path from (n-1, m-1) back to (0, 0), following each cell's step in."""
    i, j = len(low) - 1, int(high[-1]) - 1
    reference, query = [i], [j]
    while i > 0 or j > 0:
        step = steps[i, j - low[i]]
        if step == _DIAGONAL:
            i, j = i - 1, j - 1
        elif step == _ABOVE:
            i -= 1
        elif step == _LEFT:
            j -= 1
        else:
            raise ValueError(f"no warp path reaches frame ({i}, {j}); the band is too narrow")
        reference.append(i)
        query.append(j)
    return np.array(reference[::-1]), np.array(query[::-1])
