"""Acoustic phonetics for the preview's mouth: vowel shape and lip closures from the sound alone.

No speech model: every cue is a textbook acoustic correlate of what the lips and jaw do, read
every 10 ms from the audio.

- **Formants** (LPC, order 12 on 10 kHz audio, roots of the predictor polynomial): F1 rises as
  the jaw opens ("ee"/"oo" ~300 Hz, "ah" ~750 Hz); F2 and F3 fall when the lips round, because
  rounding lengthens the vocal tract ("ee" F2 ~2300 Hz, "oo" ~850-1500 Hz, "oh" ~850 Hz). The
  rounding cue is F2 + F3, so a fronted English "oo" (F2 ~1500 Hz, but F3 ~20 % below an
  "ee"'s) still rounds.
- **Speaker scale**: formants of women and children are ~15-20 % higher than men's for the same
  vowel; the median pitch of the voice within a second of each moment sets a scale factor
  (pitch ratio to the 0.2 power, capped), so one set of thresholds serves both. A sustained
  vowel is judged on its own, never against the clip's average (which would make a clip of
  "oooo" neutral).
- **Lip closures** ("m", "b", "p"): a stop closure is a stretch of near-silence (or of a voice
  bar / nasal murmur: energy almost only below 500 Hz) between louder sounds. It is *labial*
  when the neighbouring vowels' F2 dips towards it (the lips lengthen the front cavity: the
  labial "locus" is low) or when the release burst that follows it is weak and low in
  frequency (a "t" burst is bright, above 3 kHz; a "k" burst is compact around 2-3 kHz).

Limits (documented in the README): "n"/"ng" murmurs next to back vowels can look labial (both
lower F2) and then close the lips; "f"/"v" (lower lip to teeth) are not detected; formants are
unreliable in whispers, creaky voice, music or noise, where the mouth falls back to loudness
alone; pitch is a rough guide to vocal-tract length (a deep female or a high male voice is
scaled a little wrong).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ANALYSIS_RATE = 10_000  # Hz: formants up to ~4.5 kHz, enough for F1-F3 of any adult voice
HOP_S = 0.010
WINDOW_S = 0.030
LPC_ORDER = 12
PRE_EMPHASIS = 0.97
BLOCK = 512  # analysis steps per vectorised block: its arrays (~20 kB a step) stay the same size for any clip
FFT_SIZE = 512
# A step is voiced when its normalised autocorrelation peaks above this at a pitch lag.
VOICING_THRESHOLD = 0.45
PITCH_RANGE_HZ = (60.0, 400.0)
# Speaker scale: (median pitch / REFERENCE_PITCH_HZ) ** PITCH_EXPONENT, clipped to SCALE_RANGE.
REFERENCE_PITCH_HZ = 120.0
PITCH_EXPONENT = 0.2
SCALE_RANGE = (0.95, 1.25)
# The pitch behind the scale is the median over this much voice either side of each step.
SPEAKER_WINDOW_S = 1.0
# Jaw opening from F1 (Hz, speaker-scaled): closed vowels at the low edge, "ah" at the high one.
F1_CLOSED_HZ, F1_OPEN_HZ = 330.0, 720.0
# Rounding/spreading from F2 + F3 (Hz, speaker-scaled): neutral at ROUNDING_CENTRE_HZ, and
# ROUNDING_OCTAVES octaves either side saturate the tanh.
ROUNDING_CENTRE_HZ = 4500.0
ROUNDING_OCTAVES = 0.17
# Open vowels are never rounded by this cue ("ah" has a low F2 too): F1 above this fades it out.
ROUND_F1_FADE_HZ = (560.0, 760.0)
# Closures: steps this far below the local speech level are silent (stop closures) ...
SILENT_BELOW_DB = 25.0
# ... or murmurs/voice bars: this far below, with this share of energy under 500 Hz.
MURMUR_BELOW_DB = 6.0
MURMUR_LOW_SHARE = 0.8
CLOSURE_S = (0.02, 0.25)  # shorter is a glitch, longer is a pause (shut by the speech gate)
# Before a labial burst that ends a pause, the lips are shown shut for this long.
PAUSE_LEAD_S = 0.06
LOCAL_LEVEL_S = 0.25  # the local speech level is the loudest step within this distance
# Labial evidence: F2 must dip by this fraction towards the closure ...
LABIAL_F2_DIP = 0.05
# ... or the release burst's spectral centroid must stay under this (Hz).
LABIAL_BURST_CENTROID_HZ = 2200.0


@dataclass(frozen=True)
class Phonetics:
    """Per-10 ms analysis of a clip. Formants are NaN where they cannot be measured."""

    times: np.ndarray  # centre of each step (s)
    level_db: np.ndarray
    low_share: np.ndarray  # energy share under 500 Hz
    centroid_hz: np.ndarray  # spectral centroid 60 Hz - 5 kHz
    voiced: np.ndarray  # bool
    f1: np.ndarray
    f2: np.ndarray
    f3: np.ndarray
    speaker_scale: np.ndarray  # formant scale of the voice relative to an adult male's


def analyse(samples: np.ndarray, sample_rate: int) -> Phonetics:
    """Formants, voicing, level and spectral shape every `HOP_S` seconds."""
    audio = _resample(np.asarray(samples, np.float32), sample_rate)
    window = round(WINDOW_S * ANALYSIS_RATE)
    hop = round(HOP_S * ANALYSIS_RATE)
    count = max(1, int(np.ceil(len(audio) / hop)))
    padded = np.concatenate([np.zeros(window // 2, np.float32), audio, np.zeros(window, np.float32)])
    frames_raw = np.lib.stride_tricks.sliding_window_view(padded, window)[::hop][:count]
    taper = np.hamming(window).astype(np.float32)
    freqs = np.fft.rfftfreq(FFT_SIZE, 1.0 / ANALYSIS_RATE)
    # pre-emphasis (first difference) applied in the frequency domain, for the LPC
    emphasis = np.abs(1.0 - PRE_EMPHASIS * np.exp(-2j * np.pi * freqs / ANALYSIS_RATE)) ** 2
    band = (freqs >= 60) & (freqs < 5000)
    low = band & (freqs < 500)
    lags = np.arange(int(ANALYSIS_RATE / PITCH_RANGE_HZ[1]), int(ANALYSIS_RATE / PITCH_RANGE_HZ[0]) + 1)
    taper_power = np.abs(np.fft.rfft(taper.astype(np.float64), n=FFT_SIZE)) ** 2
    taper_autocorr = np.fft.irfft(taper_power, n=FFT_SIZE)
    taper_autocorr = taper_autocorr[lags] / taper_autocorr[0]
    names = ("level", "low", "centroid", "voicing", "pitch", "f1", "f2", "f3")
    columns = {name: np.full(count, np.nan, np.float64) for name in names}
    for first in range(0, count, BLOCK):
        block = slice(first, min(first + BLOCK, count))
        raw = frames_raw[block].astype(np.float64)
        power = np.abs(np.fft.rfft(raw * taper, n=FFT_SIZE, axis=1)) ** 2
        total = power[:, band].sum(axis=1) + 1e-12
        columns["level"][block] = 10 * np.log10(np.mean(raw * raw, axis=1) + 1e-12)
        columns["low"][block] = power[:, low].sum(axis=1) / total
        columns["centroid"][block] = power[:, band] @ freqs[band] / total
        # voicing and pitch: normalised autocorrelation at pitch lags, from the same spectrum
        # (FFT_SIZE >= window + longest lag, so it is not circular), divided by the window's own
        # autocorrelation so a periodic signal scores ~1 at its period (Boersma 1993)
        autocorr = np.fft.irfft(power, n=FFT_SIZE, axis=1)
        normalised = autocorr[:, lags] / (autocorr[:, :1] + 1e-12) / taper_autocorr
        peak = normalised.max(axis=1)
        # the shortest lag within 90 % of the peak: the period, not a multiple of it
        best = np.argmax(normalised >= 0.9 * peak[:, None], axis=1)
        columns["voicing"][block] = peak
        columns["pitch"][block] = ANALYSIS_RATE / lags[best]
        candidates = np.flatnonzero(peak > VOICING_THRESHOLD)  # formants only where voiced
        if candidates.size:
            formants = _formants(power[candidates] * emphasis)
            for index, name in enumerate(("f1", "f2", "f3")):
                columns[name][first + candidates] = formants[:, index]
    level = columns["level"]
    loud = level > np.percentile(level, 95) - 35.0 if count else np.zeros(0, bool)
    voiced = (columns["voicing"] > VOICING_THRESHOLD) & loud
    pitch = _local_median(np.where(voiced, columns["pitch"], np.nan), round(SPEAKER_WINDOW_S / HOP_S))
    scale = np.clip((pitch / REFERENCE_PITCH_HZ) ** PITCH_EXPONENT, *SCALE_RANGE)
    unvoiced = ~voiced
    for name in ("f1", "f2", "f3"):
        columns[name][unvoiced] = np.nan
    times = (np.arange(count) * hop) / ANALYSIS_RATE
    return Phonetics(
        times=times,
        level_db=level.astype(np.float32),
        low_share=columns["low"].astype(np.float32),
        centroid_hz=columns["centroid"].astype(np.float32),
        voiced=voiced,
        f1=columns["f1"].astype(np.float32),
        f2=columns["f2"].astype(np.float32),
        f3=columns["f3"].astype(np.float32),
        speaker_scale=scale.astype(np.float32),
    )


def _local_median(values: np.ndarray, reach: int, block: int = 25) -> np.ndarray:
    """Median of the finite values within about `reach` steps of each step (in blocks, so fast).

    Where there are none nearby, the clip's median; with none at all, `REFERENCE_PITCH_HZ`.
    """
    finite = np.isfinite(values)
    overall = float(np.median(values[finite])) if finite.sum() >= 3 else REFERENCE_PITCH_HZ
    blocks = -(-len(values) // block)
    span = max(1, reach // block)
    result = np.full(len(values), overall)
    for index in range(blocks):
        window = values[max(0, (index - span) * block) : (index + span + 1) * block]
        window = window[np.isfinite(window)]
        if window.size >= 3:
            result[index * block : (index + 1) * block] = np.median(window)
    return result


def _resample(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate == ANALYSIS_RATE:
        return samples
    import soxr

    return soxr.resample(samples, sample_rate, ANALYSIS_RATE, quality="MQ").astype(np.float32)


def _formants(power: np.ndarray) -> np.ndarray:
    """F1-F3 (Hz) by LPC from pre-emphasised power spectra [N, FFT_SIZE // 2 + 1]; NaN where not found."""
    order = LPC_ORDER
    autocorr = np.fft.irfft(power, n=FFT_SIZE, axis=1)[:, : order + 1]
    energy = autocorr[:, 0]
    autocorr[:, 0] = energy * (1.0 + 1e-4) + 1e-12  # white-noise correction: well-posed solves
    toeplitz = autocorr[:, np.abs(np.arange(order)[:, None] - np.arange(order)[None, :])]
    coefficients = np.linalg.solve(toeplitz, autocorr[:, 1:, None])[..., 0]
    # roots of 1 - sum a_k z^-k: eigenvalues of the companion matrix
    companion = np.zeros((len(power), order, order))
    companion[:, 0, :] = coefficients
    companion[:, np.arange(1, order), np.arange(order - 1)] = 1.0
    roots = np.linalg.eigvals(companion)
    frequency = np.angle(roots) * ANALYSIS_RATE / (2 * np.pi)
    bandwidth = -np.log(np.abs(roots) + 1e-12) * ANALYSIS_RATE / np.pi
    usable = (frequency > 200) & (frequency < ANALYSIS_RATE / 2 - 300) & (bandwidth < 450)
    frequency = np.sort(np.where(usable, frequency, np.inf), axis=1)[:, :3]
    return np.where(np.isfinite(frequency), frequency, np.nan)


def jaw_openness(ph: Phonetics) -> np.ndarray:
    """0 (close vowel: "ee", "oo") .. 1 (open: "ah") per step, from F1; NaN but on vowels."""
    return np.where(_vowel_like(ph), _smoothstep(F1_CLOSED_HZ, F1_OPEN_HZ, ph.f1 / ph.speaker_scale), np.nan)


def lip_rounding(ph: Phonetics) -> np.ndarray:
    """-1 (rounded: "oo", "oh", "w") .. 1 (spread: "ee", "ay") per step; NaN but on vowels."""
    effective = (ph.f2 + ph.f3) / ph.speaker_scale
    shape = np.tanh(np.log2(effective / ROUNDING_CENTRE_HZ) / ROUNDING_OCTAVES)
    open_vowel = _smoothstep(*ROUND_F1_FADE_HZ, ph.f1 / ph.speaker_scale)
    shape = np.where(shape < 0, shape * (1.0 - open_vowel), shape)
    return np.where(_vowel_like(ph), shape, np.nan)


def _closure_masks(ph: Phonetics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per step: silent (a stop closure or a pause), murmur (nasal or voice bar), loud (speech)."""
    level = ph.level_db.astype(np.float64)
    reach = max(1, round(LOCAL_LEVEL_S / HOP_S))
    local = _running_max(level, reach) if len(level) else level
    loud = level > (np.percentile(level, 95) - 30.0 if len(level) else 0.0)
    silent = (level < local - SILENT_BELOW_DB) | ~loud
    murmur = (level < local - MURMUR_BELOW_DB) & (ph.low_share >= MURMUR_LOW_SHARE) & ~silent
    return silent, murmur, loud


def _vowel_like(ph: Phonetics) -> np.ndarray:
    """Voiced steps that are neither a closure nor a murmur (whose formants are not the lips')."""
    silent, murmur, _ = _closure_masks(ph)
    return ph.voiced & ~silent & ~murmur


def labial_closures(ph: Phonetics) -> list[tuple[float, float]]:
    """Intervals (s) where the lips are shut for "m", "b" or "p" (see the module docstring).

    - a near-silent stop closure or a murmur between two louder sounds is labial when F2 dips
      towards it or when a weak, low release burst follows it;
    - a murmur right after or before a pause ("my ...", "... them") is taken as lips shut: the
      mouth is closed in the pause anyway, and opens (or closes) at the vowel;
    - a pause that ends in a weak, low burst ("p" after a breath) shuts the lips just before it.
    """
    steps = len(ph.level_db)
    if steps < 3:
        return []
    reach = max(1, round(LOCAL_LEVEL_S / HOP_S))
    silent, murmur, loud = _closure_masks(ph)
    shortest, longest = (round(limit / HOP_S) for limit in CLOSURE_S)
    lead = round(PAUSE_LEAD_S / HOP_S)
    closures = []
    for start, end in runs(silent | murmur):
        pause = silent[start:end].sum() > longest  # a breath or a pause, not a stop closure
        has_silence = bool(silent[start:end].any())
        if pause:
            # the murmurs at either edge of the pause, and the lips before a labial burst
            for run_start, run_end in runs(murmur[start:end]):
                if shortest <= run_end - run_start <= longest and (run_start == 0 or run_end == end - start):
                    closures.append((start + run_start, start + run_end))
            if end < steps and _labial_burst(ph, start, end):
                closures.append((max(start, end - lead), end))
            continue
        if not (shortest <= end - start <= longest):
            continue
        before = start > 0 and loud[max(0, start - reach) : start].any()
        after = end < steps and loud[end : end + reach].any()
        if before and after:
            if _f2_dips_towards(ph, start, end) or (has_silence and _labial_burst(ph, start, end)):
                closures.append((start, end))
        elif murmur[start:end].any():
            closures.append((start, end))
    half = HOP_S / 2
    return [(float(ph.times[start] - half), float(ph.times[end - 1] + half)) for start, end in sorted(closures)]


def _f2_dips_towards(ph: Phonetics, start: int, end: int) -> bool:
    """F2 is lower 20-40 ms from the closure than 60-90 ms from it, on at least one voiced side
    (and does not clearly rise towards it on the other). The step right at the edge is skipped:
    its formants are those of the change itself."""
    dips = []
    for side in (-1, 1):
        edge = start - 1 if side < 0 else end
        near_f2 = _nanmedian(ph.f2, edge + side * 1, edge + side * 3)
        far_f2 = _nanmedian(ph.f2, edge + side * 6, edge + side * 9)
        if np.isfinite(near_f2) and np.isfinite(far_f2) and far_f2 > 0:
            dips.append((far_f2 - near_f2) / far_f2)
    return bool(dips) and max(dips) >= LABIAL_F2_DIP and min(dips) > -2 * LABIAL_F2_DIP


def _labial_burst(ph: Phonetics, start: int, end: int) -> bool:
    """The closure ends in a sudden, weak, low-frequency release (a "p"/"b" burst)."""
    release = slice(end, min(end + 2, len(ph.times)))
    if release.start >= release.stop:
        return False
    rise = float(ph.level_db[release].max() - ph.level_db[start:end].min())
    return rise >= 10.0 and float(ph.centroid_hz[release].max()) < LABIAL_BURST_CENTROID_HZ


def _nanmedian(values: np.ndarray, a: int, b: int) -> float:
    lo, hi = sorted((a, b))
    lo, hi = max(lo, 0), min(hi + 1, len(values))
    chunk = values[lo:hi]
    chunk = chunk[np.isfinite(chunk)]
    return float(np.median(chunk)) if chunk.size else float("nan")


def _running_max(values: np.ndarray, reach: int) -> np.ndarray:
    padded = np.pad(values, reach, mode="edge")
    return np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1).max(axis=1)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs of a boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=False))


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((np.asarray(x, np.float64) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
