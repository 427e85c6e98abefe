"""Inputs as people hand them in: phone photos, scripts recorded on video, container timing.

Every fixture is made here from the committed public-domain portraits and espeak-ng speech:
HEIC with pillow-heif, AVIF with Pillow, videos with the ffmpeg the project itself uses
(imageio-ffmpeg's). Sound is compared with its source by cross-correlation, so "starts where
it should" is measured to the sample, not assumed.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from PIL import Image

from manifests import ManifestRow
from sonic_model.audio import declared_audio_seconds, decode_audio_stream, load_audio
from sonic_model.encode import FPS, VideoWriter, ffmpeg_executable
from sonic_model.errors import AudioError, ImageError
from sonic_model.generators import RenderParams, create_generator
from sonic_model.image import load_image
from sonic_model.postprocess import calibrate_video
from sonic_model.qa import decode_audio_track
from sonic_model.render import render_video
from sonic_model.sync import measure_av_sync
from sonic_model.video_reader import audio_on_picture_timeline, probe_video, read_timeline
from tasks.probe import probe_media

FIXTURES = Path(__file__).parent / "fixtures"
PORTRAIT = FIXTURES / "portrait_hopper.jpg"
SPEECH = FIXTURES / "hostile" / "speech_ok.wav"  # 3.90 s of espeak-ng speech, 22.05 kHz mono
SPEECH_PAUSE = FIXTURES / "speech_en_pause_16k.wav"


def ffmpeg(*args: str) -> None:
    done = subprocess.run(
        [ffmpeg_executable(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def picture(seconds: float) -> list[str]:
    """A synthetic 25 fps picture of `seconds` as ffmpeg input arguments."""
    return ["-f", "lavfi", "-i", f"testsrc=size=160x120:rate=25:duration={seconds}"]


def lag_of(signal: np.ndarray, reference: np.ndarray, rate: int, max_lag_s: float = 0.5) -> float:
    """Seconds by which `signal` is late against `reference` (peak of their cross-correlation)."""
    count = min(len(signal), len(reference))
    a = signal[:count] - signal[:count].mean()
    b = reference[:count] - reference[:count].mean()
    spectrum = np.fft.rfft(a, 2 * count) * np.conj(np.fft.rfft(b, 2 * count))
    correlation = np.fft.irfft(spectrum)
    limit = int(max_lag_s * rate)
    lags = np.concatenate([np.arange(0, limit + 1), np.arange(-limit, 0)])
    values = np.concatenate([correlation[: limit + 1], correlation[-limit:]])
    return float(lags[int(np.argmax(values))]) / rate


def source_speech(rate: int) -> np.ndarray:
    samples, source_rate = soundfile.read(SPEECH, dtype="float32")
    assert source_rate == rate
    return samples


# --- portraits ----------------------------------------------------------------------------------


def upright_portrait() -> Image.Image:
    """A non-square portrait, so a missed or doubled rotation changes the shape."""
    image = Image.open(PORTRAIT).convert("RGB")
    return image.crop((0, 0, image.width, int(image.height * 0.8)))


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_photo_formats_decode_like_the_jpeg(fmt):
    import pillow_heif

    pillow_heif.register_heif_opener()  # only to write the fixture; load_image registers it itself
    upright = upright_portrait()
    reference = np.asarray(upright, np.float32)
    rgb = load_image(encoded(upright, fmt, quality=90))
    assert rgb.shape == reference.shape and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(np.float32) - reference).mean() < 4.0


@pytest.mark.parametrize("fmt", ["JPEG", "HEIF", "AVIF"])
def test_exif_orientation_is_applied_once_in_every_format(fmt):
    import pillow_heif

    pillow_heif.register_heif_opener()
    upright = upright_portrait()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": stored turned the other way
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    rgb = load_image(encoded(stored, fmt, quality=90, exif=exif.tobytes()))
    assert rgb.shape == np.asarray(upright).shape
    assert np.abs(rgb.astype(np.float32) - np.asarray(upright, np.float32)).mean() < 4.0


def test_16_bit_png_colour_and_a_dark_16_bit_gray_keep_their_values(tmp_path):
    import cv2

    rgb8 = np.asarray(upright_portrait())
    colour16 = tmp_path / "colour16.png"
    cv2.imwrite(str(colour16), rgb8[..., ::-1].astype(np.uint16) * 257)
    assert np.array_equal(load_image(colour16), rgb8)
    # A dark 16-bit photo (all values below 256 out of 65535) must stay dark, not become white.
    gray16 = (np.asarray(upright_portrait().convert("L"), np.uint16) * 257) // 4
    dark = tmp_path / "dark16.png"
    Image.fromarray(gray16).save(dark)
    assert Image.open(dark).mode.startswith("I;16")
    loaded = load_image(dark)[..., 0].astype(np.int32)
    assert np.abs(loaded - np.rint(gray16 / 257.0)).max() <= 1
    assert loaded.max() < 70


def test_cmyk_jpeg_keeps_its_colours():
    upright = upright_portrait()
    cmyk = load_image(encoded(upright.convert("CMYK"), "JPEG", quality=95))
    assert np.abs(cmyk.astype(np.float32) - np.asarray(upright, np.float32)).mean() < 4.0


@pytest.mark.parametrize(
    "fmt, shown", [("WEBP", "animated WebP"), ("GIF", "animated GIF"), ("PNG", "animated PNG (APNG)")]
)
def test_animated_images_are_refused_with_their_own_reason(fmt, shown):
    first = upright_portrait()
    second = first.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    data = encoded(first, fmt, save_all=True, append_images=[second], duration=100, loop=0)
    with pytest.raises(ImageError, match=re.escape(f"{shown} (2 frames)") + ".*still photo"):
        load_image(data)
    # One frame of the same formats is a still and loads.
    assert load_image(encoded(first, fmt)).shape[:2] == (first.height, first.width)


# --- script audio from any container --------------------------------------------------------------


H264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]


def script_video(
    out: Path,
    seconds: float,
    *,
    audio_offset_s: float = 0.0,
    video: list[str] = H264,
    audio_codec: str = "aac",
    more_inputs: list[str] = (),
    more_maps: list[str] = (),
    extra: list[str] = (),
) -> None:
    """A synthetic picture of `seconds` carrying SPEECH (shifted by `audio_offset_s`) as a script video."""
    offset = ["-itsoffset", str(audio_offset_s)] if audio_offset_s else []
    ffmpeg(
        *picture(seconds),
        *offset,
        "-i",
        str(SPEECH),
        *more_inputs,
        "-map",
        "0:v",
        "-map",
        "1:a",
        *more_maps,
        *video,
        "-c:a",
        audio_codec,
        *extra,
        str(out),
    )


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """Scripts as phones and editors write them, all holding SPEECH (3.90 s)."""
    folder = tmp_path_factory.mktemp("containers")
    # A phone video: 5.8 s of picture, the AAC track starting 0.3 s after it.
    script_video(folder / "late_audio.mov", 5.8, audio_offset_s=0.3)
    # Two audio streams: the speech first, a 3 s tone second.
    script_video(
        folder / "two_tracks.mp4",
        5.0,
        more_inputs=["-f", "lavfi", "-i", "sine=frequency=440:duration=3"],
        more_maps=["-map", "2:a"],
    )
    # Audio only, AAC with its encoder priming (an edit list tells the decoder to drop it).
    ffmpeg("-i", str(SPEECH), "-c:a", "aac", str(folder / "primed.m4a"))
    # The sound starting 0.2 s before the picture: in Matroska as a negative timestamp, in MP4
    # as an edit list that starts 0.2 s into the track. Lossless FLAC, so samples compare exactly.
    for name, extra in (("negative_start.mkv", ["-avoid_negative_ts", "disabled"]), ("negative_start.mp4", [])):
        script_video(folder / name, 5.0, audio_offset_s=-0.2, audio_codec="flac", extra=extra)
    # WebM (VP8 + Opus) and MKV (H.264 + AAC) scripts.
    script_video(folder / "script.webm", 4.5, video=["-c:v", "libvpx", "-b:v", "200k"], audio_codec="libopus")
    script_video(folder / "script.mkv", 4.5)
    shutil.copy(FIXTURES / "portrait_astronaut.jpg", folder / "portrait.jpg")
    return folder


def test_a_phone_video_with_a_late_audio_track_is_a_script_of_its_sound_only(media):
    clip = load_audio(media / "late_audio.mov")
    speech = load_audio(SPEECH)
    # The sound's own length (its AAC priming, as FFmpeg presents it in a .mov, adds < 50 ms),
    # not the 5.8 s picture, and it starts with the speech, not with the 0.3 s before it.
    assert abs(clip.duration_s - speech.duration_s) < 0.05
    assert abs(lag_of(clip.samples, speech.samples, 16000)) < 0.05
    assert abs(declared_audio_seconds(media / "late_audio.mov") - 3.95) < 0.05
    sound = decode_audio_stream(media / "late_audio.mov")
    assert abs(sound.start_s - 0.3) < 0.05  # where the track sits against the picture


def test_probe_accepts_a_phone_video_script_and_a_heic_portrait(media):
    import pillow_heif

    pillow_heif.register_heif_opener()
    Image.open(FIXTURES / "portrait_astronaut.jpg").save(media / "portrait.heic", format="HEIF", quality=85)
    row = ManifestRow(
        row_id="phone-1",
        portrait_uri="portrait.heic",
        audio_uri="late_audio.mov",
        language="en",
        consent_ref="release/2026/astronaut-001",
        duration_s=3.9,
    )
    probed = probe_media(row, str(media / "manifest.parquet"))
    assert abs(probed.audio_duration_s - 3.9) < 0.1


def test_truncated_only_when_the_streams_own_data_is_missing(media, tmp_path):
    # Faststart puts the index first, so a file cut short still declares its full length.
    whole = tmp_path / "whole.m4a"
    ffmpeg("-i", str(SPEECH_PAUSE), "-c:a", "aac", "-movflags", "+faststart", str(whole))
    data = whole.read_bytes()
    cut = tmp_path / "cut.m4a"
    cut.write_bytes(data[: len(data) // 3])
    assert abs(declared_audio_seconds(cut) - 6.0) < 0.05
    truncated = r"audio file is truncated: its header says 6.00 s but only [0-2]\.\d\d s decode"
    with pytest.raises(AudioError, match=truncated):
        load_audio(cut)
    row = dict(row_id="cut-1", portrait_uri="portrait.jpg", language="en", consent_ref="release/x")
    shutil.copy(FIXTURES / "portrait_astronaut.jpg", tmp_path / "portrait.jpg")
    with pytest.raises(AudioError, match="audio file is truncated: its header says 6.00 s"):
        probe_media(ManifestRow(audio_uri="cut.m4a", **row), str(tmp_path / "manifest.parquet"))
    # Cut in the middle of a packet or between packets, the verdict is the same.
    (tmp_path / "cut2.m4a").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated"):
        probe_media(ManifestRow(audio_uri="cut2.m4a", **row), str(tmp_path / "manifest.parquet"))
    # A video whose picture outlasts its sound is not truncated (the container's 6.1 s is not the sound's).
    late = probe_media(ManifestRow(audio_uri=str(media / "late_audio.mov"), **row), str(media / "manifest.parquet"))
    assert late.audio_duration_s < 4.0


def test_two_audio_streams_take_the_first_or_the_one_asked_for(media):
    first = decode_audio_stream(media / "two_tracks.mp4")
    second = decode_audio_stream(media / "two_tracks.mp4", 1)
    assert first.stream_count == 2 and abs(first.duration_s - 3.9) < 0.01 and abs(second.duration_s - 3.0) < 0.01
    assert abs(load_audio(media / "two_tracks.mp4", stream_index=1).duration_s - 3.0) < 0.01
    with pytest.raises(AudioError, match="audio stream 2 does not exist: the file has 2"):
        load_audio(media / "two_tracks.mp4", stream_index=2)


def test_aac_priming_and_padding_are_not_sound(media):
    sound = decode_audio_stream(media / "primed.m4a")
    reference = source_speech(sound.sample_rate)
    assert abs(sound.duration_s - len(reference) / sound.sample_rate) < 0.001
    assert sound.start_s == 0 and abs(lag_of(sound.samples[0], reference, sound.sample_rate)) <= 1 / sound.sample_rate


@pytest.mark.parametrize("name", ["negative_start.mkv", "negative_start.mp4"])
def test_sound_before_the_first_frame_is_not_played(media, name):
    reference = source_speech(22050)
    track = audio_on_picture_timeline(media / name)
    assert track.sample_rate == 22050
    # Frame 0 shows with the speech's sample at 0.2 s: what came before is not presented.
    # (Matroska stores timestamps in whole milliseconds, FFmpeg reports them as stored.)
    assert abs(lag_of(track.samples[0], reference, 22050) + 0.2) < 0.005
    assert abs(track.duration_s - (len(reference) / 22050 - 0.2)) < 0.005
    # QA's decode of the track is the same samples, on the same timeline.
    samples, rate = decode_audio_track(media / name)
    assert rate == 22050 and np.array_equal(samples[:, 0], track.samples[0])


@pytest.mark.parametrize("name", ["script.webm", "script.mkv", "late_audio.mov", "two_tracks.mp4"])
def test_video_containers_render_with_their_sound_in_sync(media, tmp_path, name):
    out = tmp_path / "talk.mp4"
    result = render_video(
        create_generator("preview"),
        PORTRAIT,
        media / name,
        out,
        RenderParams(min_resolution=128, lipsync_calibration=False, motion_smoothing=0.0),
    )
    script = load_audio(media / name)
    with av.open(str(out)) as container:
        assert len(container.streams.audio) == 1  # only the script's stream, no picture of it
    info = probe_video(out)
    assert abs(info.audio_duration_s - script.duration_s) <= 1 / FPS
    assert abs(result.video_duration_s - script.duration_s) <= 1 / FPS
    # The published sound starts at frame 0 with the script's first presented sample.
    track = audio_on_picture_timeline(out, mono=True)
    published = load_audio(out)
    assert read_timeline(out).sound_lead_s == 0
    assert abs(lag_of(published.samples, script.samples, 16000)) <= 0.002
    assert track.samples.shape[1] / track.sample_rate == pytest.approx(published.duration_s, abs=0.001)


# --- one timeline for QA and calibrate ----------------------------------------------------------------


def _clean_render(folder: Path, loudness_target: float | None) -> Path:
    out = folder / "clean.mp4"
    params = RenderParams(
        min_resolution=256, lipsync_calibration=False, motion_smoothing=0.0, loudness_target=loudness_target
    )
    render_video(create_generator("preview"), PORTRAIT, SPEECH_PAUSE, out, params)
    return out


@pytest.fixture(scope="module")
def clean_render(tmp_path_factory) -> Path:
    """A preview render of 6 s of speech with a pause, in sync, 256 px (no post-processing), its
    sound as the script's (16 kHz AAC: no loudness normalisation)."""
    return _clean_render(tmp_path_factory.mktemp("calibrate"), None)


def test_calibrate_a_delayed_48k_track_ignores_the_priming_a_stream_copy_keeps(tmp_path):
    # Rendered at the default loudness target (AAC 48 kHz stereo), moved 4 frames late by a stream
    # copy: FFmpeg then presents the track's 1024 priming samples too, so the track "starts" 21 ms
    # before its sound. Calibrate must undo the measured 160 ms, not the 139 ms the container says.
    clean = _clean_render(tmp_path, -14.0)
    assert probe_video(clean).audio_sample_rate == 48000
    broken = container_delay(clean, 4, tmp_path / "late.mp4")
    report = calibrate_video(broken, tmp_path / "fixed.mp4")
    assert report.sound_lead_before_ms == pytest.approx(160 - 1024 / 48, abs=0.5)
    assert not report.audio_reencoded and report.applied_ms == pytest.approx(-160.0, abs=0.5)
    assert abs(report.offset_after_frames - measure_av_sync(clean).offset_frames) <= 1


def container_delay(video: Path, frames: int, out: Path) -> Path:
    """The same file with its audio track `frames` late in the container; samples untouched."""
    ffmpeg(
        "-i",
        str(video),
        "-itsoffset",
        f"{frames / FPS:.6f}",
        "-i",
        str(video),
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c",
        "copy",
        str(out),
    )
    return out


def baked_delay(video: Path, frames: int, out: Path, folder: Path) -> Path:
    """The same picture with a sound whose samples are `frames` late (silence in, the far end cut)."""
    samples, rate = soundfile.read(SPEECH_PAUSE, dtype="float32")
    shift = round(frames / FPS * rate)
    moved = (
        np.concatenate([np.zeros(shift, np.float32), samples[:-shift]])
        if shift > 0
        else np.concatenate([samples[-shift:], np.zeros(-shift, np.float32)])
    )
    wav = folder / f"baked{frames:+d}.wav"
    soundfile.write(wav, moved, rate, subtype="PCM_16")
    frames_rgb = [frame.to_ndarray(format="rgb24") for frame in av.open(str(video)).decode(video=0)]
    with VideoWriter(
        out, width=frames_rgb[0].shape[1], height=frames_rgb[0].shape[0], num_frames=len(frames_rgb), audio_path=wav
    ) as writer:
        for frame in frames_rgb:
            writer.write(frame)
    return out


def video_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(packet) for packet in container.demux(container.streams.video[0]) if packet.size]


@pytest.mark.parametrize("kind, frames", [("container", 4), ("container", -3), ("samples", 4), ("samples", -3)])
def test_calibrate_brings_container_and_baked_delays_back_to_the_clean_render(clean_render, tmp_path, kind, frames):
    clean = measure_av_sync(clean_render)
    assert clean.confident
    broken = tmp_path / f"{kind}{frames:+d}.mp4"
    if kind == "container":
        container_delay(clean_render, frames, broken)
    else:
        baked_delay(clean_render, frames, broken, tmp_path)
    out = tmp_path / "calibrated.mp4"
    report = calibrate_video(broken, out)
    # Sound late by k frames = picture early by k: the offset a player shows is -k.
    assert abs(report.offset_before_frames - (clean.offset_frames - frames)) <= 1
    assert abs(report.offset_after_frames - clean.offset_frames) <= 1
    assert abs(measure_av_sync(out).offset_frames - clean.offset_frames) <= 1  # measured again, independently
    assert video_packets(out) == video_packets(broken)  # the picture is never re-encoded
    if kind == "container":
        # The track itself was misplaced: moved back without re-encoding, to the sample.
        assert not report.audio_reencoded and report.applied_ms == pytest.approx(-frames * 1000 / FPS, abs=0.5)
        assert abs(report.sound_lead_after_ms) < 1.0
        with av.open(str(out)) as fixed, av.open(str(clean_render)) as reference:
            fixed_packets = [bytes(p) for p in fixed.demux(audio=0) if p.size]
            assert fixed_packets == [bytes(p) for p in reference.demux(audio=0) if p.size]
    else:
        # Baked into the samples: re-timed by re-encoding, still spanning the picture.
        assert report.audio_reencoded
        info = probe_video(out)
        assert abs(info.audio_duration_s - info.video_duration_s) <= 1 / FPS
