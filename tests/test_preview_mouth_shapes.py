"""Mouth shapes of the preview generator, measured on its output frames with the face mesh.

The speech is espeak-ng's (tests/fixtures/make_mouth_shape_speech.py made it), with the
synthesizer's own phoneme timings in mouth_shape_speech.json, so the tests know where each
vowel and each "m"/"p" is without guessing from the sound. Both example presenters are used:
one with closed lips at rest, one smiling with her teeth showing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sonic_model.audio import load_audio
from sonic_model.face import (
    INNER_LIP_LOWER_CONTOUR,
    INNER_LIP_UPPER_CONTOUR,
    face_landmarks,
    interocular_distance,
    mouth_opening,
)
from sonic_model.generators import RenderParams
from sonic_model.image import load_image
from sonic_model.preview import PreviewGenerator

FIXTURES = Path(__file__).parent / "fixtures"
PORTRAITS = {"hopper": FIXTURES / "portrait_hopper.jpg", "astronaut": FIXTURES / "portrait_astronaut.jpg"}
SPEECH = json.loads((FIXTURES / "mouth_shape_speech.json").read_text())
FPS = 25
# Landmark noise of the face mesh on a still face is ~0.005 IOD in the opening.
MESH_TOLERANCE = 0.01


def _render(portrait: str, speech: str, wanted: set[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{frame index: (frame, landmarks)} for the `wanted` frames of the preview of `speech` on
    `portrait` at 512 px. Each wanted frame is meshed on its own (detection + mesh), so no
    frame's measurement leans on the previous frame's landmarks."""
    generator = PreviewGenerator()
    clip = load_audio(FIXTURES / speech)
    measured = {}
    for index, frame in enumerate(generator.frames(load_image(PORTRAITS[portrait]), clip, RenderParams())):
        if index in wanted:
            measured[index] = (frame, face_landmarks(frame))
    return measured


def _mouth_width(landmarks: np.ndarray) -> float:
    """Outer lip corner to corner, in inter-ocular distances."""
    return float(np.linalg.norm(landmarks[61, :2] - landmarks[291, :2])) / interocular_distance(landmarks)


def _vowel_frames(speech: str, voice: str) -> range:
    """Frames inside the voice's sustained vowel, leaving 0.12 s at each end for the transitions."""
    segment = next(s for s in SPEECH[speech] if s["voice"] == voice)
    start = segment["phonemes"][0][0] + 0.12
    end = segment["end_s"] - 0.12
    return range(int(np.ceil(start * FPS)), int(end * FPS))


@pytest.fixture(scope="module", params=sorted(PORTRAITS))
def vowels(request) -> tuple[str, dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]]:
    portrait = request.param
    measured = {}
    for name in ("vowels_oo_16k.flac", "vowels_ee_16k.flac"):
        wanted = {index for segment in SPEECH[name] for index in _vowel_frames(name, segment["voice"])}
        measured[name] = _render(portrait, name, wanted)
    return portrait, measured


@pytest.mark.parametrize("voice", [segment["voice"] for segment in SPEECH["vowels_oo_16k.flac"]])
def test_rounded_vowel_makes_a_narrower_mouth_than_a_spread_one(vowels, voice):
    portrait, measured = vowels
    widths = {
        name: float(np.mean([_mouth_width(measured[name][index][1]) for index in _vowel_frames(name, voice)]))
        for name in measured
    }
    rounded, spread = widths["vowels_oo_16k.flac"], widths["vowels_ee_16k.flac"]
    ratio = rounded / spread
    print(f"{portrait} {voice}: width oo {rounded:.3f} / ee {spread:.3f} IOD = {ratio:.3f}")
    assert ratio <= 0.85, (portrait, voice, widths)


MAMA_PAPA_PHONEMES = [
    (start, phoneme) for segment in SPEECH["mama_papa_16k.flac"] for start, phoneme in segment["phonemes"]
]
MAMA_PAPA_ONSETS = [(start, phoneme) for start, phoneme in MAMA_PAPA_PHONEMES if phoneme in ("m", "p")]
MAMA_PAPA_VOWELS = [start + 0.06 for start, phoneme in MAMA_PAPA_PHONEMES if phoneme in ("a", "A:")]


@pytest.fixture(scope="module", params=sorted(PORTRAITS))
def mama_papa(request):
    # frame 0 (0.45 s of silence: the portrait at rest), each onset's frame +-1, the open vowels
    wanted = {0} | {int(start * FPS) + step for start, _ in MAMA_PAPA_ONSETS for step in (-1, 0, 1)}
    wanted |= {int(start * FPS) for start in MAMA_PAPA_VOWELS}
    return request.param, _render(request.param, "mama_papa_16k.flac", wanted)


def test_lips_close_at_every_m_and_p(mama_papa):
    portrait, measured = mama_papa
    rest = mouth_opening(measured[0][1])
    assert len(MAMA_PAPA_ONSETS) == 8
    for start, phoneme in MAMA_PAPA_ONSETS:
        frame = int(start * FPS)
        nearest = [mouth_opening(measured[frame + step][1]) for step in (-1, 0, 1) if frame + step in measured]
        assert min(nearest) <= rest + MESH_TOLERANCE, (portrait, phoneme, start, rest, nearest)
    # and between them the mouth opens on the vowels
    assert max(mouth_opening(measured[int(start * FPS)][1]) for start in MAMA_PAPA_VOWELS) > rest + 0.08


def test_open_mouth_interior_is_neither_black_nor_flat(mama_papa):
    import cv2

    portrait, measured = mama_papa
    widest = max(measured, key=lambda index: mouth_opening(measured[index][1]))
    frame, points = measured[widest]
    assert mouth_opening(points) > 0.15
    polygon = points[list(INNER_LIP_UPPER_CONTOUR) + list(INNER_LIP_LOWER_CONTOUR[::-1]), :2]
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))  # away from the lips' own pixels
    inside = frame[mask.astype(bool)].astype(np.float64)
    assert len(inside) > 200
    luminance = inside @ [0.299, 0.587, 0.114]
    black = float(np.mean(luminance < 8))
    spread = float(np.std(luminance))
    hue_spread = float(np.std(inside[:, 0] - inside[:, 2]))
    print(
        f"{portrait}: interior of {len(inside)} px, luminance 5/50/95 % = "
        f"{np.percentile(luminance, [5, 50, 95]).round(1)}, "
        f"std {spread:.1f}, red-blue std {hue_spread:.1f}, near-black share {black:.3f}"
    )
    assert black < 0.02  # not a black hole
    assert np.percentile(luminance, 5) >= 10
    assert spread >= 12  # shading, teeth, tongue: not one flat colour
    assert hue_spread >= 4  # more than one hue (dark red cavity, tongue, teeth)
