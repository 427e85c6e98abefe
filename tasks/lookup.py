"""Is a row already in the catalog? The lookup that lets a run skip what is already published.

A row's content key (`tasks.records.content_key`: input hashes + generator + version +
parameters) is stored in its sidecar when it is published. After its media are probed (the
probe hashes them), a row whose key is published, with its video there, ends
`skipped_cached` instead of being rendered again.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from tasks.catalog import Catalog, published_renditions
from tasks.records import SKIPPED_CACHED, ProbedRow, RowInfo, RowOutcome
from tasks.render import key_for


def find_published(catalog_url: str, info: RowInfo, key: str) -> RowOutcome | None:
    """`skipped_cached` when this row's content key is already published (video + sidecar), else None."""
    catalog = Catalog(catalog_url)
    sidecar_path = catalog.path(info.key_prefix + ".json")
    sidecar = catalog.read_json(sidecar_path)
    if not sidecar or sidecar.get("content_key") != key:
        return None
    video_path = catalog.path(sidecar.get("video", info.key_prefix + ".mp4"))
    if not catalog.exists(video_path):
        return None
    if not all(catalog.exists(catalog.path(r["video"])) for r in sidecar.get("renditions", [])):
        return None  # a rendition went missing: render the row again
    poster = sidecar.get("poster")
    return RowOutcome(
        info=info,
        status=SKIPPED_CACHED,
        reasons=(f"already published by run {sidecar.get('run_id', '?')} with the same inputs and parameters",),
        output_uri=catalog.uri(video_path),
        poster_uri=catalog.uri(catalog.path(poster)) if poster else None,
        sidecar_uri=catalog.uri(sidecar_path),
        content_key=key,
        qa_figures=sidecar.get("qa", {}).get("figures", {}),
        postprocess=sidecar.get("postprocess", {}),
        renditions=published_renditions(catalog, sidecar.get("renditions", [])),
    )


# Its own task, so the lookup shows as a step of the row in Prefect's UI (`find-published-<row_id>`).
# One sidecar read: the cheapest task of a row. No cache: the catalog may have changed since.
@task(name="find-published", cache_policy=NONE)
def find_published_task(probed: ProbedRow, catalog_url: str, choice: Any) -> RowOutcome | None:
    """The row's `skipped_cached` outcome if `probed` rendered with the generator `choice` is
    already published in the catalog, else None (render it)."""
    return find_published(catalog_url, RowInfo.from_row(probed.row), key_for(probed, choice))
