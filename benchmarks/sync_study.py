"""The lip-sync study (issue 23): how QA's sync verdict and calibration behave on good and bad renders.

    nice -n 10 .venv/bin/python benchmarks/sync_study.py [--quick] [--cache DIR] [--workers 2] [--csv out.csv]

Good renders are the preview generator's frames of 5 presenters (the two examples and three
held out: benchmarks/sync_study_media.py) saying espeak-ng scripts in 13 languages, 0.5-60 s
long, and human speech: five LibriVox sentences (tests/fixtures/human_speech, public domain,
3.0-7.1 s) on every presenter, alone and 2-5 of them read one after another (6-25 s;
benchmarks/sync_study_human.py). Each is tracked with QA's face mesh (renders cached under
--cache: a second run only re-analyses; the espeak-ng renders keep their cache names). Bad
renders reuse a good render's frames (the mouth series) with
- the sound shifted by ±3..±12 frames (a known injected offset, also what calibration must find),
- another row's sound of the same length: for an espeak-ng render another language or voice,
  and a human reading; for a human render another human reading (the sentences in another
  order, none near its own place) and an espeak-ng cut (column `swapped_in`),
- the mouth frozen (the first frame held for the whole clip).
Every case goes through QA's own sync decision (`sonic_model.qa.checks.sync_failures` with the
default `QAThresholds`) and calibration's own decision (`sonic_model.postprocess.lipsync.calibration_shift`).

Printed: the false-failure and "unmeasured" rates of good renders by seconds of speech, the catch
rate of each kind of bad render by seconds of speech, what calibration would shift on good
renders, and the error histogram of the confident estimates of known injected offsets, against
the targets of issue 23: every table for all renders and again by the render's speech
(column `speech`: espeak or human), the swapped sounds also by pair (benchmarks/sync_study_report.py).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sync_study_human as human  # noqa: E402
import sync_study_media as media  # noqa: E402
from sync_study_report import report  # noqa: E402

# (length in seconds, renders of that length): short scripts weighted, as catalogs have many.
FULL_PLAN = [(s, 20) for s in (0.5, 0.8, 1.0, 1.2, 1.5, 1.8, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0)] + [
    (10.0, 10),
    (12.0, 8),
    (15.0, 6),
    (20.0, 5),
    (30.0, 4),
    (45.0, 2),
    (60.0, 2),
]
QUICK_PLAN = [(s, 3) for s in (0.8, 1.2, 2.0, 3.0, 5.0, 8.0)] + [(15.0, 1)]
SHIFTS = (3, 4, 5, 6, 8, 10, 12)
FPS = 25
SAMPLES_PER_FRAME = media.RATE // FPS


def plan_clips(plan) -> list[media.Clip]:
    clips, index = [], 0
    languages = list(media.LANGUAGES)
    for seconds, count in plan:
        for _ in range(count):
            clips.append(
                media.Clip(
                    index,
                    media.PRESENTERS[index % len(media.PRESENTERS)],
                    languages[(index * 7 + 3) % len(languages)],
                    seconds,
                    1000 + index,
                )
            )
            index += 1
    return clips


def _render(args) -> tuple[int, dict]:
    clip, cache = args
    return clip.index, media.render_mouth(clip, cache)


def render_all(clips, cache: Path, workers: int) -> dict[int, dict]:
    for language in media.LANGUAGES:  # synthesised once, before the workers read them
        media.passage(language, cache)
    # Grouped by presenter so each worker's generator keeps its prepared face.
    ordered = sorted(clips, key=lambda c: (c.presenter, -c.seconds))
    if workers <= 1:
        return dict(_render((clip, cache)) for clip in ordered)
    with ProcessPoolExecutor(workers) as pool:
        return dict(pool.map(_render, [(clip, cache) for clip in ordered], chunksize=4))


def sound_series(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What QA measures the mouth against: the envelope and speech mask at the reference level."""
    from sonic_model.audio import AudioClip, frame_envelope, speech_segments
    from sonic_model.sync import at_reference_level, speech_mask_for_frames

    sound = at_reference_level(AudioClip(audio))
    envelope = frame_envelope(sound, FPS)
    return envelope, speech_mask_for_frames(speech_segments(sound), len(envelope), FPS)


def delayed(series: np.ndarray, frames: int, fill) -> np.ndarray:
    """`series` played `frames` later (negative: earlier), same length: the sound shifted."""
    out = np.full_like(series, fill)
    if frames > 0:
        out[frames:] = series[:-frames]
    elif frames < 0:
        out[:frames] = series[-frames:]
    else:
        out[:] = series
    return out


def fitted(series: np.ndarray, length: int, fill) -> np.ndarray:
    out = np.full(length, fill, dtype=series.dtype)
    out[: min(length, len(series))] = series[:length]
    return out


def cases_for(clips, renders, cache: Path):
    """(kind, clip, injected offset or None, mouth, envelope, mask, swapped-in speech) for every case."""
    rng = np.random.default_rng(23)
    sounds = {clip.index: sound_series(media.clip_audio(clip, cache)) for clip in clips}
    espeak = [c for c in clips if c.speech == "espeak"]
    by_length = defaultdict(list)
    for clip in espeak:
        by_length[clip.seconds].append(clip)
    # espeak-ng rows first, drawing from the same generator as before human speech came (same cases).
    for clip in espeak:
        mouth = renders[clip.index]["mouth"]
        envelope, mask = sounds[clip.index]
        n = len(mouth)
        envelope, mask = fitted(envelope, n, 0.0), fitted(mask, n, False)
        yield "good", clip, 0, mouth, envelope, mask, ""
        for shift in rng.choice(SHIFTS, size=2, replace=False):
            sign = 1 if rng.random() < 0.5 else -1
            # The sound delayed by k frames: the picture is k frames early, offset -k.
            k = int(sign * shift)
            yield "shifted", clip, -k, mouth, delayed(envelope, k, 0.0), delayed(mask, k, False), ""
        others = [c for c in by_length[clip.seconds] if c.language != clip.language]
        if others:
            other = others[int(rng.integers(len(others)))]
            o_env, o_mask = sounds[other.index]
            yield "other_audio", clip, None, mouth, fitted(o_env, n, 0.0), fitted(o_mask, n, False), "espeak"
        still = np.full(n, float(renders[clip.index]["still_mouth"]))
        yield "frozen", clip, None, still, envelope, mask, ""
    # Human rows and every swap involving human speech: their own generator (the espeak cases stay put).
    rng = np.random.default_rng(2323)
    for clip in clips:
        mouth = renders[clip.index]["mouth"]
        n = len(mouth)
        if clip.speech == "espeak":
            o_env, o_mask = sound_series(human.human_cut(clip.seconds, rng))
            yield "other_audio", clip, None, mouth, fitted(o_env, n, 0.0), fitted(o_mask, n, False), "human"
            continue
        envelope, mask = sounds[clip.index]
        envelope, mask = fitted(envelope, n, 0.0), fitted(mask, n, False)
        yield "good", clip, 0, mouth, envelope, mask, ""
        for shift in rng.choice(SHIFTS, size=2, replace=False):
            k = int((1 if rng.random() < 0.5 else -1) * shift)
            yield "shifted", clip, -k, mouth, delayed(envelope, k, 0.0), delayed(mask, k, False), ""
        for swapped_speech, audio in (
            ("human", human.other_human_audio(clip, rng)),
            ("espeak", human.espeak_cut(clip.seconds, rng, cache)),
        ):
            o_env, o_mask = sound_series(audio)
            yield "other_audio", clip, None, mouth, fitted(o_env, n, 0.0), fitted(o_mask, n, False), swapped_speech
        still = np.full(n, float(renders[clip.index]["still_mouth"]))
        yield "frozen", clip, None, still, envelope, mask, ""


def analyse(clips, renders, cache: Path) -> list[dict]:
    from sonic_model.postprocess.lipsync import calibration_shift
    from sonic_model.qa.checks import measure_sync, sync_failures
    from sonic_model.qa.thresholds import QAThresholds

    thresholds = QAThresholds()
    rows = []
    for kind, clip, truth, mouth, envelope, mask, swapped_speech in cases_for(clips, renders, cache):
        sync = measure_sync(mouth, envelope, mask, thresholds)
        failures = sync_failures(sync, thresholds)
        shift = calibration_shift(sync)
        rows.append(
            {
                "kind": kind,
                "speech": clip.speech,
                "swapped_in": swapped_speech,
                "sentences": "+".join(clip.sentences),
                "index": clip.index,
                "presenter": clip.presenter,
                "language": clip.language,
                "seconds": clip.seconds,
                "speech_s": round(sync.speech_s, 3),
                "truth": truth,
                "offset": sync.offset_frames,
                "offset_subframe": round(sync.offset_subframe, 3),
                "correlation": round(sync.correlation, 4),
                "correlation_at_zero": round(sync.correlation_at_zero, 4),
                "noise": round(sync.noise, 4),
                "confidence": round(sync.confidence, 4),
                "peak_margin": round(sync.peak_margin, 4),
                "mouth_motion": round(sync.mouth_motion, 5),
                "whole_clip": round(sync.whole_clip_correlation_within(thresholds.max_abs_av_offset_frames), 4),
                "whole_clip_prominence": round(
                    sync.whole_clip_prominence_within(thresholds.max_abs_av_offset_frames), 4
                ),
                "confident": sync.confident,
                "failed": bool(failures),
                "reason": "; ".join(failures) or sync.unmeasured_reason,
                "shift_frames": shift.offset_frames if shift.significant else 0,
                "shift_gain": round(shift.gain, 4),
                "shift_se": round(shift.standard_error, 4),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="34 renders instead of 367 (a smoke run)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "sonic-sync-study")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--csv", type=Path, help="also write every case's figures here")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    clips = plan_clips(QUICK_PLAN if args.quick else FULL_PLAN)
    clips += human.plan_human(len(clips), quick=args.quick)
    renders = render_all(clips, args.cache, args.workers)
    rows = analyse(clips, renders, args.cache)
    if args.csv:
        with args.csv.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    report(rows, clips, media.PRESENTERS, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
