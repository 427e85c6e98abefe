"""Orchestration overhead of the catalog flow per row (issue 3 target: <= 50 ms per row).

Runs the real `render-catalog` flow (Prefect ephemeral API, thread-pool task runner, the real
table validation, fsspec publish, index, ledger and report) on a 200-row manifest, with the
media work replaced by stand-ins so only orchestration is timed:
  - the generator is a no-op that hands back one prepared video (copied to the row's scratch),
  - the media probe returns the row as probed (per-row fake input hashes, so no cache hits),
  - QA passes without decoding, and the poster is a prepared JPEG.
The ephemeral API is started by a 1-row warm-up run first and is not counted.

    .venv/bin/python benchmarks/orchestration_overhead.py [--rows 200] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-prefect-home-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")

FIXTURES = ROOT / "tests" / "fixtures"


def prepare_media(work: Path) -> tuple[Path, Path]:
    """`work/media/` with a portrait (hopper.jpg) and speech (de.wav), and one real preview video
    of them (`work/prepared.mp4`, 128 px), the stand-ins' output. Shared with fanout_scaling.py."""
    from sonic_model.generators import RenderParams, create_generator
    from sonic_model.render import render_video

    media = work / "media"
    media.mkdir(parents=True)
    shutil.copy(FIXTURES / "portrait_hopper.jpg", media / "hopper.jpg")
    shutil.copy(FIXTURES / "speech_de_48k_stereo.wav", media / "de.wav")
    video = work / "prepared.mp4"
    render_video(
        create_generator("preview"), media / "hopper.jpg", media / "de.wav", video, RenderParams(min_resolution=128)
    )
    return media, video


def prepare(work: Path, rows: int) -> tuple[Path, Path, bytes]:
    """One real preview video and poster, and a manifest of `rows` rows."""
    import pandas as pd

    from tasks.publish import poster_jpeg

    media, video = prepare_media(work)
    manifest = work / "manifest.parquet"
    pd.DataFrame(
        [
            {
                "row_id": f"row-{i:05d}",
                "portrait_uri": "media/hopper.jpg",
                "audio_uri": "media/de.wav",
                "language": "de",
                "consent_ref": "release/bench",
                "collection": "bench",
            }
            for i in range(rows)
        ]
    ).to_parquet(manifest)
    return manifest, video, poster_jpeg(video)


def install_stand_ins(video: Path, poster: bytes, media: Path) -> None:
    import tasks.probe
    import tasks.publish
    import tasks.qa
    import tasks.render
    from tasks.records import CheckedVideo, ProbedRow, RenderedVideo, RowInfo, content_key

    def fake_probe(row, manifest_url, limits=None, **kwargs):
        digest = hashlib.sha256(row.row_id.encode()).hexdigest()
        return ProbedRow(
            row=row,
            portrait_uri=str(media / "hopper.jpg"),
            audio_uri=str(media / "de.wav"),
            audio_duration_s=4.58,
            face_box=(0.0, 0.0, 1.0, 1.0),
            portrait_sha256=digest,
            audio_sha256=digest,
            params=row.render_params(),
        )

    def no_op_generator(probed, choice, *, scratch_root=None, **kwargs):
        scratch = Path(tempfile.mkdtemp(prefix="bench-row-"))
        shutil.copy(video, scratch / "video.mp4")
        params = tasks.render.params_dict(probed.params)
        key = content_key(
            portrait_sha256=probed.portrait_sha256,
            audio_sha256=probed.audio_sha256,
            generator=choice.name,
            generator_version=choice.version,
            params=params,
        )
        return RenderedVideo(
            info=RowInfo.from_row(probed.row),
            content_key=key,
            video_path=str(scratch / "video.mp4"),
            portrait_path=probed.portrait_uri,
            audio_path=probed.audio_uri,
            portrait_uri=probed.portrait_uri,
            audio_uri=probed.audio_uri,
            portrait_sha256=probed.portrait_sha256,
            audio_sha256=probed.audio_sha256,
            generator=choice.name,
            generator_version=choice.version,
            params=params,
            audio_duration_s=4.58,
            render={
                "frames": 114,
                "fps": 25,
                "width": 128,
                "height": 128,
                "video_duration_s": 4.56,
                "audio_duration_s": 4.58,
            },
        )

    def passing_qa(rendered, thresholds=None):
        return CheckedVideo(rendered=rendered, passed=True, failures=(), figures={"stand_in": "yes"})

    tasks.probe.probe_media = fake_probe
    tasks.render.render_row = no_op_generator
    tasks.qa.check_rendered = passing_qa
    tasks.publish.poster_jpeg = lambda path, **kw: poster


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-orchestration-"))
    try:
        manifest, video, poster = prepare(work, args.rows)
        install_stand_ins(video, poster, work / "media")
        from prefect.task_runners import ThreadPoolTaskRunner

        from flows.render_catalog import render_catalog

        flow = render_catalog.with_options(task_runner=ThreadPoolTaskRunner(max_workers=args.concurrency))
        warm_manifest = work / "warm.parquet"
        import pandas as pd

        pd.read_parquet(manifest).head(1).to_parquet(warm_manifest)
        started = time.perf_counter()
        flow(manifest=str(warm_manifest), catalog=str(work / "warm-catalog"), concurrency=args.concurrency)
        warm_up = time.perf_counter() - started

        started = time.perf_counter()
        summary = flow(manifest=str(manifest), catalog=str(work / "catalog"), concurrency=args.concurrency)
        wall = time.perf_counter() - started
        published = summary["counts"].get("published", 0)
        print(f"warm-up (ephemeral API start + 1 row): {warm_up:.1f} s")
        print(
            f"rows: {args.rows}, published: {published}, concurrency: {args.concurrency}, verdicts: {summary['counts']}"
        )
        print(f"flow wall time: {wall:.2f} s -> {1000 * wall / args.rows:.1f} ms per row (target <= 50 ms)")
        return 0 if published == args.rows else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
