"""Align a script to its speech on CPU, without downloaded models (the aeneas method).

1. The script is synthesized by eSpeak NG in the row's language; the library says where each word
   starts in that synthetic speech.
2. MFCC frames of the synthetic and the real speech (`features.py`) are matched by DTW (`dtw.py`);
   each word's synthetic start is carried over to the real speech along the warp path.
3. Starts are refined at speech pauses: a word start that lands inside a pause moves to where
   speech resumes, as does a phrase's first word that would otherwise run on through a pause;
   the word before it ends where the pause begins.
4. The match figure (below) is measured on the script said again at the speaker's pace (the
   ratio of voiced frames, within `PACE_RANGE_WPM`). A correct script's figure falls as the
   speaker slows (eSpeak NG speech at 145 words/min: median 2.13, at 90: 1.71), and a LibriVox
   reader slowed to a common narration pace scored under the threshold without it. The timing
   stays with the first synthesis: said at the speaker's pace, eSpeak NG stretches its pauses
   more than its words, and word starts came out worse (benchmarks/caption_human_speech.py).
5. A script whose cost gap (below) is under `DECOYS_BELOW` is also measured against decoys: its
   own words in `DECOYS` shuffled orders, said at the same pace and warped to the same speech.
   Their mean gap is what this voice's gap is for a script with the right words in the wrong
   order; the script's gap over it (`decoy_ratio`) does not fall with how unlike eSpeak NG the
   speaker sounds, which the gap alone does. A ratio near the threshold is measured again over
   `MORE_DECOYS` orders. `script_match` is the higher of the gap and the ratio over
   `DECOY_RATIO_AT_ONE`, so 1.0 means a match either way. Decoys only test the order
   of the words: a script whose length does not fit the speech at any pace in `PACE_RANGE_WPM`
   (a sentence on three sentences' audio) is not measured against them (an eight-word German
   sentence on nine seconds of English speech scored 1.5 over its decoys), nor is speech of
   under `MIN_DECOY_SPEECH_S` voiced seconds.

A language eSpeak NG has no voice for is timed proportionally: the script's characters are spread
evenly over the speech segments (`method == "proportional"`, said in the sidecar).

A voice that cannot read its own language's characters is no reference either: eSpeak NG's
Japanese voice names every kanji in English ("Chinese letter"), so a script with kanji is timed
proportionally too (`espeak.reads`).

The cost gap compares the warp path with the path of the synthetic speech played backwards,
which has the same sounds in the wrong order: what a script costs that has the right kind of
sounds but not these words. Each path step's distance is taken as a z-score among the distances
its synthetic frame has to every voiced real frame in the band (`WarpPath.mean_z`); the gap is
how many standard deviations cheaper the forward path is: 1.1-2.6 for the script that is spoken
by eSpeak NG voices and a man reading prose, around 0.6 for another row's script or another
language. The z-scores do not remove how far the voices are apart: a woman reading verse
(the second LibriVox reader of benchmarks/caption_human_speech.py) scored 0.64-0.91 with the
right script, under every wrong script's gap on eSpeak NG speech, and failed every row until
step 5. Against their decoys her right scripts score 1.66 and up, the man's slowest readings 1.46.
(Two earlier figures, path cost over the band's mean cost and then over the backwards path's cost,
scaled with how alike the voices were: a threshold that passed every human reading let through a
quarter of wrong scripts on eSpeak NG speech. benchmarks/caption_alignment.py, docs/captions.md.)
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from sonic_model.captions import espeak
from sonic_model.captions.dtw import WarpPath, warp
from sonic_model.captions.features import HOP_S, SAMPLE_RATE, frame_count, mfcc_frames
from sonic_model.captions.text import Token, display_width, normalize_script, tokenize

# DTW band half-width: a quarter of the longer signal, between 5 s and 15 s of frames.
BAND_FRACTION = 0.25
BAND_MIN_S, BAND_MAX_S = 5.0, 15.0
# Gaps between speech segments shorter than this are not pauses a caption can break at.
MIN_PAUSE_S = 0.15
# A phrase's first word that lands this close to the end of a pause starts where speech resumes.
SNAP_S = 0.3
# eSpeak NG's rates (words a minute) the synthetic speech may be said at to follow the speaker's
# pace; a pace within `PACE_TOLERANCE` of the first synthesis keeps it.
PACE_RANGE_WPM = (80, 450)
PACE_TOLERANCE = 0.05
# Step 5: a cost gap under DECOYS_BELOW is also measured against the script's words in DECOYS
# shuffled orders; a ratio of DECOY_RATIO_AT_ONE counts as a figure of 1.0. A ratio within
# DECOY_MARGIN of that (as a share) is measured again over MORE_DECOYS orders, the first DECOYS
# among them: two sets of four decoys' means differ by 9% (median; p90 25%), enough to decide a
# verdict near the threshold. A script of fewer than MIN_DECOY_WORDS words has no decoys, and a
# decoys' mean gap under MIN_DECOY_GAP is taken as that: a small denominator makes a wrong
# script's small gap look large (a Spanish script on the sonnet reader, gap 0.38 over decoys of
# 0.18, passed with the floor at 0.2).
DECOYS_BELOW = 1.0
DECOYS = 4
MORE_DECOYS = 8
DECOY_MARGIN = 0.15
DECOY_RATIO_AT_ONE = 1.45
MIN_DECOY_WORDS = 3
MIN_DECOY_GAP = 0.3
# Under this much voiced speech the decoys' gaps are too few frames to average: on phrases of
# 0.8-2.4 s (benchmarks/caption_short_clips.py) another phrase's script reached 2.99 over its
# decoys, and the share caught fell from 81% to 66%.
MIN_DECOY_SPEECH_S = 2.5


@dataclass(frozen=True)
class TimedToken:
    token: Token
    start: float
    end: float


@dataclass(frozen=True)
class Alignment:
    tokens: list[TimedToken]
    method: str  # "espeak-dtw" or "proportional"
    voice: str | None
    script_match: float | None  # None when there was nothing to compare (proportional timing)
    speech_segments: list[tuple[float, float]]
    cost_gap: float | None = None  # the figure's parts (step 4 and 5; the ratio only under DECOYS_BELOW)
    decoy_ratio: float | None = None


def segments_from_mask(voiced: np.ndarray, min_pause_s: float = MIN_PAUSE_S) -> list[tuple[float, float]]:
    """Speech segments from per-frame voicing, pauses shorter than `min_pause_s` bridged."""
    segments: list[list[float]] = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
    for start, end in zip(edges[::2], edges[1::2], strict=False):
        start_s, end_s = start * HOP_S, end * HOP_S
        if segments and start_s - segments[-1][1] < min_pause_s:
            segments[-1][1] = end_s
        else:
            segments.append([start_s, end_s])
    return [(a, b) for a, b in segments]


def align_script(
    script: str,
    language: str,
    samples: np.ndarray,
    speech_segments: list[tuple[float, float]] | None = None,
    *,
    words_per_minute: int = 175,
) -> Alignment:
    """Word (or character) timings of `script` in `samples` (16 kHz mono float32)."""
    text = normalize_script(script)
    tokens = tokenize(text)
    if not tokens:
        raise ValueError("the script is empty; give the words that are spoken")
    spoken, segments = spoken_part(samples, speech_segments)
    voice = _reading_voice(text, language)
    if voice is None:
        starts = _proportional_starts(tokens, segments)
        return Alignment(_timed(tokens, starts, segments), "proportional", None, None, segments)

    synthesis, synthetic_samples, synthetic_frames = _synthetic(text, voice, words_per_minute)
    synthetic = _VoicedPart.of(*synthetic_frames)
    pace, fits, paced = _pace(synthetic, spoken, words_per_minute)
    # (the z-scores are only measured on the path the figure is taken from)
    masks = (None, None) if paced else (synthetic.voiced, spoken.voiced)
    path = warp(synthetic.frames, spoken.frames, _half_width(synthetic, spoken), *masks)

    synthetic_starts = _synthetic_token_starts(tokens, synthesis.word_starts, len(synthetic_samples) / SAMPLE_RATE)
    frames = np.clip(np.round(synthetic_starts / HOP_S).astype(np.int64) - synthetic.start, 0, len(synthetic) - 1)
    positions = np.searchsorted(path.reference, frames, side="left")
    starts = (path.query[np.minimum(positions, len(path.query) - 1)] + spoken.start) * HOP_S
    starts = np.maximum.accumulate(starts)
    del synthesis, synthetic_samples  # a 10-minute script's speech is ~80 MB: not kept beside the next

    if paced:  # the figure at the speaker's pace (step 4)
        synthetic = _VoicedPart.of(*_synthetic(text, voice, pace)[2])
        gap = _cost_gap(synthetic, spoken)
    else:
        gap = _cost_gap(synthetic, spoken, path)
        pace = words_per_minute
    ratio = None
    enough = spoken.voiced.sum() * HOP_S >= MIN_DECOY_SPEECH_S
    if gap is not None and gap < DECOYS_BELOW and fits and enough:  # step 5
        ratio = _decoy_ratio(gap, tokens, text, voice, pace, spoken)
    match = script_match_of(gap, ratio)
    return Alignment(_timed(tokens, starts, segments), "espeak-dtw", voice, match, segments, gap, ratio)


def spoken_part(
    samples: np.ndarray, speech_segments: list[tuple[float, float]] | None = None
) -> tuple[_VoicedPart, list[tuple[float, float]]]:
    """The speech's MFCC frames from its first to its last voiced frame, and its speech segments
    (the detector's, else from the frames' loudness; the whole clip where none is found)."""
    if speech_segments:
        real, real_voiced = mfcc_frames(samples, _segments_mask(speech_segments, frame_count(len(samples))))
        segments = speech_segments
    else:
        real, real_voiced = mfcc_frames(samples)
        segments = segments_from_mask(real_voiced)
    return _VoicedPart.of(real, real_voiced), segments or [(0.0, len(samples) / SAMPLE_RATE)]


def script_cost_gap(script: str, language: str, spoken: _VoicedPart, words_per_minute: int = 175) -> float | None:
    """Step 4's cost gap of `script` on speech already made into frames (`spoken_part`), without
    timing or decoys: to compare several scripts on one audio (`swaps.py`). None where eSpeak NG
    has no voice that reads the script."""
    text = normalize_script(script)
    voice = _reading_voice(text, language) if tokenize(text) else None
    if voice is None:
        return None
    synthetic = _VoicedPart.of(*_synthetic(text, voice, words_per_minute)[2])
    pace, _, paced = _pace(synthetic, spoken, words_per_minute)
    if paced:
        synthetic = _VoicedPart.of(*_synthetic(text, voice, pace)[2])
    return _cost_gap(synthetic, spoken)


def _reading_voice(text: str, language: str) -> str | None:
    """eSpeak NG's voice for `language`, if it can read `text` (step 1)."""
    voice = espeak.voice_for(language)
    return voice if voice is not None and espeak.reads(text, voice) else None


def _pace(synthetic: _VoicedPart, spoken: _VoicedPart, words_per_minute: int) -> tuple[int, bool, bool]:
    """(the speaker's pace in eSpeak NG's words a minute, whether the script's length fits the
    speech at a pace in `PACE_RANGE_WPM`, whether the figure needs another synthesis at it)."""
    pace = words_per_minute * synthetic.voiced.sum() / max(int(spoken.voiced.sum()), 1)
    fits = PACE_RANGE_WPM[0] <= pace <= PACE_RANGE_WPM[1]
    pace = int(round(np.clip(pace, *PACE_RANGE_WPM)))
    return pace, fits, abs(pace / words_per_minute - 1.0) > PACE_TOLERANCE


@dataclass(frozen=True)
class _VoicedPart:
    """A signal's MFCC frames from its first to its last voiced frame."""

    frames: np.ndarray
    voiced: np.ndarray
    start: int  # index of the first frame in the whole signal

    @classmethod
    def of(cls, frames: np.ndarray, voiced: np.ndarray) -> _VoicedPart:
        start, end = _voiced_span(voiced)
        return cls(frames[start:end], voiced[start:end], start)

    def __len__(self) -> int:
        return len(self.voiced)


def _half_width(synthetic: _VoicedPart, spoken: _VoicedPart) -> int:
    """The DTW band's half-width in frames (`BAND_FRACTION` of the longer, within its limits)."""
    longer = max(len(synthetic), len(spoken))
    return int(np.clip(BAND_FRACTION * longer, BAND_MIN_S / HOP_S, BAND_MAX_S / HOP_S))


def _cost_gap(synthetic: _VoicedPart, spoken: _VoicedPart, forward: WarpPath | None = None) -> float | None:
    """How many standard deviations cheaper the script's warp path (`forward`, if already made)
    is than the path of its synthetic speech played backwards; None without voiced frames."""
    half_width = _half_width(synthetic, spoken)
    if forward is None:
        forward = warp(synthetic.frames, spoken.frames, half_width, synthetic.voiced, spoken.voiced)
    reversed_frames, reversed_voiced = synthetic.frames[::-1].copy(), synthetic.voiced[::-1].copy()
    backwards = warp(reversed_frames, spoken.frames, half_width, reversed_voiced, spoken.voiced)
    match = backwards.mean_z - forward.mean_z
    return float(match) if np.isfinite(match) else None


def _decoy_ratio(
    gap: float, tokens: list[Token], text: str, voice: str, pace: int, spoken: _VoicedPart
) -> float | None:
    """Step 5 for this script: its words in shuffled orders, said at the same pace and warped to
    the same speech, each made only when `decoy_ratio` asks for it."""
    decoys = _shuffled_scripts(tokens, text, MORE_DECOYS)
    return decoy_ratio(gap, (_cost_gap(_VoicedPart.of(*_synthetic(decoy, voice, pace)[2]), spoken) for decoy in decoys))


def decoy_ratio(gap: float, decoy_gaps: Iterable[float | None]) -> float | None:
    """The script's cost gap over the mean gap of its first `DECOYS` decoys, or of `MORE_DECOYS`
    where the first few leave the ratio within `DECOY_MARGIN` of `DECOY_RATIO_AT_ONE` (step 5).
    `decoy_gaps` is read lazily (each decoy costs a synthesis and two warps); None where no decoy
    has a gap (a script of fewer than `MIN_DECOY_WORDS` words has no decoys)."""
    pending, gaps, ratio = iter(decoy_gaps), [], None
    for count in (DECOYS, MORE_DECOYS):
        gaps += [np.nan if value is None else value for value in itertools.islice(pending, count - len(gaps))]
        measured = [value for value in gaps if np.isfinite(value)]
        if not measured:
            return None
        ratio = gap / max(float(np.mean(measured)), MIN_DECOY_GAP)
        if abs(ratio / DECOY_RATIO_AT_ONE - 1.0) >= DECOY_MARGIN:
            break
    return ratio


def script_match_of(gap: float, ratio: float | None) -> float:
    """The figure: the higher of the cost gap and the decoy ratio over `DECOY_RATIO_AT_ONE`."""
    return gap if ratio is None else max(gap, ratio / DECOY_RATIO_AT_ONE)


def _shuffled_scripts(tokens: list[Token], text: str, count: int = DECOYS) -> list[str]:
    """`count` orders of the script's words other than its own, the same every call (seeded by
    the text; the first orders of a longer list are a shorter one's); none for a script of fewer
    than `MIN_DECOY_WORDS` words."""
    if len(tokens) < MIN_DECOY_WORDS:
        return []
    joiner = " " if any(token.spaced for token in tokens) else ""
    own = joiner.join(token.text for token in tokens)
    rng = np.random.default_rng(zlib.crc32(text.encode("utf-8")))
    decoys: list[str] = []
    for _ in range(count * 10):  # a repeated word can give the script's own order again
        decoy = joiner.join(tokens[index].text for index in rng.permutation(len(tokens)))
        if decoy != own and decoy not in decoys:
            decoys.append(decoy)
        if len(decoys) == count:
            break
    return decoys


def _synthetic(text: str, voice: str, words_per_minute: int):
    """(synthesis, its 16 kHz samples, (MFCC frames, voiced mask)) of `text` said by `voice`."""
    from sonic_model.audio import resample  # a leaf import: audio.py pulls in the decoder

    synthesis = espeak.synthesize(text, voice, words_per_minute)
    samples = resample(synthesis.samples, synthesis.sample_rate, SAMPLE_RATE)
    return synthesis, samples, mfcc_frames(samples)


def _segments_mask(segments: list[tuple[float, float]], n_frames: int) -> np.ndarray:
    """Frames inside the speech segments, widened by a frame each side (the detector's edges are coarse)."""
    mask = np.zeros(n_frames, bool)
    for start, end in segments:
        mask[max(0, int(start / HOP_S) - 1) : min(n_frames, int(np.ceil(end / HOP_S)) + 1)] = True
    return mask


def _voiced_span(voiced: np.ndarray) -> tuple[int, int]:
    where = np.flatnonzero(voiced)
    if len(where) < 2:
        return 0, len(voiced)
    return int(where[0]), int(where[-1]) + 1


def _synthetic_token_starts(tokens: list[Token], word_starts: list[tuple[int, float]], total_s: float) -> np.ndarray:
    """Each token's start in the synthetic speech: its first word event, else interpolated by character."""
    events = sorted(word_starts)
    positions = np.array([position for position, _ in events], dtype=np.int64)
    times = np.array([time for _, time in events], dtype=np.float64)
    starts = np.full(len(tokens), np.nan)
    for index, token in enumerate(tokens):
        if len(positions):
            at = np.searchsorted(positions, token.start_char, side="left")
            if at < len(positions) and positions[at] < token.end_char:
                starts[index] = times[at]
    known = ~np.isnan(starts)
    chars = np.array([token.start_char for token in tokens], dtype=np.float64)
    if not known.any():
        last = max(tokens[-1].end_char, 1)
        return chars / last * total_s
    starts[~known] = np.interp(chars[~known], chars[known], starts[known])
    return np.maximum.accumulate(starts)


def _proportional_starts(tokens: list[Token], segments: list[tuple[float, float]]) -> np.ndarray:
    weights = np.array([display_width(token.text) + (1 if token.spaced else 0) for token in tokens], float)
    cumulative = np.concatenate([[0.0], np.cumsum(weights)[:-1]]) / weights.sum()
    lengths = np.array([end - start for start, end in segments])
    speech_at = cumulative * lengths.sum()
    segment_ends = np.cumsum(lengths)
    starts = np.empty(len(tokens))
    for index, at in enumerate(speech_at):
        segment = min(int(np.searchsorted(segment_ends, at, side="right")), len(segments) - 1)
        before = segment_ends[segment] - lengths[segment]
        starts[index] = segments[segment][0] + (at - before)
    return starts


def _phrase_end_before_pause(tokens: list[Token], starts: np.ndarray, pause_start: float, pause_end: float) -> None:
    """A phrase's last words that the warp carried into the pause after it are put back before it.

    Moved to where speech resumes, they would open the next sentence's cue (seen on human speech,
    up to 2 s late); instead they share the time from the word before them to the pause's start,
    by characters. Only when no phrase starts among them: then the pause is the phrase's end.
    """
    inside = [index for index in range(1, len(tokens)) if pause_start <= starts[index] < pause_end]
    if not inside or starts[inside[0] - 1] >= pause_start:
        return
    last = None
    for index in inside:
        if tokens[index - 1].ends_phrase:
            return
        if tokens[index].ends_phrase:
            last = index
            break
    if last is None:
        return
    first = inside[0]
    weights = np.array([len(tokens[index].text) for index in range(first - 1, last + 1)], np.float64)
    shares = np.cumsum(weights)[:-1] / weights.sum()
    begin = starts[first - 1]
    starts[first : last + 1] = begin + shares * (pause_start - begin)


def _timed(tokens: list[Token], starts: np.ndarray, segments: list[tuple[float, float]]) -> list[TimedToken]:
    """Ends from the next start, then both refined at the pauses between speech segments."""
    starts = np.asarray(starts, dtype=np.float64).copy()
    speech_end = segments[-1][1]
    starts[0] = max(starts[0], segments[0][0]) if starts[0] < segments[0][0] + SNAP_S else starts[0]
    pauses = [(segments[i][1], segments[i + 1][0]) for i in range(len(segments) - 1)]
    for pause_start, pause_end in pauses:
        _phrase_end_before_pause(tokens, starts, pause_start, pause_end)
        for index in range(len(tokens)):
            phrase_start = index > 0 and tokens[index - 1].ends_phrase
            inside = pause_start <= starts[index] < pause_end
            near = phrase_start and abs(starts[index] - pause_end) <= SNAP_S
            # A phrase's first word does not begin before a pause and run on through it: when
            # the warp leaves a pause inside the word (human pauses between sentences are
            # longer than the synthesizer's), the phrase begins where speech resumes.
            following = starts[index + 1] if index + 1 < len(tokens) else speech_end
            spans_pause = phrase_start and starts[index] < pause_start and pause_end <= following
            if inside or near or spans_pause:
                starts[index] = pause_end
    starts = np.maximum.accumulate(starts)
    ends = np.append(starts[1:], max(speech_end, starts[-1] + 0.2))
    for pause_start, pause_end in pauses:
        for index in range(len(tokens)):
            if starts[index] < pause_start and ends[index] >= pause_end:
                ends[index] = pause_start  # a word does not run on through the silence after it
    return [TimedToken(token, float(s), float(max(e, s))) for token, s, e in zip(tokens, starts, ends, strict=False)]
