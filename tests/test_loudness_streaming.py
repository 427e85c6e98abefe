"""The loudness normaliser works a block at a time (issue 13): same result as the whole-array
version, memory flat with the script's length, and a proper downmix of surround scripts."""

from __future__ import annotations

import shutil
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile

from sonic_model.loudness import (
    OUTPUT_SAMPLE_RATE,
    TRUE_PEAK_CEILING_DBTP,
    decode_for_delivery,
    normalise_loudness,
    normalise_stream,
    normalised_samples,
)
from sonic_model.loudness_meter import LoudnessMeter, integrated_loudness, true_peak_dbtp
from tests import loudness_reference as reference

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def espeak_speech(tmp_path_factory) -> Path:
    """Real synthesized speech (espeak-ng: peaky glottal pulses, the limiter has work to do)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    path = tmp_path_factory.mktemp("espeak") / "speech.wav"
    text = "The quick brown fox jumps over the lazy dog. Peter Piper picked a peck of pickled peppers."
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), text], check=True, capture_output=True)
    return path


@pytest.mark.parametrize("source", ["espeak", "speech_de_48k_stereo.wav", "speech_es_44k.mp3"])
def test_streamed_normalisation_gives_the_whole_array_result(espeak_speech, source):
    path = espeak_speech if source == "espeak" else FIXTURES / source
    samples = decode_for_delivery(path)
    expected, expected_report = reference.normalised_samples(samples, OUTPUT_SAMPLE_RATE, -14.0)
    output, report = normalised_samples(samples, OUTPUT_SAMPLE_RATE, -14.0)
    assert output.shape == expected.shape
    assert np.abs(output - expected).max() < 1e-5
    for name, value in expected_report.as_dict().items():
        assert getattr(report, name) == pytest.approx(value, abs=0.05), name
    # and measured on the result, independently of either report
    assert integrated_loudness(output, OUTPUT_SAMPLE_RATE) == pytest.approx(
        reference.integrated_loudness(expected, OUTPUT_SAMPLE_RATE), abs=0.05
    )
    assert true_peak_dbtp(output) == pytest.approx(
        20 * np.log10(reference.true_peak_envelope(expected).max()), abs=0.05
    )
    assert true_peak_dbtp(output) <= TRUE_PEAK_CEILING_DBTP


def test_the_written_file_is_the_streamed_result(espeak_speech, tmp_path):
    out = tmp_path / "normalised.wav"
    report = normalise_loudness(espeak_speech, out, -16.0)
    written, rate = soundfile.read(out, dtype="float32", always_2d=True)
    expected, _ = normalised_samples(decode_for_delivery(espeak_speech), OUTPUT_SAMPLE_RATE, -16.0)
    assert rate == OUTPUT_SAMPLE_RATE and written.shape == expected.shape
    assert np.array_equal(written, expected)
    assert report.limited_db > 0  # espeak's peaks: the limiter acted (the streamed limiter was exercised)


def _synthetic_speech(seconds: float, rate: int = OUTPUT_SAMPLE_RATE, chunk: int = 12_345):
    """A replay of `seconds` of syllable-modulated noise with a sharp peak every 250 ms (the limiter's
    work), stereo, generated a chunk at a time."""

    def replay():
        rng = np.random.default_rng(7)
        total = int(seconds * rate)
        for start in range(0, total, chunk):
            t = (start + np.arange(min(chunk, total - start))) / rate
            level = 0.05 * (1.2 + np.sin(2 * np.pi * 3 * t))
            voice = level * rng.standard_normal(len(t))
            voice[(start + np.arange(len(t))) % (rate // 4) == 0] = 0.9
            yield np.stack([voice, 0.8 * voice], axis=1).astype(np.float32)

    return replay


class SampleCounter:
    """A sink that only counts what it was given (holding the blocks would be the growth we test for)."""

    def __init__(self) -> None:
        self.samples = 0

    def add(self, block: np.ndarray) -> None:
        self.samples += len(block)


def test_memory_stays_flat_with_the_scripts_length():
    normalise_stream(_synthetic_speech(2), OUTPUT_SAMPLE_RATE, -14.0, lambda block: None)  # imports, caches
    peaks, reports = {}, {}
    for seconds in (10, 61):
        written = SampleCounter()
        tracemalloc.start()
        try:
            reports[seconds] = normalise_stream(_synthetic_speech(seconds), OUTPUT_SAMPLE_RATE, -14.0, written.add)
            peaks[seconds] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert written.samples == int(seconds * OUTPUT_SAMPLE_RATE)
    # 61 s of 48 kHz stereo float is 23 MB (and its 4x oversampled copy 94 MB): none of it is held.
    assert peaks[61] < 1.1 * peaks[10], peaks
    assert peaks[61] - peaks[10] < 1 << 20, peaks
    assert reports[61].limited_db > 0 and reports[61].output_lufs == pytest.approx(-14.0, abs=0.1)


def test_surround_is_mixed_down_with_ffmpegs_stereo_matrix(tmp_path):
    """A 5.1 script: L gets FL + centre + left surround, R the right side (LFE dropped), as `ffmpeg -ac 2`."""
    surround = tmp_path / "surround.wav"
    tones = {"FL": 300, "FR": 500, "FC": 700, "LFE": 60, "BL": 900, "BR": 1100}
    inputs = []
    for frequency in tones.values():
        inputs += ["-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate=48000:duration=2"]
    channels = "".join(f"[{index}:a]" for index in range(len(tones)))
    mapping = "|".join(f"{index}.0-{name}" for index, name in enumerate(tones))
    mix = f"{channels}join=inputs=6:channel_layout=5.1:map={mapping}[out]"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            *inputs,
            "-filter_complex",
            mix,
            "-map",
            "[out]",
            "-c:a",
            "pcm_f32le",
            str(surround),
        ],
        check=True,
    )
    assert soundfile.info(surround).channels == 6
    stereo = decode_for_delivery(surround)
    by_ffmpeg = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(surround), "-ac", "2", "-f", "f32le", "-"], check=True, capture_output=True
    ).stdout
    by_ffmpeg = np.frombuffer(by_ffmpeg, np.float32).reshape(-1, 2)
    assert stereo.shape == by_ffmpeg.shape
    assert np.abs(stereo - by_ffmpeg).max() < 1e-4

    def level(channel: np.ndarray, frequency: float) -> float:
        spectrum = np.abs(np.fft.rfft(channel * np.hanning(len(channel))))
        return float(spectrum[round(frequency * len(channel) / OUTPUT_SAMPLE_RATE)])

    left, right = stereo[:, 0], stereo[:, 1]
    # (the old mean of all channels put every one of them on both sides at 1/6)
    for name in ("FL", "BL"):
        assert level(left, tones[name]) > 100 * level(right, tones[name]), name
    for name in ("FR", "BR"):
        assert level(right, tones[name]) > 100 * level(left, tones[name]), name
    assert level(left, tones["FC"]) == pytest.approx(level(right, tones["FC"]), rel=1e-3)  # centre on both sides
    assert level(left, tones["FC"]) < 0.8 * level(left, tones["FL"])  # at -3 dB against the front
    assert level(left, tones["LFE"]) < 1e-3 * level(left, tones["FL"])  # no LFE in the stereo mix


@pytest.mark.parametrize("length", [19_200, 65_536, 65_536 + 37, 3 * 65_536 + 500])
def test_block_edges_and_signal_ends_change_nothing(length):
    """Peaks on the first and last sample and lengths around the 65536-sample blocks: the same as whole."""
    rng = np.random.default_rng(length)
    samples = (0.05 * rng.standard_normal((length, 2))).astype(np.float32)
    samples[0], samples[length // 3], samples[-1] = 0.9, 0.95, -0.9
    expected, expected_report = reference.normalised_samples(samples, OUTPUT_SAMPLE_RATE, -14.0)
    output, report = normalised_samples(samples, OUTPUT_SAMPLE_RATE, -14.0)
    assert np.abs(output - expected).max() < 1e-6
    assert report == expected_report and report.limited_db > 3


@pytest.mark.parametrize("rate", [11_025, 22_050, 44_100])
def test_the_meter_fed_in_odd_chunks_measures_what_the_whole_array_does(rate):
    """QA meters tracks at their own rate; at 11025 Hz a 400 ms block is not four 100 ms hops."""
    rng = np.random.default_rng(rate)
    ramp = np.linspace(0, 1, 3 * rate + 123)[:, np.newaxis]
    samples = (0.05 * rng.standard_normal((3 * rate + 123, 2)) * ramp).astype(np.float32)
    meter = LoudnessMeter(rate)
    for start in range(0, len(samples), 777):
        meter.add(samples[start : start + 777])
    assert meter.integrated() == pytest.approx(reference.integrated_loudness(samples, rate), abs=1e-9)
