"""Media primitives on real files: image loading, audio decoding, crop rules, the encoder."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sonic_model.audio import AudioClip, frame_envelope, load_audio, speech_segments
from sonic_model.crop import expand_square_crop, face_mask_rect, model_resolution, prepare_portrait
from sonic_model.encode import AI_DISCLOSURE, VideoWriter, frame_count
from sonic_model.errors import AudioError, ImageError, ParameterError, SonicCatalogError
from sonic_model.image import load_image
from sonic_model.video_reader import iter_video_frames, probe_video

FIXTURES = Path(__file__).parent / "fixtures"
PORTRAIT = FIXTURES / "portrait_astronaut.jpg"


# -- images -------------------------------------------------------------------------------------
def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_load_image_jpeg_png_webp_give_rgb():
    rgb = load_image(PORTRAIT)
    assert rgb.shape == (512, 512, 3) and rgb.dtype == np.uint8
    for fmt in ("PNG", "WEBP"):
        again = load_image(_encode(Image.fromarray(rgb), fmt))
        assert again.shape == rgb.shape


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P", "LA"])
def test_load_image_converts_every_mode_to_rgb(mode):
    source = Image.open(PORTRAIT).convert(mode)
    fmt = "JPEG" if mode in ("L", "CMYK") else "PNG"
    rgb = load_image(_encode(source, fmt))
    assert rgb.shape == (512, 512, 3)


def test_load_image_16_bit_png_keeps_contrast():
    gray16 = (np.linspace(0, 65535, 256 * 256).reshape(256, 256)).astype(np.uint16)
    rgb = load_image(_encode(Image.fromarray(gray16), "PNG"))
    assert rgb.shape == (256, 256, 3)
    assert rgb.min() == 0 and rgb.max() >= 250


def test_load_image_transparent_background_becomes_white():
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgb = load_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert (rgb == 255).all()


def test_load_image_applies_exif_orientation():
    wide = Image.new("RGB", (200, 100), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    rgb = load_image(_encode(wide, "JPEG", exif=exif.tobytes()))
    assert rgb.shape == (200, 100, 3)


def test_load_image_refuses_decompression_bomb_before_decoding():
    # A valid PNG header claiming 30000 x 30000 pixels with almost no data.
    bomb = _encode(Image.new("1", (30000, 30000)), "PNG")
    assert len(bomb) < 200_000
    with pytest.raises(ImageError, match="over the limit"):
        load_image(bomb)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty file"),
        (b"this is text, not a photo\n" * 10, "not a readable image"),
    ],
)
def test_load_image_bad_bytes_have_specific_reasons(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_load_image_truncated_jpeg():
    data = PORTRAIT.read_bytes()
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(data[: len(data) // 3])


def test_load_image_tiny_and_missing():
    with pytest.raises(ImageError, match="too small"):
        load_image(_encode(Image.new("RGB", (32, 32)), "PNG"))
    with pytest.raises(ImageError, match="not found"):
        load_image(FIXTURES / "no_such_portrait.jpg")


# -- audio --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, rate, channels",
    [
        ("speech_en_16k.wav", 16000, 1),
        ("speech_es_44k.mp3", 44100, 1),
        ("speech_fr_48k.m4a", 48000, 2),
        ("speech_de_48k_stereo.wav", 48000, 2),
        ("speech_zh_16k.flac", 16000, 1),
        ("speech_en_22k.ogg", 22050, 1),
    ],
)
def test_load_audio_any_format_to_16k_mono(name, rate, channels):
    clip = load_audio(FIXTURES / name)
    assert clip.sample_rate == 16000 and clip.samples.ndim == 1 and clip.samples.dtype == np.float32
    assert clip.source_sample_rate == rate and clip.source_channels == channels
    assert 2.0 < clip.duration_s < 10.0
    assert 0.01 < np.abs(clip.samples).max() <= 1.0


def test_load_audio_from_bytes_equals_from_path():
    path = FIXTURES / "speech_en_16k.wav"
    assert np.array_equal(load_audio(path).samples, load_audio(path.read_bytes()).samples)


def test_a_wav_header_no_decoder_takes_is_refused_naming_it(tmp_path):
    # Found by tests/test_hostile_fuzz.py: a WAV header declaring 247 bits a sample opens, but
    # FFmpeg gives its stream no decoder, and the probe failed with an AttributeError.
    data = bytearray((FIXTURES / "speech_en_16k.wav").read_bytes())
    fmt = data.index(b"fmt ")
    data[fmt + 22 : fmt + 24] = (247).to_bytes(2, "little")  # bits per sample
    (tmp_path / "odd.wav").write_bytes(data)
    with pytest.raises(AudioError, match="audio stream 0 cannot be decoded: FFmpeg has no decoder for its format"):
        load_audio(tmp_path / "odd.wav")


def test_load_audio_bad_inputs_have_specific_reasons(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n" * 50)
    with pytest.raises(AudioError, match="empty file"):
        load_audio(empty)
    with pytest.raises(AudioError, match="cannot be decoded"):
        load_audio(text)
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="longer than the limit"):
        load_audio(FIXTURES / "speech_en_16k.wav", max_seconds=2.0)
    with pytest.raises(AudioError, match="shorter than the minimum"):
        load_audio(FIXTURES / "speech_en_16k.wav", min_seconds=60.0)
    with pytest.raises(AudioError, match="no audio stream"):
        load_audio(PORTRAIT)


def test_speech_segments_find_the_pause():
    clip = load_audio(FIXTURES / "speech_en_pause_16k.wav")
    segments = speech_segments(clip)
    assert len(segments) == 2
    gap = segments[1][0] - segments[0][1]
    assert gap > 1.0  # the fixture holds a 1.2 s pause between two sentences


def test_frame_envelope_has_one_value_per_frame():
    clip = AudioClip(np.concatenate([np.zeros(16000, np.float32), 0.5 * np.ones(16000, np.float32)]))
    envelope = frame_envelope(clip)
    assert envelope.shape == (50,)
    assert envelope[:24].max() == 0 and np.allclose(envelope[26:], 0.5)


# -- crop rules -----------------------------------------------------------------------------------
def test_crop_rules_match_the_public_sonic_example():
    # The example worked through in the Sonic parity notes: 512x512 image, this face box.
    assert expand_square_crop((171.37, 54.81, 110.55, 128.24), (512, 512), 0.5) == (116, 8, 337, 229)
    # 1000 x 0.16 / 64 = 2.5 rounds half to even -> 2 -> 128 px, not 192.
    assert model_resolution(800, 1000, 128) == (128, 128)
    assert model_resolution(221, 221, 512) == (512, 512)
    assert face_mask_rect((10.0, 20.0, 110.0, 140.0), (512, 512)) == (5, 14, 115, 146)


def test_prepare_portrait_sizes_and_mask():
    rgb = load_image(PORTRAIT)
    prepared = prepare_portrait(rgb, (171.37, 54.81, 110.55, 128.24), min_resolution=256)
    assert prepared.image.shape == (256, 256, 3)
    assert prepared.face_mask.shape == (256, 256)
    assert prepared.face_mask.max() == 255 and prepared.face_mask.min() == 0
    with pytest.raises(ParameterError, match="expand_ratio"):
        prepare_portrait(rgb, (171, 54, 110, 128), expand_ratio=9)


# -- encoder --------------------------------------------------------------------------------------
def _encode_test_video(out: Path, audio_path: Path, size=(128, 96)) -> tuple[AudioClip, int]:
    clip = load_audio(audio_path)
    count = frame_count(clip.duration_s)
    with VideoWriter(
        out, width=size[0], height=size[1], num_frames=count, audio_path=audio_path, generator="test 0"
    ) as writer:
        for index in range(count):
            writer.write(np.full((size[1], size[0], 3), index % 200, np.uint8))
    return clip, count


@pytest.mark.parametrize(
    "name", ["speech_en_16k.wav", "speech_es_44k.mp3", "speech_fr_48k.m4a", "speech_de_48k_stereo.wav"]
)
def test_video_lasts_as_long_as_the_audio(tmp_path, name):
    out = tmp_path / "video.mp4"
    clip, count = _encode_test_video(out, FIXTURES / name)
    info = probe_video(out)
    assert info.num_frames == count and info.fps == 25
    assert abs(info.video_duration_s - clip.duration_s) <= 1 / 25
    assert abs(info.video_duration_s - info.audio_duration_s) <= 1 / 25
    assert (info.video_codec, info.pix_fmt, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert info.metadata["comment"] == AI_DISCLOSURE and info.metadata["generator"] == "test 0"
    # No trailing black frame: the last decoded frame is the last one written.
    last = list(iter_video_frames(out))[-1][1]
    assert abs(int(last.mean()) - (count - 1) % 200) <= 2


def test_faststart_puts_the_index_first(tmp_path):
    out = tmp_path / "video.mp4"
    _encode_test_video(out, FIXTURES / "speech_zh_16k.flac")
    head = out.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))


def test_writer_leaves_nothing_when_frames_are_missing(tmp_path):
    out = tmp_path / "video.mp4"
    with pytest.raises(SonicCatalogError, match="needs 10"):
        with VideoWriter(out, width=64, height=64, num_frames=10, audio_path=None) as writer:
            writer.write(np.zeros((64, 64, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_writer_leaves_nothing_when_the_generator_fails(tmp_path):
    out = tmp_path / "video.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(out, width=64, height=64, num_frames=10, audio_path=None) as writer:
            writer.write(np.zeros((64, 64, 3), np.uint8))
            raise RuntimeError("generator crashed")
    assert list(tmp_path.iterdir()) == []


def test_writers_sharing_one_encoded_sound_get_the_same_track_as_encoding_it_themselves(tmp_path):
    """Renditions copy one AAC encode (EncodedAudioTrack): each file's sound decodes to exactly the
    samples of a track encoded into it directly (same start, priming trimmed alike), the picture
    and tags are the file's own, faststart, and no temporary file is left."""
    from sonic_model.encode import EncodedAudioTrack
    from sonic_model.qa.loudness import decode_audio_track

    audio = FIXTURES / "speech_es_44k.mp3"
    count = frame_count(load_audio(audio).duration_s)
    sound = {"audio_bitrate": "192k", "audio_sample_rate": 48000, "audio_channels": 2}
    direct = tmp_path / "direct.mp4"
    with VideoWriter(direct, width=64, height=64, num_frames=count, audio_path=audio, **sound) as writer:
        for index in range(count):
            writer.write(np.full((64, 64, 3), index % 200, np.uint8))
    track = EncodedAudioTrack(audio, tmp_path / "shared.mp4", bitrate="192k", sample_rate=48000, channels=2).start()
    shared = [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    writers = [
        VideoWriter(
            path, width=64, height=64, num_frames=count, audio_path=None, audio_track=track, generator=path.stem
        )
        for path in shared
    ]
    for writer in writers:
        writer.open()
    for index in range(count):
        for offset, writer in enumerate(writers):
            writer.write(np.full((64, 64, 3), (index + 50 * offset) % 200, np.uint8))
    for writer in writers:
        writer.close()
    track.cleanup()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4", "direct.mp4"]
    reference, rate = decode_audio_track(direct)
    for offset, path in enumerate(shared):
        samples, shared_rate = decode_audio_track(path)
        assert shared_rate == rate == 48000 and np.array_equal(samples, reference)
        info = probe_video(path)
        assert info.num_frames == count and (info.video_codec, info.audio_codec) == ("h264", "aac")
        assert info.metadata["generator"] == path.stem and info.metadata["comment"] == AI_DISCLOSURE
        assert abs(info.video_duration_s - info.audio_duration_s) <= 1 / 25
        head = path.read_bytes()[:4096]
        assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))
        first = next(iter_video_frames(path))[1]
        assert abs(int(first.mean()) - 50 * offset) <= 2
    with pytest.raises(ValueError, match="not both"):
        VideoWriter(tmp_path / "c.mp4", width=64, height=64, num_frames=1, audio_path=audio, audio_track=track)


@pytest.mark.parametrize("shared_sound", [False, True], ids=["own-sound", "shared-sound"])
def test_a_constant_quantiser_stream_over_its_cap_is_encoded_again_under_it(tmp_path, shared_sound):
    """Renditions are coded at a constant quantiser (no rate control, so no VBV): the finished
    stream's fullest second is checked against the cap and, over it, the picture is encoded again
    at CRF under a VBV cap, keeping frames, sound and tags; under it the stream is left alone."""
    from sonic_model.encode import EncodedAudioTrack
    from sonic_model.video_reader import peak_video_bitrate

    audio = FIXTURES / "speech_es_44k.mp3"
    count = frame_count(load_audio(audio).duration_s)
    noise = np.random.default_rng(0).integers(0, 256, (count, 96, 128, 3), dtype=np.uint8)  # costly to code

    def encode(path: Path, cap: str) -> VideoWriter:
        track = (
            EncodedAudioTrack(audio, path, bitrate="96k", sample_rate=48000, channels=2).start()
            if shared_sound
            else None
        )
        sound = {"audio_track": track, "audio_path": None} if shared_sound else {"audio_path": audio}
        writer = VideoWriter(
            path, width=128, height=96, num_frames=count, generator="cap test", qp=18, max_bitrate=cap, **sound
        )
        with writer:
            for frame in noise:
                writer.write(frame)
        if track is not None:
            track.cleanup()
        return writer

    loose = encode(tmp_path / "loose.mp4", "20M")
    assert not loose.reencoded_under_cap
    assert peak_video_bitrate(tmp_path / "loose.mp4") > 400_000  # noise at QP 18: far above the tight cap below
    tight = encode(tmp_path / "tight.mp4", "300k")
    assert tight.reencoded_under_cap
    assert peak_video_bitrate(tmp_path / "tight.mp4") <= 1.05 * 300_000
    info = probe_video(tmp_path / "tight.mp4")
    assert info.num_frames == count and (info.video_codec, info.audio_codec, info.pix_fmt) == ("h264", "aac", "yuv420p")
    assert abs(info.video_duration_s - info.audio_duration_s) <= 1 / 25
    assert info.metadata["comment"] == AI_DISCLOSURE and info.metadata["generator"] == "cap test"
    head = (tmp_path / "tight.mp4").read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loose.mp4", "tight.mp4"]  # no temporary left
