"""Sync figures do not depend on the sound's level (issue 13).

A pure gain cannot change a Pearson correlation, but the speech frames it is taken over come
from the VAD, whose probabilities move with the level; and the limiter that normalisation needs
for a peaky script changes the envelope itself (a 20 ms hold lowered whole syllables). QA now
measures at a reference level and the limiter acts on the peaks only, so one render normalised
to -14 LUFS and the same render at the script's level get the same sync figures.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sonic_model.audio import load_audio
from sonic_model.generators import RenderParams, create_generator
from sonic_model.image import load_image
from sonic_model.qa import check_video
from sonic_model.render import render_video

HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
# espeak at 48 kHz stereo: peaky enough that normalising it needs ~5 dB of limiting, and both
# renders then carry the same AAC format (48 kHz stereo), so only the level and the limiter differ.
# With the old 20 ms limiter the two measured 0.27 and 0.34 (QA's minimum is 0.3).
SPEECH = HOSTILE / "audio_48k_stereo.wav"
PORTRAIT = HOSTILE / "image_cmyk.jpg"
MONO_SPEECH = HOSTILE / "speech_ok.wav"  # espeak at 22.05 kHz mono
# A manual lip-sync delay (under a frame): both renders re-time their sound the same way.
DELAY_MS = 20.0


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    root = tmp_path_factory.mktemp("sync-level")
    generator = create_generator("preview")
    normalised = render_video(
        generator, PORTRAIT, SPEECH, root / "normalised.mp4", RenderParams(min_resolution=256, av_offset_ms=DELAY_MS)
    )
    script_level = render_video(
        generator,
        PORTRAIT,
        SPEECH,
        root / "script_level.mp4",
        RenderParams(min_resolution=256, av_offset_ms=DELAY_MS, loudness_target="off"),
    )
    return root, normalised, script_level


def _sync(path: Path):
    return check_video(path, load_image(PORTRAIT), load_audio(SPEECH))


def test_normalised_and_script_level_renders_get_the_same_sync_figures(renders):
    root, normalised, script_level = renders
    assert normalised.loudness["limited_db"] > 3  # espeak's peaks: the limiter had real work here
    loud, quiet = _sync(root / "normalised.mp4"), _sync(root / "script_level.mp4")
    assert loud.figures["loudness_lufs"] - quiet.figures["loudness_lufs"] > 3
    # Each file carries its own AAC encode of a differently limited sound: close, not equal
    # (0.030 apart with the limiter's ceiling at -2 dBTP before the encode, 0.017 at -1.5; the
    # 20 ms limiter hold this guards against made it 0.07).
    assert loud.figures["sync_correlation"] == pytest.approx(quiet.figures["sync_correlation"], abs=0.04)
    assert loud.figures["av_offset_frames"] == quiet.figures["av_offset_frames"]
    assert loud.passed, loud.failures
    assert quiet.passed, quiet.failures


def test_a_louder_or_quieter_copy_of_a_video_gets_the_same_sync_figures(renders):
    root, _, _ = renders
    figures = {}
    for gain_db in (0, -20, -35):
        copy = root / f"gain{gain_db}.mp4"
        # lossless (ALAC, 24 bit) so that the gain is all that differs
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(root / "normalised.mp4"), "-c:v", "copy"]
            + ["-af", f"volume={gain_db}dB", "-c:a", "alac", "-sample_fmt", "s32p", str(copy)],
            check=True,
        )
        qa = _sync(copy)
        figures[gain_db] = (qa.figures["sync_correlation"], qa.figures["av_offset_frames"], qa.speech_series)
    assert figures[-20][2] == figures[0][2] and figures[-35][2] == figures[0][2]  # the same speech frames
    for gain_db in (-20, -35):
        assert figures[gain_db][0] == pytest.approx(figures[0][0], abs=1e-3)
        assert figures[gain_db][1] == figures[0][1]


def _audio_format(path: Path) -> str:
    return subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=codec_name,sample_rate,channels"]
        + ["-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_a_rendition_of_a_script_level_render_is_48_khz_stereo_even_when_re_timed(tmp_path):
    out = tmp_path / "talk.mp4"
    params = RenderParams(min_resolution=256, av_offset_ms=DELAY_MS, loudness_target="off", renditions=("square",))
    result = render_video(create_generator("preview"), HOSTILE / "portrait_ok.jpg", MONO_SPEECH, out, params)
    assert result.av_offset_applied_ms == DELAY_MS  # the sound was re-timed (re-encoded)
    (square,) = result.renditions
    assert _audio_format(Path(square["path"])) == "aac,48000,2"
    assert _audio_format(out) == "aac,22050,1"  # the master at "off" keeps the script's own rate and channels
