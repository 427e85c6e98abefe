"""The seam check (sonic_model/qa/seams.py through check_video): generated frames pasted back with
a hard rectangle must fail it, the same frames through the soft face/neck mask must pass it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sonic_model.audio import load_audio
from sonic_model.composite import Placement, SoftCompositor
from sonic_model.encode import VideoWriter, frame_count
from sonic_model.face import face_landmarks, largest_face
from sonic_model.image import load_image
from sonic_model.qa import QAThresholds, check_video
from sonic_model.qa.seams import seam_strength
from sonic_model.renditions import RENDITIONS, RenditionCompositor, generated_box

FIXTURES = Path(__file__).parent / "fixtures"
AUDIO = FIXTURES / "speech_en_16k.wav"


@pytest.fixture(scope="module")
def scene():
    """The landscape photo, its face, the generated crop's box, and crop frames as a diffusion
    model makes them (the whole crop sways by a few pixels and is 4 levels brighter), for the
    full length of the script."""
    from sonic_model.generators import RenderParams
    from sonic_model.preview import PreviewGenerator

    photo = load_image(FIXTURES / "landscape_offcentre.jpg")
    box = largest_face(photo)
    landmarks = face_landmarks(photo, box)
    source = generated_box(photo.shape[1::-1], box.xywh, 0.5, False)
    audio = load_audio(AUDIO)
    frames = []
    for index, frame in enumerate(PreviewGenerator().frames(photo, audio, RenderParams())):
        shift = np.float32([[1, 0, 3 * np.sin(index / 5)], [0, 1, 2 * np.cos(index / 7)]])
        moved = cv2.warpAffine(frame, shift, frame.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
        frames.append(np.clip(moved.astype(np.int16) + 4, 0, 255).astype(np.uint8))
    assert len(frames) == frame_count(audio.duration_s)
    return photo, landmarks, source, audio, frames


def hard_paste(still: np.ndarray, frame: np.ndarray, rect) -> np.ndarray:
    """What a naive paste-back does: the crop resized into its rectangle, edges and all."""
    x0, y0, x1, y1 = (int(round(v)) for v in rect)
    out = still.copy()
    out[y0:y1, x0:x1] = cv2.resize(frame, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    return out


def encode(path: Path, frames) -> Path:
    first = next(iter(frames))
    with VideoWriter(
        path, width=first.shape[1], height=first.shape[0], num_frames=len(frames), audio_path=AUDIO
    ) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def test_seam_strength_sees_a_straight_step_and_not_the_portraits_own_lines():
    rng = np.random.default_rng(0)
    reference = cv2.GaussianBlur(rng.uniform(60, 200, (256, 256)).astype(np.float32), (0, 0), 2)
    reference[128:, :] += 40  # the portrait's own straight edge (a table top)
    assert seam_strength(reference, reference) == 0
    frame = reference.copy()
    frame[40:120, 60:200] += 6  # a pasted block, 6 levels brighter: a seam along its four sides
    assert seam_strength(frame, reference) > 4
    soft = reference.copy()
    ramp = np.clip(
        np.minimum.outer(
            np.minimum(np.arange(256) - 30, 150 - np.arange(256)), np.minimum(np.arange(256) - 40, 220 - np.arange(256))
        )
        / 25,
        0,
        1,
    )
    soft += 6 * ramp  # the same change, feathered over 25 px
    assert seam_strength(soft, reference) < 1


def test_hard_pasted_paste_back_fails_and_the_soft_composite_passes(tmp_path, scene):
    photo, landmarks, source, audio, frames = scene
    hard = encode(tmp_path / "hard.mp4", [hard_paste(photo, frame, source) for frame in frames])
    compositor = SoftCompositor(photo, landmarks, source, Placement())
    soft = encode(tmp_path / "soft.mp4", [compositor.composite(frame).copy() for frame in frames])
    thresholds = QAThresholds(min_sync_correlation=0.0)  # this test is about seams only
    failed = check_video(hard, photo, audio, thresholds, still_reference=photo)
    passed = check_video(soft, photo, audio, thresholds, still_reference=photo)
    hard_strength, soft_strength = failed.figures["seam_strength"], passed.figures["seam_strength"]
    assert hard_strength > thresholds.max_seam_strength > soft_strength
    assert any(f.startswith("visible seam where the animated face was composited: a ") for f in failed.failures)
    assert not any("seam" in f for f in passed.failures)
    # Without a still reference (a generator's own crop: nothing composited) there is no seam figure.
    plain = check_video(soft, photo, audio, thresholds)
    assert plain.figures["seam_strength"] == "n/a"


def test_hard_pasted_vertical_rendition_fails_and_ours_passes(tmp_path, scene):
    photo, landmarks, source, audio, frames = scene
    short = frames[:50]
    vertical = RenditionCompositor(RENDITIONS["vertical"], photo, landmarks, source)
    rect = vertical.placement.box(source)
    hard = encode(tmp_path / "hard_vertical.mp4", [hard_paste(vertical.still, frame, rect) for frame in short])
    ours = encode(tmp_path / "vertical.mp4", [vertical.frame(frame).copy() for frame in short])
    from sonic_model.face import LandmarkTracker
    from sonic_model.qa.seams import SeamMeter
    from sonic_model.video_reader import iter_rgb_and_luma_frames

    strengths = {}
    for name, path in (("hard", hard), ("ours", ours)):
        meter, tracker = SeamMeter(vertical.still), LandmarkTracker()
        for index, rgb, luma in iter_rgb_and_luma_frames(path):
            if index % 5 == 0:
                meter.add(luma, tracker(rgb))
        strengths[name] = meter.strength
    assert strengths["hard"] > QAThresholds().max_seam_strength > strengths["ours"]


def test_our_paste_back_render_passes_the_seam_check(tmp_path):
    """The real render path with --paste-back (the preview animates the photo in place): no seam."""
    from sonic_model.generators import RenderParams, create_generator
    from sonic_model.render import render_video

    portrait = load_image(FIXTURES / "portrait_hopper.jpg")
    out = tmp_path / "paste_back.mp4"
    render_video(
        create_generator("preview"), portrait, FIXTURES / "speech_en_pause_16k.wav", out, RenderParams(paste_back=True)
    )
    result = check_video(
        out,
        portrait,
        load_audio(FIXTURES / "speech_en_pause_16k.wav"),
        QAThresholds(loudness_target_lufs=-14.0),
        still_reference=portrait,
    )
    assert result.figures["seam_strength"] < QAThresholds().max_seam_strength
    assert result.passed, result.failures
