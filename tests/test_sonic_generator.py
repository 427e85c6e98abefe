"""SonicGenerator on the dev tiny checkpoint (CPU; float32, bfloat16 in a slow test): behaviour beyond the release."""

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile
import torch
from two_faces import two_face_photo

from sonic_model.audio import AudioClip, load_audio
from sonic_model.crop import expand_square_crop, prepare_portrait
from sonic_model.encode import frame_count
from sonic_model.errors import AudioError, NoFaceError, ParameterError, WeightsError
from sonic_model.face import FaceBox
from sonic_model.generators import RenderParams
from sonic_model.image import load_image
from sonic_model.paste_back import FacePaster
from sonic_model.render import render_video
from sonic_model.sonic import SonicGenerator
from sonic_model.sonic.audio_features import whisper_input_features, whisper_states
from sonic_model.sonic.pipeline import SonicPipeline, SonicSettings
from sonic_model.sonic.weights import locate_weights
from sonic_model.sonic.yoloface import decode_predictions, letterbox
from sonic_model.video_reader import probe_video

FIXTURE = Path(__file__).parent / "fixtures" / "sonic_parity_dev"
CHECKPOINTS = FIXTURE / "checkpoints"
# The dev fixture's face box: deterministic tests do not depend on the face detector.
FACE = FaceBox(171.37, 54.81, 110.55, 128.24, 0.9)
PARAMS = RenderParams(min_resolution=128, inference_steps=2, seed=7)


class FakeDetector:
    def __init__(self, faces):
        self.faces = faces

    def detect(self, rgb):
        return list(self.faces)


def _generator(dtype):
    gen = SonicGenerator(CHECKPOINTS, device="cpu", dtype=dtype)
    gen._detector = FakeDetector([FACE])
    return gen


@pytest.fixture(scope="module")
def generator():
    # float32: on a CPU without bfloat16 units it runs these behaviour tests 2.5x faster than
    # bfloat16 (14 s against 35 s for one second of video); the bfloat16 path has its own test.
    return _generator(torch.float32)


@pytest.fixture(scope="module")
def portrait():
    return load_image(FIXTURE / "inputs" / "astronaut.png")


@pytest.fixture(scope="module")
def speech():
    return load_audio(FIXTURE / "inputs" / "speech_en_16k.wav")


@pytest.mark.slow  # about 4 min on 2 CPU cores: a whole 3.2 s script at 128 px, 2 steps, in bfloat16
def test_bfloat16_render_lasts_as_long_as_the_audio(portrait, speech):
    generator = _generator(torch.bfloat16)
    assert generator.models.unet.dtype == torch.bfloat16 and generator.models.vae_dtype == torch.bfloat16
    frames = list(generator.frames(portrait, speech, PARAMS))
    # 3.1875 s -> 80 frames at 25 fps (the release makes 77 and cuts the audio to 3.08 s).
    assert len(frames) == frame_count(speech.duration_s) == 80
    assert generator.output_size(portrait, PARAMS) == (128, 128)
    assert all(f.shape == (128, 128, 3) and f.dtype == np.uint8 for f in frames)
    assert len({f.tobytes() for f in frames}) > 60  # moving, not frozen


@pytest.mark.parametrize("seconds", [0.2, 1.02, 1.06])
def test_frame_count_equals_audio_for_any_length(generator, portrait, seconds):
    audio = AudioClip(np.zeros(int(seconds * 16000), np.float32))
    params = RenderParams(min_resolution=64, inference_steps=1)
    assert sum(1 for _ in generator.frames(portrait, audio, params)) == frame_count(audio.duration_s)


def test_frames_stream_chunk_by_chunk(generator, portrait, speech, monkeypatch):
    decoded = []
    original = SonicPipeline.decoded_chunks

    def counting(self, *args, **kwargs):
        for chunk in original(self, *args, **kwargs):
            decoded.append(len(chunk))
            yield chunk

    monkeypatch.setattr(SonicPipeline, "decoded_chunks", counting)
    stream = generator.frames(portrait, speech, RenderParams(min_resolution=64, inference_steps=1))
    next(stream)
    assert decoded == [8]  # only the first 8-latent chunk is decoded before the first frame
    assert torch.is_grad_enabled()  # a suspended stream leaks no no-grad mode into the caller
    stream.close()


def test_same_seed_same_video_other_seed_differs(generator, portrait, speech):
    second = AudioClip(speech.samples[:16000])  # one second (25 frames) shows it as well as the whole script

    def video(seed):
        # Sampling runs over the whole clip before the first frame, so each call is one whole render.
        return list(generator.frames(portrait, second, RenderParams(min_resolution=64, inference_steps=1, seed=seed)))

    first = video(3)
    assert all(np.array_equal(a, b) for a, b in zip(first, video(3), strict=True))
    assert not np.array_equal(first[5], video(4)[5])


def test_no_face_is_a_clear_error(generator, portrait, speech):
    generator._face_cache.clear()
    generator._detector = FakeDetector([])
    try:
        with pytest.raises(NoFaceError, match="no face found"):
            next(iter(generator.frames(portrait, speech, PARAMS)))
    finally:
        generator._detector = FakeDetector([FACE])
        generator._face_cache.clear()


def test_several_faces_pick_the_largest_whatever_the_order(generator, portrait):
    small = FaceBox(10, 10, 40, 40, 0.99)
    big = FaceBox(171.37, 54.81, 110.55, 128.24, 0.6)
    twin = FaceBox(300, 300, 110.55, 128.24, 0.6)  # same area and score: the top-left one wins
    for faces in ([small, big, twin], [twin, small, big]):
        generator._face_cache.clear()
        generator._detector = FakeDetector(faces)
        assert generator.face_box(portrait) == big.xywh
    generator._detector = FakeDetector([FACE])
    generator._face_cache.clear()


def test_audio_over_the_limit_is_refused(portrait):
    gen = SonicGenerator.__new__(SonicGenerator)
    gen.max_audio_seconds = 2.0
    with pytest.raises(AudioError, match="longer than the Sonic limit of 2 s"):
        next(iter(gen.frames(portrait, AudioClip(np.zeros(40000, np.float32)), PARAMS)))


def test_audio_longer_than_30_s_uses_several_whisper_windows(generator):
    models = generator.models
    rng = np.random.default_rng(0)
    waveform = (rng.standard_normal(16000 * 35) * 0.1).astype(np.float32)
    features = whisper_input_features(models.feature_extractor, waveform)
    assert features.shape[-1] == 6000  # two 30 s blocks
    states = whisper_states(models.whisper_encoder, features, num_positions=35 * 50)
    assert states.shape[:2] == (1750, 5)
    assert states[1500:].abs().sum() > 0  # positions of the second window are real encoder outputs


def test_missing_weights_listed_in_one_error(tmp_path):
    shutil.copytree(CHECKPOINTS, tmp_path / "w")
    (tmp_path / "w" / "Sonic" / "unet.pth").unlink()
    shutil.rmtree(tmp_path / "w" / "whisper-tiny")
    with pytest.raises(WeightsError) as error:
        locate_weights(tmp_path / "w")
    message = str(error.value)
    assert "\n" not in message
    for needed in (
        "Sonic/unet.pth",
        "whisper-tiny/config.json",
        "whisper-tiny/model.safetensors",
        "LeonJoe13/Sonic",
        "openai/whisper-tiny",
    ):
        assert needed in message


def test_wrong_weight_file_is_a_weights_error(tmp_path):
    shutil.copytree(CHECKPOINTS, tmp_path / "w")
    state = torch.load(tmp_path / "w" / "Sonic" / "audio2token.pth", weights_only=True)
    state["proj2.weight"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "w" / "Sonic" / "audio2token.pth")
    with pytest.raises(WeightsError, match="audio2token.pth does not match"):
        SonicGenerator(tmp_path / "w", device="cpu")


def test_yoloface_postprocessing_undoes_the_letterbox():
    rgb = np.zeros((200, 400, 3), np.uint8)  # wide: scale 416/400, padded top and bottom
    tensor, scale, (left, top) = letterbox(rgb)
    assert tensor.shape == (1, 3, 416, 416) and left == 0 and top == (416 - 208) // 2

    def row(cx, cy, w, h, obj, cls):
        return [cx, cy, w, h, obj] + [cx] * 10 + [cls]

    pred = torch.tensor([
        row(100 * scale, 50 * scale + top, 40 * scale, 40 * scale, 0.9, 0.9),     # face A: 40x40 at (80, 30)
        row(102 * scale, 51 * scale + top, 40 * scale, 40 * scale, 0.8, 0.9),     # duplicate of A (NMS)
        row(300 * scale, 100 * scale + top, 80 * scale, 80 * scale, 0.7, 0.9),    # face B: larger
        row(200 * scale, 100 * scale + top, 90 * scale, 90 * scale, 0.3, 0.9),    # below threshold
    ])  # fmt: skip
    faces = decode_predictions(pred, scale, (left, top), (400, 200))
    assert len(faces) == 2
    assert faces[0].w == pytest.approx(80, abs=1e-3) and faces[0].x == pytest.approx(260, abs=1e-3)
    assert faces[1].xywh == pytest.approx((80, 30, 40, 40), abs=1e-3)


@pytest.mark.slow  # ~25 s on 2 cores: one second through the whole tiny pipeline at 128 x 192
def test_non_square_without_crop_runs_at_the_derived_resolution(generator, portrait, speech):
    # 512 x 384 photo, crop off, min_resolution 128: 170.7 / 64 = 2.67 -> 3, so 192 x 128.
    wide = np.ascontiguousarray(portrait[64:448])
    settings = SonicSettings(min_resolution=128, crop=False, inference_steps=1)
    frames = list(generator.pipeline.run(wide, FACE.xywh, speech.samples[:16000], settings))
    assert len(frames) == 2 * (25 // 2) - 1  # the release's frame count when no target is given
    assert frames[0].shape == (128, 192, 3)


def test_unsupported_settings_and_too_short_audio_are_clear_errors(generator, portrait, speech):
    with pytest.raises(ValueError, match=r"i2i_noise_strength=0.5 is not supported; .* release's value 1.0"):
        next(generator.pipeline.run(portrait, FACE.xywh, speech.samples, SonicSettings(i2i_noise_strength=0.5)))
    with pytest.raises(ValueError, match=r"1000 samples at 16 kHz; Sonic needs at least 1280"):
        next(generator.pipeline.run(portrait, FACE.xywh, speech.samples[:1000], SonicSettings(min_resolution=64)))


# --- which face: the given box (the probe's), else the detector's largest ------------------------


class _CropFed(Exception):
    """Stops a run once the pipeline has been handed its crop (all these tests need)."""


def _crop_fed_to_pipeline(generator, photo, monkeypatch, **kwargs) -> tuple[tuple, np.ndarray]:
    """(face box, model-resolution crop as uint8) that `frames` hands to the pipeline's step 1."""
    fed = []
    original = SonicPipeline.prepare_portrait

    def recording(self, rgb, face_box_xywh, settings, recorder):
        ref_tensor, face_mask, clip_pixels = original(self, rgb, face_box_xywh, settings, recorder)
        image = ((ref_tensor.float() + 1) / 2 * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        fed.append((tuple(face_box_xywh), image))
        raise _CropFed

    monkeypatch.setattr(SonicPipeline, "prepare_portrait", recording)
    with pytest.raises(_CropFed):
        silence = AudioClip(np.zeros(3200, np.float32))
        next(iter(generator.frames(photo, silence, RenderParams(min_resolution=64), **kwargs)))
    monkeypatch.setattr(SonicPipeline, "prepare_portrait", original)
    return fed[0]


def test_the_given_face_is_animated_not_the_largest(generator, monkeypatch):
    photo, largest, other = two_face_photo()
    generator._face_cache.clear()
    monkeypatch.setattr(generator, "_detector", None)  # the real detector (the tiny release has no yoloface)
    try:

        def crop_of(box) -> np.ndarray:
            return prepare_portrait(photo, box.xywh, expand_ratio=0.5, min_resolution=64).image.astype(int)

        box, crop = _crop_fed_to_pipeline(generator, photo, monkeypatch, face_box=other.xywh)
        assert box == pytest.approx(other.xywh)
        assert np.abs(crop.astype(int) - crop_of(other)).max() <= 1  # the astronaut's crop, to rounding
        assert np.abs(crop.astype(int) - crop_of(largest)).mean() > 60  # not Hopper's (measured ~83)
        assert generator.output_size(photo, RenderParams(min_resolution=64), face_box=other.xywh) == (64, 64)
        # No box given (render-one): detected as before, the largest face.
        box, crop = _crop_fed_to_pipeline(generator, photo, monkeypatch)
        assert box == pytest.approx(largest.xywh)
        assert np.abs(crop.astype(int) - crop_of(largest)).max() <= 1
    finally:
        generator._face_cache.clear()


def test_a_face_box_off_the_portrait_is_refused(generator, portrait):
    with pytest.raises(ParameterError, match="not inside the 512x512 portrait"):
        generator.output_size(portrait, PARAMS, face_box=(500, 10, 100, 100))


# --- paste_back: the generated crop composited into the whole photo --------------------------------


def test_paste_back_puts_the_generated_crop_into_the_whole_photo(generator, portrait, tmp_path, monkeypatch):
    pasted = []  # (generated crop frame, composited frame, the paster) for every frame of the run
    original = FacePaster.paste

    def recording(self, frame):
        composited = original(self, frame)
        pasted.append((frame, composited, self))
        return composited

    monkeypatch.setattr(FacePaster, "paste", recording)
    silence, out = tmp_path / "silence.wav", tmp_path / "pasted.mp4"
    soundfile.write(silence, np.zeros(3200, np.float32), 16000)  # 0.2 s: 5 frames
    params = RenderParams(
        min_resolution=64,
        inference_steps=1,
        paste_back=True,
        lipsync_calibration=False,
        motion_smoothing=0.0,
        loudness_target=None,
    )
    assert generator.output_size(portrait, params, face_box=FACE.xywh) == (512, 512)
    result = render_video(generator, portrait, silence, out, params, face_box=FACE.xywh)
    info = probe_video(out)
    assert (info.width, info.height) == (result.width, result.height) == (512, 512)
    assert result.frames == len(pasted) == 5
    x0, y0, x1, y1 = expand_square_crop(FACE.xywh, (512, 512), 0.5)
    compositor = pasted[0][2].compositor
    # The soft head-and-neck mask (sonic_model.composite): it changes only a box inside the crop,
    # is 0 on every edge of the crop that lies inside the photo (so the crop's square never shows)
    # and 1 on the face.
    rx0, ry0, rx1, ry1 = compositor.roi
    assert x0 <= rx0 < rx1 <= x1 and y0 <= ry0 < ry1 <= y1
    unchanged = np.ones((512, 512), bool)
    unchanged[ry0:ry1, rx0:rx1] = False
    full = np.zeros((512, 512), bool)
    full[ry0:ry1, rx0:rx1] = compositor.weight == 1.0
    assert full.sum() > 0.15 * (x1 - x0) * (y1 - y0)  # the face and neck come from the generated frame
    scaled_crop = (slice(y0, y1), slice(x0, x1))
    for generated, frame, _ in pasted:
        assert generated.shape == (64, 64, 3) and frame.shape == (512, 512, 3)
        assert np.array_equal(frame[unchanged], portrait[unchanged])  # the photo untouched outside the mask
        # under the mask's core: the generated frame scaled back to the crop's size
        scaled = np.zeros_like(portrait)
        scaled[scaled_crop] = cv2.resize(generated, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LANCZOS4)
        # (an affine Lanczos warp rounds a few pixels differently from cv2.resize's)
        difference = np.abs(frame[full].astype(int) - scaled[full].astype(int))
        assert difference.max() <= 4 and difference.mean() < 0.5
        assert np.abs(frame[full].astype(int) - portrait[full].astype(int)).mean() > 20


def test_face_paster_fades_only_inside_the_photo(portrait):
    """At a crop edge inside the photo the still photo shows (weight 0); at an edge on the
    photo's border there is nothing to blend with, so the mask may reach it."""
    from sonic_model.face import face_landmarks

    landmarks = face_landmarks(portrait, FACE)
    inside = FacePaster(portrait, expand_square_crop(FACE.xywh, (512, 512), 0.5), landmarks)
    weight = inside.compositor.weight
    rx0, ry0, rx1, ry1 = inside.compositor.roi
    cx0, cy0, cx1, cy1 = inside.box
    assert rx0 > cx0 and ry0 > cy0 and rx1 < cx1 and ry1 < cy1 and weight.max() == 1.0
    # the same face with the crop running to the photo's bottom: that edge is not faded
    x0, y0, x1, _ = inside.box
    bottom = FacePaster(portrait, (x0, y0, x1, 512), landmarks, feather_fraction=0.05)
    assert bottom.compositor.fade_edges == (True, True, True, False)
    pasted = bottom.paste(np.full((64, 64, 3), 255, np.uint8))
    assert pasted.shape == (512, 512, 3) and bottom.size == (512, 512)
    assert np.array_equal(pasted[:y0], portrait[:y0])  # above the crop: the photo, bit for bit
