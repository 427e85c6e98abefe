"""QA speed: real-time factor of `check_video` on a 10 s, 512 px talking-head video.

    .venv/bin/python benchmarks/qa_speed.py [--generator synthetic|preview] [--repeats 3]

The video is rendered once (not timed) from the fixture portrait and ~10 s of fixture speech:
by the preview generator when asked and available, else by the test suite's synthetic mouth
animator (a real portrait whose mouth opens with the speech envelope). Then `check_video` runs
`--repeats` times after one warm-up (model loading is a per-process cost, reported apart).
Real-time factor = video duration / QA wall time; the target is >= 5x on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

# benchmarks/ is on sys.path when run as a script: one speech maker for every benchmark.
from preview_speed import make_speech  # noqa: E402

from sonic_model.audio import load_audio  # noqa: E402
from sonic_model.image import load_image  # noqa: E402
from sonic_model.qa import check_video, clear_portrait_cache  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
SECONDS = 10.0


def render(portrait: np.ndarray, audio_wav: Path, out_path: Path, generator: str) -> str:
    if generator == "preview":
        try:
            from sonic_model.generators import RenderParams, create_generator
            from sonic_model.render import render_video

            render_video(create_generator("preview"), portrait, audio_wav, out_path, RenderParams(min_resolution=512))
            return "preview generator"
        except ImportError as exc:
            print(f"preview generator not available ({exc}); using the synthetic animator")
    from test_qa import write_talking_video

    write_talking_video(out_path, portrait, audio_wav)
    return "synthetic mouth animator"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", choices=("synthetic", "preview"), default="synthetic")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    portrait = load_image(FIXTURES / "portrait_astronaut.jpg")  # 512 x 512
    with tempfile.TemporaryDirectory() as scratch:
        wav = Path(scratch) / "speech10.wav"
        make_speech(SECONDS, wav)
        video = Path(scratch) / "talk.mp4"
        made_by = render(portrait, wav, video, args.generator)
        audio = load_audio(wav)

        started = time.perf_counter()
        result = check_video(video, portrait, audio)
        first = time.perf_counter() - started
        times, cpu_times, cached_times = [], [], []
        for _ in range(args.repeats):
            # Uncached: the portrait's face and dlib descriptor are recomputed, as for a new presenter.
            clear_portrait_cache()
            started, cpu_started = time.perf_counter(), time.process_time()
            check_video(video, portrait, audio)
            times.append(time.perf_counter() - started)
            cpu_times.append(time.process_time() - cpu_started)
            started = time.perf_counter()
            check_video(video, portrait, audio)  # same presenter again (a catalog's usual case)
            cached_times.append(time.perf_counter() - started)

    best, median = min(times), float(np.median(times))
    duration = float(result.figures["video_duration_s"])
    print(
        f"video: {result.figures['width']}x{result.figures['height']}, {duration:.2f} s, "
        f"{result.figures['num_frames']} frames, made by the {made_by}; QA passed={result.passed}"
    )
    if result.failures:
        print("  failures: " + "; ".join(result.failures))
    print(f"first call (loads models): {first:.2f} s")
    print(
        f"QA wall time over {args.repeats} runs: median {median:.2f} s, best {best:.2f} s "
        f"(CPU time median {float(np.median(cpu_times)):.2f} s; cores are shared, so wall time varies)"
    )
    print(f"QA real-time factor: {duration / median:.1f}x (median), {duration / best:.1f}x (best); target >= 5x")
    cached = float(np.median(cached_times))
    print(
        f"same presenter again (portrait reference cached): median {cached:.2f} s = {duration / cached:.1f}x real time"
    )


if __name__ == "__main__":
    main()
