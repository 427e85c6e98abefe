"""What the orchestration benchmarks' stand-ins return: one prepared video's render record, a passing QA.

Pure pieces with no side effects; the modules that swap them into `tasks` (fanout_stand_ins.py,
nightly_repeat.py) do that themselves.
"""

from __future__ import annotations

from sonic_model.render import RenderResult
from tasks.records import CheckedVideo


def prepared_render_result(generator, out_path, seconds: float) -> RenderResult:
    """The render record of the prepared 4.56 s, 128x128 video the stand-ins copy into place."""
    return RenderResult(
        output_path=str(out_path),
        generator=generator.name,
        generator_version=generator.version,
        frames=114,
        fps=25,
        width=128,
        height=128,
        video_duration_s=4.56,
        audio_duration_s=4.58,
        seconds=seconds,
    )


def passing_qa(rendered, thresholds=None) -> CheckedVideo:
    return CheckedVideo(rendered=rendered, passed=True, failures=(), figures={"stand_in": "yes"})
