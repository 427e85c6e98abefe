"""The numpy speech-activity detector against silero-vad's own torch model, on real speech."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sonic_model.audio import (
    VAD_FEATURE_BLOCK,
    AudioClip,
    load_audio,
    speech_probabilities,
    speech_segments,
)

FIXTURES = Path(__file__).parent / "fixtures"
SPEECH = sorted(FIXTURES.glob("speech_*"))


@pytest.fixture(scope="module")
def silero():
    torch = pytest.importorskip("torch")
    from silero_vad import get_speech_timestamps, load_silero_vad

    return torch, load_silero_vad(), get_speech_timestamps


@pytest.mark.parametrize("path", SPEECH, ids=lambda path: path.name)
def test_same_probabilities_and_segments_as_silero(path, silero):
    torch, model, get_speech_timestamps = silero
    clip = load_audio(path)
    samples = torch.from_numpy(clip.samples)
    model.reset_states()
    reference = []
    for start in range(0, len(samples), 512):
        chunk = torch.nn.functional.pad(samples[start : start + 512], (0, max(0, start + 512 - len(samples))))
        reference.append(model(chunk, 16000).item())
    ours = speech_probabilities(clip.samples)
    assert ours.shape == (len(reference),)
    assert np.abs(ours - np.array(reference)).max() < 1e-3
    timestamps = get_speech_timestamps(
        samples, model, sampling_rate=16000, min_silence_duration_ms=100, min_speech_duration_ms=100
    )
    expected = [(t["start"] / 16000, t["end"] / 16000) for t in timestamps]
    assert speech_segments(clip) == expected
    assert expected, "the fixture holds speech"


def test_a_clip_longer_than_one_encoder_block_matches_silero(silero):
    # the encoder runs on blocks of VAD_FEATURE_BLOCK chunks (flat memory): the seams must not show
    torch, model, _ = silero
    names = ["speech_en_16k.wav", "speech_en_pause_16k.wav", "speech_zh_16k.flac"]
    samples = np.concatenate([load_audio(FIXTURES / name).samples for name in names])
    assert len(samples) > 2 * VAD_FEATURE_BLOCK * 512, "the clip spans more than two blocks"
    model.reset_states()
    tensor = torch.from_numpy(samples)
    reference = []
    for start in range(0, len(samples), 512):
        chunk = torch.nn.functional.pad(tensor[start : start + 512], (0, max(0, start + 512 - len(samples))))
        reference.append(model(chunk, 16000).item())
    assert np.abs(speech_probabilities(samples) - np.array(reference)).max() < 1e-3


def test_silence_and_noise_have_no_speech():
    rng = np.random.default_rng(0)
    assert speech_segments(AudioClip(np.zeros(16000, np.float32))) == []
    assert speech_segments(AudioClip((0.01 * rng.standard_normal(16000)).astype(np.float32))) == []


def test_other_sample_rates_are_refused():
    with pytest.raises(ValueError, match="16000 Hz"):
        speech_segments(AudioClip(np.zeros(8000, np.float32), sample_rate=8000))


def test_speech_segments_do_not_import_torch():
    code = (
        "import sys; from sonic_model.audio import load_audio, speech_segments; "
        f"print(speech_segments(load_audio({str(SPEECH[0])!r}))); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
