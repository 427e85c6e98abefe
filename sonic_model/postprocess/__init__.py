"""Post-processing every generator's output goes through: motion smoothing, lip-sync calibration.

`render_video` runs both in the same pass as the encode (see `sonic_model.render`);
`calibrate_video` re-times any existing talking-head video on its own.
"""

from sonic_model.postprocess.lipsync import (
    MAX_AV_OFFSET_MS,
    CalibrationReport,
    audio_delay_ms,
    calibrate_video,
    measure_offset_from_mouth,
    mux_shifted_audio,
)
from sonic_model.postprocess.smoothing import (
    DEFAULT_MOTION_SMOOTHING,
    MOTION_SMOOTHING_RANGE,
    STABLE_POINTS,
    HeadMotionSmoother,
    SmoothingFigures,
)

__all__ = [
    "DEFAULT_MOTION_SMOOTHING",
    "MAX_AV_OFFSET_MS",
    "MOTION_SMOOTHING_RANGE",
    "STABLE_POINTS",
    "CalibrationReport",
    "HeadMotionSmoother",
    "SmoothingFigures",
    "audio_delay_ms",
    "calibrate_video",
    "measure_offset_from_mouth",
    "mux_shifted_audio",
]
