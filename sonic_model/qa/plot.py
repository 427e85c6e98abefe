"""The QA report's sync plot: mouth opening against the audio envelope over time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sonic_model.qa.checks import true_runs
from sonic_model.qa.result import QAResult
from sonic_model.sync import SyncMeasurement


def plot_sync(measurement: SyncMeasurement | QAResult, out_png_path: str | Path) -> Path:
    """PNG of mouth opening vs audio envelope over time, speech shaded (for the QA report).

    Accepts a `SyncMeasurement` or a `QAResult` (its series). Each curve is scaled to its own
    maximum so their shapes compare; the title gives the offset and correlation when known.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    mouth, envelope, speech, fps, title = _plot_series(measurement)
    times = np.arange(len(envelope)) / fps
    figure = Figure(figsize=(8, 2.4), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    for start, end in true_runs(speech):
        axes.axvspan(start / fps, end / fps, color="#dde8f5", linewidth=0)
    axes.plot(times, _unit_scale(envelope), color="#1f77b4", linewidth=1.0, label="audio envelope")
    axes.plot(np.arange(len(mouth)) / fps, _unit_scale(mouth), color="#d62728", linewidth=1.2, label="mouth opening")
    axes.set_xlim(0, max(times[-1] if len(times) else 1.0, 1 / fps))
    axes.set_ylim(-0.05, 1.1)
    axes.set_xlabel("time (s); shaded = speech")
    axes.set_yticks([])
    axes.set_ylabel("each scaled 0-1", fontsize=8)
    axes.set_title(title, fontsize=9)
    axes.legend(loc="upper right", fontsize=7, frameon=False)
    figure.tight_layout()
    out = Path(out_png_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png")
    return out


def _plot_series(source: SyncMeasurement | QAResult):
    if isinstance(source, SyncMeasurement):
        mouth = np.asarray(source.mouth_opening, np.float64)
        title = f"av offset {source.offset_frames:+d} frames (+ = picture late), correlation {source.correlation:.2f}"
        return mouth, np.asarray(source.envelope, np.float64), np.asarray(source.speech_mask, bool), source.fps, title
    mouth = np.array([np.nan if v is None else v for v in source.mouth_series], np.float64)
    offset = source.figures.get("av_offset_frames", "?")
    correlation = source.figures.get("sync_correlation", "n/a")
    verdict = "passed" if source.passed else "failed"
    title = f"av offset {offset} frames (+ = picture late), correlation {correlation}; QA {verdict}"
    return (
        mouth,
        np.asarray(source.envelope_series, np.float64),
        np.asarray(source.speech_series, bool),
        source.fps,
        title,
    )


def _unit_scale(values: np.ndarray) -> np.ndarray:
    """Min-max to 0..1: a smiling portrait's mouth never reaches 0, yet its shape is what matters."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return values
    low, high = float(finite.min()), float(finite.max())
    return (values - low) / (high - low) if high > low else values - low
