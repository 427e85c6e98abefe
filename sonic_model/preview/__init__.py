"""The CPU preview generator: a lip-synced talking portrait without model weights.

It animates the portrait itself by warping it along its face mesh (`rig`), driven by control
tracks computed from the audio (`controls`, with the acoustic cues in `articulation`): mouth
opening follows loudness and the first formant with a small look-ahead, the lips round or
spread with the vowel's formants and shut for "m", "b" and "p", the mouth shuts in pauses of
300 ms or more, the opened lips show a shaded interior with teeth and tongue, the eyes blink
and the head sways a little. `dynamic_scale`
scales the mouth motion and `motion_scale` the head and expression motion (defaults 1.0 / 1.0,
ranges 0.5-2.0, as in the Sonic workflow). The same seed always gives the same video.
"""

from sonic_model.preview.generator import (
    DEFAULT_DYNAMIC_SCALE,
    DEFAULT_MOTION_SCALE,
    DYNAMIC_SCALE_RANGE,
    MOTION_SCALE_RANGE,
    PreviewGenerator,
)

__all__ = [
    "PreviewGenerator",
    "DEFAULT_DYNAMIC_SCALE",
    "DEFAULT_MOTION_SCALE",
    "DYNAMIC_SCALE_RANGE",
    "MOTION_SCALE_RANGE",
]
