"""The QA report people look at: `<catalog>/_runs/<run_id>/report.html`.

One static HTML page per run, no scripts and no external resources: per row a poster
thumbnail, the status, the reason, the mouth-opening-vs-audio plot and links to the video, its
renditions (name and size; a failed one is marked) and its sidecar. Every link is relative (`../../<collection>/...` for published videos,
`plots/...` and `rejected/...` for what lives under the run), so the page works the same opened
from a local disk, a synced copy, or an object store served as a website.
"""

from __future__ import annotations

import html
from collections import Counter
from urllib.parse import quote

from prefect import task
from prefect.cache_policies import NONE

from tasks.publish import RUNS_DIR, Catalog
from tasks.records import FAILED_QA, PUBLISHED, QUARANTINED, SKIPPED_CACHED, STATUSES, RowOutcome

REPORT_FILE = "report.html"
STATUS_COLOURS = {
    PUBLISHED: "#1b7f3b",
    SKIPPED_CACHED: "#3867a8",
    QUARANTINED: "#9a6700",
    FAILED_QA: "#b3261e",
    "error": "#6e2b91",
}

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d1d1f; }
h1 { font-size: 20px; margin: 0 0 4px; }
.meta { color: #555; margin-bottom: 16px; }
.counts span { display: inline-block; margin-right: 12px; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f7; }
img.poster { width: 160px; height: auto; border-radius: 4px; display: block; }
img.plot { width: 420px; height: auto; display: block; }
.status { color: #fff; border-radius: 4px; padding: 2px 6px; font-size: 12px; white-space: nowrap; }
.none { color: #999; font-style: italic; }
.reason { max-width: 360px; }
"""


def _relative_link(catalog: Catalog, uri: str | None) -> str | None:
    """A link from `_runs/<run_id>/report.html` to an object of the same catalog."""
    if not uri:
        return None
    path = uri if catalog.local else catalog.fs._strip_protocol(uri)
    relative = catalog.relative(path)
    if relative == path:  # not inside the catalog: link it as it is
        return uri
    prefix = "../../"
    parts = relative.split("/")
    if parts[:1] == [RUNS_DIR] and len(parts) > 2:
        # Objects of this run sit beside the report.
        prefix, relative = "", "/".join(parts[2:])
    return prefix + "/".join(quote(part) for part in relative.split("/"))


def render_report_html(catalog: Catalog, run_id: str, outcomes: list[RowOutcome], summary: dict) -> str:
    counts = Counter(outcome.status for outcome in outcomes)
    count_html = "".join(
        f'<span><span class="status" style="background:{STATUS_COLOURS[s]}">{s}</span> {counts.get(s, 0)}</span>'
        for s in STATUSES
    )
    rows_html = []
    for outcome in outcomes:
        info = outcome.info
        video = _relative_link(catalog, outcome.output_uri)
        poster = _relative_link(catalog, outcome.poster_uri)
        plot = _relative_link(catalog, outcome.plot_uri)
        sidecar = _relative_link(catalog, outcome.sidecar_uri)
        if poster:
            thumb = f'<img class="poster" src="{html.escape(poster)}" alt="poster of {html.escape(info.row_id)}">'
            thumb = f'<a href="{html.escape(video)}">{thumb}</a>' if video else thumb
        else:
            thumb = '<span class="none">no video</span>'
        plot_html = f'<img class="plot" src="{html.escape(plot)}" alt="mouth opening vs audio envelope">' if plot else '<span class="none">no plot</span>'
        links = []
        if video:
            links.append(f'<a href="{html.escape(video)}">video</a>')
        for rendition in outcome.renditions:
            label = f"{rendition['name']} {rendition.get('width')}x{rendition.get('height')}"
            target = _relative_link(catalog, rendition.get("uri"))
            mark = "" if rendition.get("passed", True) else " (failed QA)"
            links.append(f'<a href="{html.escape(target)}">{html.escape(label)}</a>{mark}' if target else html.escape(label + mark))
        if sidecar:
            links.append(f'<a href="{html.escape(sidecar)}">sidecar</a>')
        colour = STATUS_COLOURS.get(outcome.status, "#444")
        rows_html.append(
            "<tr>"
            f"<td>{thumb}</td>"
            f"<td><b>{html.escape(info.row_id)}</b><br>{html.escape(info.collection)} / {html.escape(info.language)}"
            f"{'<br>' + html.escape(info.title) if info.title else ''}</td>"
            f'<td><span class="status" style="background:{colour}">{html.escape(outcome.status)}</span></td>'
            f'<td class="reason">{html.escape(outcome.reason) or "&mdash;"}</td>'
            f"<td>{plot_html}</td>"
            f"<td>{' &middot; '.join(links) or '&mdash;'}</td>"
            "</tr>"
        )
    meta = " &middot; ".join(
        html.escape(f"{key}: {value}") for key, value in summary.items() if key in ("manifest", "generator", "started_at", "finished_at")
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<link rel="icon" href="data:,">'
        f"<title>Catalog run {html.escape(run_id)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Catalog run {html.escape(run_id)}</h1><div class=\"meta\">{meta}</div>"
        f'<div class="counts">{count_html}</div><p></p>'
        "<table><thead><tr><th>poster</th><th>row</th><th>status</th><th>reason</th>"
        "<th>mouth opening vs audio</th><th>links</th></tr></thead><tbody>"
        + "".join(rows_html)
        + "</tbody></table><p class=\"meta\">Every video in this catalog is AI-generated.</p></body></html>\n"
    )


def write_report(catalog_url: str, run_id: str, outcomes: list[RowOutcome], summary: dict) -> str:
    """Write the run's report.html (atomically); returns its URI."""
    catalog = Catalog(catalog_url)
    page = render_report_html(catalog, run_id, outcomes, summary)
    return catalog.uri(catalog.write_bytes(page.encode("utf-8"), catalog.path(RUNS_DIR, run_id, REPORT_FILE)))


@task(name="write-report", cache_policy=NONE)
def write_report_task(catalog_url: str, run_id: str, outcomes: list[RowOutcome], summary: dict) -> str:
    """Write the QA report people look at."""
    return write_report(catalog_url, run_id, outcomes, summary)
