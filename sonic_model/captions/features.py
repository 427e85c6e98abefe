"""MFCC frames for alignment (numpy + scipy; the aeneas method's features), with silence made alike.

Digital silence from the synthesizer and room noise in a recording have very different cepstra;
left alone, DTW would pay for every pause. Frames quieter than `SILENCE_DB` under the loudest
frame become one shared "silence" vector (zeros after per-recording normalisation), so pauses of
any length in either signal match each other at no cost.
"""

from __future__ import annotations

import numpy as np
from scipy.fft import dct, rfft

SAMPLE_RATE = 16_000
HOP_S = 0.02  # 20 ms frames: a quarter of the 80 ms median-error target
WINDOW_S = 0.04
N_MELS = 40
# c1..c6 are kept: c0 (level) differs between voices, not between words, and the higher
# coefficients carry the voice's fine spectral detail more than the phone (with c1..c12 a correct
# script on a LibriVox reader scored no better than another passage's: caption_human_speech.py).
N_COEFFS = 7
SILENCE_DB = -35.0
BLOCK_FRAMES = 2000  # 40 s of frames a block: memory stays flat with the script's length
# Deltas (the slope of each cepstral coefficient) join the frame: they describe how the sound
# moves from one phone to the next, which a synthetic and a human voice share more than their
# spectra. On the LibriVox set they widen the gap between right and wrong scripts
# (benchmarks/caption_human_speech.py).
WITH_DELTAS = True


def _mel_filters(n_fft: int, sample_rate: int) -> np.ndarray:
    def to_mel(hz):
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    edges_mel = np.linspace(to_mel(80.0), to_mel(7600.0), N_MELS + 2)
    edges_hz = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    filters = np.zeros((N_MELS, len(bins)), np.float32)
    for index in range(N_MELS):
        low, centre, high = edges_hz[index : index + 3]
        rising = (bins - low) / (centre - low)
        falling = (high - bins) / (high - centre)
        filters[index] = np.maximum(0.0, np.minimum(rising, falling))
    return filters


def frame_count(n_samples: int) -> int:
    return max(1, int(np.ceil(n_samples / (HOP_S * SAMPLE_RATE))))


def mfcc_frames(samples: np.ndarray, speech: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(features [frames, dims] float32, voiced mask [frames]) of 16 kHz mono samples, one frame per HOP_S.

    `speech` (a mask per frame, from a voice activity detector) narrows the voiced frames: a
    recording's room noise can be louder than `SILENCE_DB` under its speech (one LibriVox
    sentence has its noise floor 21-27 dB under its loudest frame) and would otherwise be matched
    as if it were speech.
    """
    hop = int(HOP_S * SAMPLE_RATE)
    window = int(WINDOW_S * SAMPLE_RATE)
    n_frames = frame_count(len(samples))
    padded = np.zeros(n_frames * hop + window, np.float32)
    padded[window // 2 : window // 2 + len(samples)] = samples
    strides = (padded.strides[0] * hop, padded.strides[0])
    frames = np.lib.stride_tricks.as_strided(padded, (n_frames, window), strides)
    taper = np.hanning(window).astype(np.float32)
    n_fft = 1 << (window - 1).bit_length()
    filters = _mel_filters(n_fft, SAMPLE_RATE).T
    cepstra = np.empty((n_frames, N_COEFFS - 1), np.float32)
    energy_db = np.empty(n_frames, np.float64)
    # A block of frames at a time: the spectra of a 10-minute script at once were ~0.4 GB.
    for start in range(0, n_frames, BLOCK_FRAMES):
        block = frames[start : start + BLOCK_FRAMES]
        block = (block - block.mean(axis=1, keepdims=True)) * taper
        power = np.abs(rfft(block, n_fft, axis=1)) ** 2
        energy_db[start : start + len(block)] = 10.0 * np.log10(power.sum(axis=1) + 1e-12)
        mel = power @ filters
        cepstra[start : start + len(block)] = dct(np.log(mel + 1e-8), type=2, axis=1, norm="ortho")[:, 1:N_COEFFS]
    voiced = energy_db > energy_db.max() + SILENCE_DB
    if speech is not None:
        voiced &= speech[:n_frames] if len(speech) >= n_frames else np.pad(speech, (0, n_frames - len(speech)))
    if voiced.any():
        mean = cepstra[voiced].mean(axis=0)
        std = cepstra[voiced].std(axis=0) + 1e-6
        cepstra = (cepstra - mean) / std
    cepstra[~voiced] = 0.0
    if WITH_DELTAS:
        deltas = np.gradient(cepstra, axis=0).astype(np.float32) * 2.0
        deltas[~voiced] = 0.0
        cepstra = np.concatenate([cepstra, deltas], axis=1)
    return cepstra, voiced
