"""Dynamic time warping of two feature sequences inside a band around their diagonal.

No maintained DTW package is available to the project's environment (librosa, tslearn, dtw-python
are not dependencies), so this is the textbook recurrence with steps (1,0), (0,1), (1,1), written
so each row is a few numpy operations: the horizontal chain within a row is a running minimum over
prefix sums, and the frame distances of a block of rows come from one matrix product. The band
(Sakoe-Chiba) keeps memory and time linear in the length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Each cell's step in: from (i-1, j-1), (i-1, j), (i, j-1), or none (not reachable).
_DIAGONAL, _ABOVE, _LEFT, _NONE = 0, 1, 2, 3
# Rows whose frame distances are computed together (a block of a 15 s band is ~6 MB).
_BLOCK_ROWS = 256


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
    # Only each cell's step in (the cheapest way into it) is kept, one byte a cell, and two rows
    # of costs: a 10-minute script's 24,000 frames x 1,500 band columns are 36 MB, not 288.
    steps = np.full((n, width), _NONE, np.int8)
    # The previous and the current row's costs by query column, one place to the right (place 0
    # is column -1, never reachable), inf outside the row's band: the cells above and diagonally
    # above a row are then views. Every row's arrays are written in place (`out=`): allocating
    # them cost as much as the arithmetic.
    previous, current = np.full(m + 1, np.inf), np.full(m + 1, np.inf)
    previous_band = current_band = (0, 0)
    from_above, vertical, prefix, entering, best = np.empty((5, width))
    above_is_cheaper, from_left = np.empty(width, bool), np.empty(width, bool)
    q_sq = (query**2).sum(axis=1)
    r_sq = (reference**2).sum(axis=1)
    for first in range(0, n, _BLOCK_ROWS):
        last = min(n, first + _BLOCK_ROWS)
        c_lo, c_hi = int(low[first]), int(high[last - 1])  # the band only moves right
        # A block of rows' distances from one matrix product (a row at a time cost twice as much),
        # float64 like the costs they are added to (a mixed add costs twice as much).
        squared = r_sq[first:last, None] + q_sq[c_lo:c_hi] - 2.0 * (reference[first:last] @ query[c_lo:c_hi].T)
        distances = np.sqrt(np.maximum(squared, 0.0, out=squared), out=squared).astype(np.float64)
        if with_z:
            _row_statistics(
                distances,
                low[first:last] - c_lo,
                high[first:last] - c_lo,
                query_voiced[c_lo:c_hi],
                reference_voiced[first:last],
                row_mean[first:last],
                row_std[first:last],
            )
        for i in range(first, last):
            lo, hi = int(low[i]), int(high[i])
            w = hi - lo
            local = distances[i - first, lo - c_lo : hi - c_lo]
            above, diagonal = previous[lo + 1 : hi + 1], previous[lo:hi]
            if i == 0:
                from_above[:w] = np.inf
                from_above[0] = 0.0
            else:
                np.minimum(above, diagonal, out=from_above[:w])
            np.add(from_above[:w], local, out=vertical[:w])
            # horizontal steps: acc[j] = min_k<=j (vertical[k] + sum(local[k+1..j]))
            np.cumsum(local, out=prefix[:w])
            np.subtract(vertical[:w], prefix[:w], out=entering[:w])
            np.minimum.accumulate(entering[:w], out=best[:w])
            current[current_band[0] + 1 : current_band[1] + 1] = np.inf  # the row before the previous
            np.add(prefix[:w], best[:w], out=current[lo + 1 : hi + 1])
            # Each cell's step in: _LEFT (2) where the cheapest way in is from the left, else
            # _ABOVE (1) where the cell above is cheaper than the diagonal, else _DIAGONAL (0); as
            # the larger of two small integers (np.where or a masked copy cost 5x more).
            step = steps[i, :w]
            np.greater(entering[:w], best[:w], out=from_left[:w])
            np.left_shift(from_left[:w].view(np.int8), 1, out=step)
            if i > 0:
                np.greater(diagonal, above, out=above_is_cheaper[:w])
                np.maximum(step, above_is_cheaper[:w].view(np.int8), out=step)
            if best[0] == np.inf:  # a row's unreachable cells come first
                step[best[:w] == np.inf] = _NONE
            current_band = (lo, hi)
            previous, current = current, previous
            previous_band, current_band = current_band, previous_band
    path_r, path_q = _backtrack(steps, low, high)
    local_path = np.sqrt(((reference[path_r] - query[path_q]) ** 2).sum(axis=1))
    mean_z = float("nan")
    if with_z:
        on = query_voiced[path_q] & ~np.isnan(row_mean[path_r])
        if on.any():
            mean_z = float(((local_path[on] - row_mean[path_r][on]) / row_std[path_r][on]).mean())
    return WarpPath(path_r, path_q, float(local_path.mean()), mean_z)


def _row_statistics(
    distances: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    query_voiced: np.ndarray,
    reference_voiced: np.ndarray,
    row_mean: np.ndarray,
    row_std: np.ndarray,
) -> None:
    """Each voiced row's mean and standard deviation of its distances to the voiced query frames
    in its band (columns `low`..`high` of `distances`), written into `row_mean` and `row_std`;
    rows with fewer than two such frames keep NaN.

    Sums over the whole block's columns are matrix products; what lies outside a row's band (the
    block's first and last columns, as far as the band moves within the block) is taken off.
    """
    weights = query_voiced.astype(np.float64)
    squares = distances * distances
    sums, square_sums = distances @ weights, squares @ weights
    counts = np.full(len(distances), weights.sum())
    columns = np.arange(distances.shape[1])
    left = int(low.max())  # columns from `left` to `right` are inside every row's band
    right = max(int(high.min()), left)
    for part in (slice(0, left), slice(right, distances.shape[1])):
        outside = ((columns[part] < low[:, None]) | (columns[part] >= high[:, None])) * weights[part]
        sums -= np.einsum("ij,ij->i", distances[:, part], outside)
        square_sums -= np.einsum("ij,ij->i", squares[:, part], outside)
        counts -= outside.sum(axis=1)
    rows = reference_voiced & (counts >= 2)
    # mean and standard deviation from two sums (numpy's std costs 4x)
    mean = sums[rows] / counts[rows]
    row_mean[rows] = mean
    row_std[rows] = np.sqrt(np.maximum(square_sums[rows] / counts[rows] - mean * mean, 0.0)) + 1e-6


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
