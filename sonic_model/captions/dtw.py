"""Dynamic time warping of two feature sequences inside a band around their diagonal.

No maintained DTW package fits (librosa's and dtw-python's have no band statistics, and keep a
float cost for every cell), so this is the textbook recurrence with steps (1,0), (0,1), (1,1):
the frame distances of a block of rows come from one matrix product, and the recurrence runs
cell by cell compiled by numba (a row of numpy operations cost more in calls than in arithmetic).
The band (Sakoe-Chiba) keeps memory and time linear in the length.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numba
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
    # is column -1, never reachable), inf outside the row's band.
    costs = np.full((2, m + 1), np.inf)
    # Rows without a voiced mask get no statistics (their mean and spread stay NaN).
    query_mask = query_voiced if with_z else np.zeros(m, bool)
    reference_mask = reference_voiced if with_z else np.zeros(n, bool)
    q_sq = (query**2).sum(axis=1)
    r_sq = (reference**2).sum(axis=1)
    for first in range(0, n, _BLOCK_ROWS):
        last = min(n, first + _BLOCK_ROWS)
        c_lo, c_hi = int(low[first]), int(high[last - 1])  # the band only moves right
        # A block of rows' distances from one matrix product (a row at a time cost twice as much),
        # float64 like the costs they are added to.
        squared = r_sq[first:last, None] + q_sq[c_lo:c_hi] - 2.0 * (reference[first:last] @ query[c_lo:c_hi].T)
        distances = np.sqrt(np.maximum(squared, 0.0, out=squared), out=squared).astype(np.float64)
        _compiled(
            _fill_rows, distances, low, high, first, c_lo, costs, steps, query_mask, reference_mask, row_mean, row_std
        )
    path_r, path_q, reached = _compiled(_backtrack, steps, low, high)
    if not reached:
        raise ValueError(f"no warp path reaches frame ({path_r[0]}, {path_q[0]}); the band is too narrow")
    local_path = np.sqrt(((reference[path_r] - query[path_q]) ** 2).sum(axis=1))
    mean_z = float("nan")
    if with_z:
        on = query_voiced[path_q] & ~np.isnan(row_mean[path_r])
        if on.any():
            mean_z = float(((local_path[on] - row_mean[path_r][on]) / row_std[path_r][on]).mean())
    return WarpPath(path_r, path_q, float(local_path.mean()), mean_z)


def _compiled(kernel, *args):
    """`kernel(*args)`; where numba's cache of it cannot be read (a truncated or corrupt file in
    __pycache__ or $NUMBA_CACHE_DIR, which numba would fail on in every process from then on),
    the cache is emptied and the kernel compiled again and saved."""
    try:
        return kernel(*args)
    except Exception as error:
        if not _raised_in_numba_cache(error):
            raise
    kernel._cache.flush()  # an empty index: the next call compiles and saves afresh
    return kernel(*args)


def _raised_in_numba_cache(error: BaseException) -> bool:
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename.endswith(os.path.join("numba", "core", "caching.py")):
            return True
        traceback = traceback.tb_next
    return False


def _jit(kernel):
    """`kernel` compiled by numba, its machine code cached on disk (compiling takes ~1 s a process).

    numba caches beside the module, else in the user's cache folder, else in $NUMBA_CACHE_DIR;
    where none of them is writable (a read-only image run by a user without a home) it refuses to
    cache at all, and the module failed to import. There the kernel is compiled in each process.
    """
    try:
        return numba.njit(cache=True, nogil=True)(kernel)
    except RuntimeError as error:  # numba's "cannot cache function ...: no locator available"
        logging.getLogger(__name__).warning(
            "%s; the captions' warp is compiled again in each process (about a second). "
            "Set NUMBA_CACHE_DIR to a writable folder to keep it.",
            error,
        )
        return numba.njit(nogil=True)(kernel)


@_jit
def _fill_rows(
    distances, low, high, first, c_lo, costs, steps, query_voiced, reference_voiced, row_mean, row_std
):  # pragma: no cover (compiled)
    """Rows `first`.. of the recurrence: each cell's cost into `costs` (row i in `costs[i % 2]`,
    column j at j + 1, inf outside the band) and its step in into `steps` (`_LEFT` where the cell
    to the left is strictly cheaper, else `_ABOVE` where the cell above is cheaper than the
    diagonal, else `_DIAGONAL`; `_NONE` where unreachable). A voiced row's mean and standard
    deviation of its distances to the voiced query frames in its band go into `row_mean` and
    `row_std` (a row with fewer than two keeps NaN)."""
    for r in range(distances.shape[0]):
        i = first + r
        lo, hi = low[i], high[i]
        current, previous = costs[i % 2], costs[(i + 1) % 2]
        if i >= 2:  # the row two back, whose costs this array holds
            for j in range(low[i - 2], high[i - 2]):
                current[j + 1] = np.inf
        left = np.inf
        total, total_squares, count = 0.0, 0.0, 0
        for j in range(lo, hi):
            d = distances[r, j - c_lo]
            if query_voiced[j]:
                total += d
                total_squares += d * d
                count += 1
            above_is_cheaper = False
            if i == 0:
                vertical = d if j == 0 else np.inf  # (0, 0) starts the path
            else:
                above, diagonal = previous[j + 1], previous[j]
                above_is_cheaper = diagonal > above
                vertical = d + (above if above_is_cheaper else diagonal)
            horizontal = left + d
            if horizontal < vertical:
                cost, step = horizontal, _LEFT
            else:
                cost, step = vertical, (_ABOVE if above_is_cheaper else _DIAGONAL)
            if cost == np.inf:
                step = _NONE
            current[j + 1] = cost
            steps[i, j - lo] = step
            left = cost
        if reference_voiced[i] and count >= 2:
            mean = total / count
            row_mean[i] = mean
            row_std[i] = np.sqrt(max(total_squares / count - mean * mean, 0.0)) + 1e-6


@_jit
def _backtrack(steps, low, high):  # pragma: no cover (compiled)
    """The path from (n-1, m-1) back to (0, 0), following each cell's step in, and True; or the
    cell no path reaches, and False."""
    i, j = len(low) - 1, high[-1] - 1
    reference, query = np.empty(i + j + 1, np.int64), np.empty(i + j + 1, np.int64)
    at = 0
    reference[0], query[0] = i, j
    while i > 0 or j > 0:
        step = steps[i, j - low[i]]
        if step == _DIAGONAL:
            i, j = i - 1, j - 1
        elif step == _ABOVE:
            i -= 1
        elif step == _LEFT:
            j -= 1
        else:
            reference[0], query[0] = i, j
            return reference[:1], query[:1], False
        at += 1
        reference[at], query[at] = i, j
    return reference[at::-1].copy(), query[at::-1].copy(), True
