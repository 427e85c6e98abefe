"""What one render delivers besides the generated frames: the sound to mux and the renditions.

`plan_delivery` prepares, before the first frame: the script's sound normalised to the loudness
target (once, shared by every video of the row: `sonic_model.loudness`), and a
`RenditionCompositor` per rendition asked for (`sonic_model.renditions`), placed by the face
the generator animates. `render_video` then feeds its one frame stream to the master's encoder
and, composited, to each rendition's (`sonic_model.rendition_writer`).

`still_reference` gives QA the still picture a video's frames were composited into (for the
seam check): the rendition's canvas, the portrait for a paste-back master, None for a master
that is the generator's own crop (nothing composited).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sonic_model.composite import Placement
from sonic_model.errors import OutputError
from sonic_model.loudness import LoudnessReport, normalise_loudness
from sonic_model.rendition_writer import rendition_path
from sonic_model.renditions import MASTER, RENDITIONS, RenditionCompositor, generated_box, rendition_still, still_canvas

FaceBoxXYWH = tuple[float, float, float, float]


def subject_face(portrait_rgb: np.ndarray, face_box: FaceBoxXYWH | None = None) -> tuple[FaceBoxXYWH, np.ndarray]:
    """The face box (given, else the largest face) and its face mesh [468, 3] in portrait pixels."""
    from sonic_model.face import FaceBox, face_landmarks, largest_face

    box = FaceBox(*face_box, score=1.0) if face_box is not None else largest_face(portrait_rgb)
    return box.xywh, face_landmarks(portrait_rgb, box)


@dataclass
class DeliveryPlan:
    """The sound every video of the row muxes, and the renditions' compositors and paths."""

    audio_path: Path
    loudness: LoudnessReport | None
    compositors: dict[str, RenditionCompositor] = field(default_factory=dict)
    final_paths: dict[str, Path] = field(default_factory=dict)  # rendition name -> where it ends up
    first_pass_paths: dict[str, Path] = field(default_factory=dict)  # hidden names while encoding
    work_dir: Path | None = None

    def cleanup(self) -> None:
        """Remove the normalised sound and any first-pass file left behind."""
        for path in self.first_pass_paths.values():
            path.unlink(missing_ok=True)
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def plan_delivery(
    portrait_rgb: np.ndarray,
    audio_path: str | Path,
    out_path: str | Path,
    *,
    renditions: tuple[str, ...],
    loudness_target: float | None,
    expand_ratio: float,
    paste_back: bool,
    face_box: FaceBoxXYWH | None = None,
    landmarks: np.ndarray | None = None,
) -> DeliveryPlan:
    """Normalise the sound and set up the renditions for one render (module docstring)."""
    out_path = Path(out_path)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        work_dir = Path(tempfile.mkdtemp(prefix=f".{out_path.stem}.delivery-", dir=out_path.parent))
    except OSError as exc:
        raise OutputError(f"cannot write output in {out_path.parent}: {exc.strerror or exc}") from None
    try:
        loudness = None
        sound = Path(audio_path)
        if loudness_target is not None:
            sound = work_dir / "sound.wav"
            loudness = normalise_loudness(audio_path, sound, loudness_target)
        plan = DeliveryPlan(audio_path=sound, loudness=loudness, work_dir=work_dir)
        wanted = [name for name in renditions if name != MASTER]
        if wanted:
            if face_box is None or landmarks is None:
                face_box, landmarks = subject_face(portrait_rgb, face_box)
            source = generated_box((portrait_rgb.shape[1], portrait_rgb.shape[0]), face_box, expand_ratio, paste_back)
            for name in wanted:
                plan.compositors[name] = RenditionCompositor(RENDITIONS[name], portrait_rgb, landmarks, source)
                final = rendition_path(out_path, name)
                plan.final_paths[name] = final
                plan.first_pass_paths[name] = final.with_name(f".{final.stem}.encoded{final.suffix}")
        return plan
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise


def still_reference(
    portrait_rgb: np.ndarray,
    rendition: str,
    *,
    paste_back: bool,
    face_box: FaceBoxXYWH | None = None,
    landmarks: np.ndarray | None = None,
    placement: Placement | tuple[float, float, float] | None = None,
) -> np.ndarray | None:
    """The still picture a video was composited into (for QA's seam check), or None for a crop master.

    `placement` (the render's own, `RenderResult.renditions[i]["placement"]`: scale, dx, dy)
    rebuilds the rendition's canvas exactly; without it the framing is worked out again from
    the face (`face_box`, else the largest face), which may land a pixel apart.
    """
    if rendition == MASTER:
        return np.ascontiguousarray(portrait_rgb) if paste_back else None
    spec = RENDITIONS[rendition]
    if placement is not None:
        placement = placement if isinstance(placement, Placement) else Placement(*(float(v) for v in placement))
        return still_canvas(portrait_rgb, placement, (spec.width, spec.height))
    if landmarks is None:
        _, landmarks = subject_face(portrait_rgb, face_box)
    return rendition_still(spec, portrait_rgb, landmarks)
