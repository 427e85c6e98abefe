"""The generator registry (sonic_model.generators) and the face the render task hands a generator.

Registry: names -> lazy factories and versions; unknown or unloadable generators are clear
errors; the preview never imports torch; a version is known without loading weights.
Render task: the face the input probe approved (`ProbedRow.face_box`) is the one animated.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from two_faces import two_face_photo

import tasks.render
from manifests.schema import ManifestRow
from sonic_model.crop import prepare_portrait
from sonic_model.encode import frame_count
from sonic_model.errors import GeneratorUnavailableError, ParameterError
from sonic_model.generators import (
    RenderParams,
    create_generator,
    generator_names,
    generator_version,
    register_generator,
)
from sonic_model.video_reader import iter_video_frames
from tasks.records import ProbedRow
from tasks.scratch import discard_scratch

FIXTURES = Path(__file__).parent / "fixtures"
SPEECH = FIXTURES / "speech_zh_16k.flac"
QUICK = RenderParams(min_resolution=128, lipsync_calibration=False, motion_smoothing=0.0)


# --- the registry ------------------------------------------------------------------------------


def test_built_in_generators_and_their_versions_without_weights():
    from sonic_model.preview import PreviewGenerator
    from sonic_model.sonic import SonicGenerator

    assert {"preview", "sonic"} <= set(generator_names())
    assert generator_version("preview") == PreviewGenerator.version
    assert generator_version("sonic") == SonicGenerator.version  # the class's, no weights loaded
    assert isinstance(create_generator("preview"), PreviewGenerator)
    choice = tasks.render.choose_generator("sonic", "/no/such/weights")
    assert (choice.name, choice.version, choice.weights) == ("sonic", SonicGenerator.version, "/no/such/weights")


def test_unknown_generator_names_the_known_ones():
    with pytest.raises(ParameterError, match=r"unknown generator 'sonik'; choose one of .*'preview', 'sonic'"):
        create_generator("sonik")
    with pytest.raises(ParameterError, match="unknown generator"):
        tasks.render.choose_generator("sonik")


def test_sonic_without_weights_says_to_pass_them():
    with pytest.raises(ParameterError, match="needs weights: pass --weights DIR"):
        create_generator("sonic")


def test_a_generator_whose_code_does_not_import_is_a_clear_error_not_a_swallowed_one():
    register_generator("test-missing-module", "sonic_model.no_such_generator:Generator", version="1")
    with pytest.raises(GeneratorUnavailableError, match="importing sonic_model.no_such_generator failed") as error:
        create_generator("test-missing-module")
    assert isinstance(error.value.__cause__, ImportError)
    register_generator("test-missing-attribute", "sonic_model.crop:NoSuchGenerator")
    with pytest.raises(GeneratorUnavailableError, match="sonic_model.crop has no 'NoSuchGenerator'"):
        generator_version("test-missing-attribute")


def test_version_comes_from_registration_or_the_factory_never_from_creating_it():
    def must_not_be_called():
        raise AssertionError("creating the generator to learn its version")

    register_generator("test-versioned", must_not_be_called, version="7.1")
    assert tasks.render.choose_generator("test-versioned").version == "7.1"
    register_generator("test-unversioned", must_not_be_called)
    with pytest.raises(ParameterError, match="declares no version"):
        tasks.render.choose_generator("test-unversioned")


def test_bad_registrations_are_refused():
    for name, factory, version in [("", print, "1"), ("x", "no-colon", "1"), ("x", 42, "1"), ("x", print, "")]:
        with pytest.raises(ParameterError):
            register_generator(name, factory, version=version)


def test_the_preview_never_imports_torch():
    code = (
        "import sys; import sonic_model.generators as g; import sonic_model.render; g.create_generator('preview'); "
        "g.generator_version('preview'); sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


# --- the face the probe approved is the face animated ---------------------------------------------


class FaceBoxRecorder:
    """A stand-in generator that records the face box each render hands it (black frames)."""

    name, version = "test-face-box-recorder", "1"
    seen: list = []

    def output_size(self, portrait_rgb, params, *, face_box=None):
        return 64, 64

    def frames(self, portrait_rgb, audio, params, *, face_box=None):
        FaceBoxRecorder.seen.append(face_box)
        for _ in range(frame_count(audio.duration_s)):
            yield np.zeros((64, 64, 3), np.uint8)


def _probed(tmp_path: Path, photo: np.ndarray, face_box) -> ProbedRow:
    """A probed row for `photo` (saved as PNG) whose approved face is `face_box`."""
    portrait = tmp_path / "two_faces.png"
    Image.fromarray(photo).save(portrait)
    audio = tmp_path / "speech.flac"
    shutil.copy(SPEECH, audio)
    sha = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in (portrait, audio)}
    row = ManifestRow(
        row_id="two-faces",
        portrait_uri=str(portrait),
        audio_uri=str(audio),
        language="zh",
        consent_ref="release/test-001",
    )
    return ProbedRow(
        row=row,
        portrait_uri=str(portrait),
        audio_uri=str(audio),
        audio_duration_s=3.8,
        face_box=tuple(face_box),
        portrait_sha256=sha[portrait],
        audio_sha256=sha[audio],
        params=QUICK,
    )


def test_render_row_hands_the_generator_the_probed_face_box(tmp_path):
    register_generator(FaceBoxRecorder.name, FaceBoxRecorder)
    choice = tasks.render.choose_generator(FaceBoxRecorder.name)
    photo, _, other = two_face_photo()
    probed = _probed(tmp_path, photo, other.xywh)
    FaceBoxRecorder.seen.clear()
    discard_scratch(tasks.render.render_row(probed, choice, scratch_root=str(tmp_path)))
    assert FaceBoxRecorder.seen == [pytest.approx(other.xywh)]
    # The portrait changed between probe and render: the box was measured on another image, so
    # the generator detects afresh on what it renders.
    Image.fromarray(np.ascontiguousarray(photo[:, ::-1])).save(probed.portrait_uri)
    discard_scratch(tasks.render.render_row(probed, choice, scratch_root=str(tmp_path)))
    assert FaceBoxRecorder.seen[-1] is None


def test_the_catalog_render_animates_the_approved_face_not_the_largest(tmp_path):
    photo, largest, other = two_face_photo()
    probed = _probed(tmp_path, photo, other.xywh)
    rendered = tasks.render.render_row(probed, tasks.render.choose_generator("preview"), scratch_root=str(tmp_path))
    try:
        first = next(frame for _, frame in iter_video_frames(rendered.video_path)).astype(int)
    finally:
        discard_scratch(rendered)

    def crop_of(box) -> np.ndarray:
        return prepare_portrait(photo, box.xywh, expand_ratio=0.5, min_resolution=128).image.astype(int)

    assert first.shape == (128, 128, 3)
    # The astronaut (the approved face) in the video, not Hopper (the larger one).
    assert np.abs(first - crop_of(other)).mean() < 15 < 60 < np.abs(first - crop_of(largest)).mean()


def test_probed_row_face_box_is_xywh_in_portrait_pixels(tmp_path):
    # What render_row relies on: probe_media's face_box is (x, y, width, height) of the largest face
    # on the decoded (EXIF-oriented) portrait, the same boxes the face detector reports.
    from sonic_model.face import largest_face
    from sonic_model.image import load_image
    from tasks.probe import probe_media

    shutil.copy(FIXTURES / "portrait_hopper.jpg", tmp_path / "hopper.jpg")
    shutil.copy(SPEECH, tmp_path / "speech.flac")
    row = ManifestRow(
        row_id="hopper",
        portrait_uri="hopper.jpg",
        audio_uri="speech.flac",
        language="zh",
        consent_ref="release/test-001",
    )
    probed = probe_media(row, str(tmp_path / "manifest.parquet"))
    assert probed.face_box == pytest.approx(largest_face(load_image(tmp_path / "hopper.jpg")).xywh)
