"""Captions burned into a published row's renditions, made from the published renditions
themselves: no frames generated, no QA run again, the master left as it is.

The plan (`tasks.plan`) sends a row here when the only thing that changed since it was published
is that its captions are now to be burned in (`burn_captions` switched on, inputs unchanged, the
key without the switch the published one). Its published renditions carry the captions as a
soft track only, so their pictures are the renditions as rendered: each is fetched, burned
(`tasks.publish.with_burned_captions`: one more encode of the picture at the rendition's own
settings), signed again and published under its name, and the sidecar is rewritten with the new
content key, the parameters and the `burned_captions` record. The master, its poster, its
captions files and its credentials are kept as they were (its own Content Credentials name the
key it was rendered under). Switching the burning off cannot go this way (the published pictures
have the captions in them): the plan renders such a row again.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from tasks.catalog import Catalog, now_iso, published_renditions, rendition_key, withdraw
from tasks.publish import with_burned_captions
from tasks.records import PUBLISHED, RenderedVideo, RowInfo, RowOutcome
from tasks.signing import sign_renditions


def burn_published(
    info: RowInfo,
    catalog_url: str,
    run_id: str,
    keys: tuple[str, str],
    params: dict,
    signing: dict | None,
    why: str = "",
) -> RowOutcome:
    """Burn the captions into the published renditions of the row at `info.key_prefix` and publish
    them under `keys` (content key, frames key: both have `burn_captions` now) with `params` (the
    row's parameters now)."""
    content_key, frames_key = keys
    started = time.perf_counter()
    catalog = Catalog(catalog_url)
    prefix = info.key_prefix
    sidecar_path = catalog.path(prefix + ".json")
    sidecar = catalog.read_json(sidecar_path)
    if not sidecar or not sidecar.get("captions") or not sidecar.get("renditions"):
        raise RuntimeError(f"{prefix}: the published sidecar has no captions or no renditions to burn them into")
    captions = sidecar["captions"]
    vtt = catalog.fs.cat_file(catalog.path(captions["vtt"])).decode("utf-8")
    srt = catalog.fs.cat_file(catalog.path(captions["srt"])).decode("utf-8")
    scratch = Path(tempfile.mkdtemp(prefix="sonic-burn-"))
    try:
        renditions = []
        for entry in sidecar["renditions"]:
            local = scratch / f"{entry['name']}.mp4"
            catalog.fs.get_file(catalog.path(entry["video"]), str(local))
            renditions.append({"name": entry["name"], "path": str(local), "width": entry["width"],
                               "height": entry["height"]})  # fmt: skip
        inputs, generator = sidecar.get("inputs", {}), sidecar.get("generator", {})
        rendered = RenderedVideo(
            info=info,
            content_key=content_key,
            video_path="",  # the master is not touched
            portrait_path="",
            audio_path="",
            portrait_uri=inputs.get("portrait_uri", ""),
            audio_uri=inputs.get("audio_uri", ""),
            portrait_sha256=inputs.get("portrait_sha256", ""),
            audio_sha256=inputs.get("audio_sha256", ""),
            generator=generator.get("name", ""),
            generator_version=generator.get("version", ""),
            params=params,
            audio_duration_s=float(inputs.get("audio_duration_s") or 0.0),
            render=dict(sidecar.get("video_facts") or {}),
            renditions=tuple(renditions),
        )
        rendered, burned = with_burned_captions(rendered, {"srt": srt, "language": captions["language"]})
        signed = sign_renditions(rendered, signing, vtt)
        withdraw(catalog, sidecar_path)  # as publishing does: no old sidecar describes new files
        published = []  # the sidecar's rendition entries, each published at its own `video` key
        for rendition, entry in zip(rendered.renditions, sidecar["renditions"], strict=True):
            path, record = signed[rendition["name"]]
            catalog.put_file(path, catalog.path(rendition_key(prefix, rendition["name"]) + ".mp4"))
            published.append({**entry, "credentials": record, "captions_burned": True})
        timings = {"burn_s": round(time.perf_counter() - started, 3)}
        rewritten = {
            **sidecar,
            "content_key": content_key,
            "frames_key": frames_key,  # burned renditions: a captions change now renders again
            "generator": {**generator, "params": params},
            "renditions": published,
            "burned_captions": {**burned, "from_run": sidecar.get("run_id")},
            "timings": timings,
            "run_id": run_id,
            "published_at": now_iso(),
        }
        written = catalog.write_bytes(json.dumps(rewritten, indent=2, default=str).encode("utf-8"), sidecar_path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return RowOutcome(
        info=info,
        status=PUBLISHED,
        output_uri=catalog.uri(catalog.path(sidecar["video"])),
        poster_uri=catalog.uri(catalog.path(sidecar["poster"])) if sidecar.get("poster") else None,
        sidecar_uri=catalog.uri(written),
        content_key=content_key,
        qa_figures=(sidecar.get("qa") or {}).get("figures", {}),
        timings=timings,
        postprocess=sidecar.get("postprocess") or {},
        plan=why,
        renditions=published_renditions(catalog, published),
    )


# The row's one task (`burn-published-<row_id>` in Prefect's UI): the function itself, so its
# parameters are written once.
burn_published_task = task(name="burn-published", cache_policy=NONE)(burn_published)
