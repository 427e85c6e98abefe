"""The QA report people look at: `<catalog>/_runs/<run_id>/report.html`.

Static HTML, no scripts and no external resources, usable at catalog scale (100,000 rows):

1. the summary (counts per verdict, what the plan decided) comes first;
2. then every row that needs a person (quarantined, failed QA, error), in full: poster,
   status, reason, the mouth-opening-vs-audio plot, links to the video, its renditions (name
   and size; a failed one is marked) and its sidecar;
3. then the rows published by this run: in full while they are few (`FULL_PUBLISHED_ROWS`),
   else compactly (a small poster, the row, links to its video, sidecar and plot);
4. then the rows already in the catalog that the run skipped, collapsed (`<details>`).

Each of the three lists is shown on the page itself while it is short (`INLINE_ROWS`); a longer
one is split into pages of `PAGE_ROWS` rows beside the report (`report-<list>-0001.html`, ...),
which the report links, so report.html stays a few kilobytes whatever the catalog holds and no
page holds more than `PAGE_ROWS` rows. Every image is loaded lazily (`loading="lazy"`, with
its box sized up front), so a page fetches only the posters and plots scrolled into view.

Every link is relative (`../../<collection>/...` for published videos, `plots/...` and
`rejected/...` for what lives under the run), so the pages work the same opened from a local
disk, a synced copy, or an object store served as a website.
"""

from __future__ import annotations

import html
from collections import Counter
from urllib.parse import quote

from prefect import task
from prefect.cache_policies import NONE

from sonic_model.internals.fsspec import fs_path
from tasks.catalog import RUNS_DIR, Catalog
from tasks.records import (
    CAPTIONS_UPDATED,
    ERROR,
    FAILED_QA,
    PUBLISHED,
    QUARANTINED,
    SKIPPED_CACHED,
    STATUSES,
    RowOutcome,
)

REPORT_FILE = "report.html"
NEEDS_A_PERSON = (QUARANTINED, FAILED_QA, ERROR)
# A list this long or shorter is shown on report.html itself; a longer one gets pages.
INLINE_ROWS = 100
PAGE_ROWS = 500
# Published rows are shown in full (with their lip-sync plot) while there are this few.
FULL_PUBLISHED_ROWS = 20
STATUS_COLOURS = {
    PUBLISHED: "#1b7f3b",
    SKIPPED_CACHED: "#3867a8",
    CAPTIONS_UPDATED: "#2f7d8c",
    QUARANTINED: "#9a6700",
    FAILED_QA: "#b3261e",
    ERROR: "#6e2b91",
}

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d1d1f; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; }
.meta { color: #555; margin-bottom: 16px; }
.counts span { display: inline-block; margin-right: 12px; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 8px; text-align: left; vertical-align: top; }
td.c { padding: 3px 8px; }
th { background: #f5f5f7; }
img.poster { width: 160px; height: 160px; object-fit: contain; border-radius: 4px; display: block; }
img.thumb { width: 64px; height: 64px; object-fit: contain; border-radius: 3px; display: block; }
img.plot { width: 420px; height: 210px; object-fit: contain; display: block; }
.status { color: #fff; border-radius: 4px; padding: 2px 6px; font-size: 12px; white-space: nowrap; }
.none { color: #999; font-style: italic; }
.reason { max-width: 360px; }
.pages a { margin-right: 8px; }
summary { cursor: pointer; }
"""


def _relative_link(catalog: Catalog, uri: str | None) -> str | None:
    """A link from `_runs/<run_id>/report.html` to an object of the same catalog."""
    if not uri:
        return None
    path = uri if catalog.local else fs_path(catalog.fs, uri)
    relative = catalog.relative(path)
    if relative == path:  # not inside the catalog: link it as it is
        return uri
    prefix = "../../"
    parts = relative.split("/")
    if parts[:1] == [RUNS_DIR] and len(parts) > 2:
        # Objects of this run sit beside the report.
        prefix, relative = "", "/".join(parts[2:])
    return prefix + "/".join(quote(part) for part in relative.split("/"))


def _status(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#444")
    return f'<span class="status" style="background:{colour}">{html.escape(status)}</span>'


def _links(catalog: Catalog, outcome: RowOutcome, plot: bool = False) -> str:
    links = []
    for label, uri in (("video", outcome.output_uri), ("sidecar", outcome.sidecar_uri)) + (
        (("plot", outcome.plot_uri),) if plot else ()
    ):
        target = _relative_link(catalog, uri)
        if target:
            links.append(f'<a href="{html.escape(target)}">{label}</a>')
        if label == "video":
            links += [_rendition_link(catalog, rendition) for rendition in outcome.renditions]
    return " &middot; ".join(links) or "&mdash;"


def _rendition_link(catalog: Catalog, rendition: dict) -> str:
    """A rendition's name and size, linked to its video; a failed one is marked."""
    size = f" {rendition['width']}x{rendition['height']}" if rendition.get("width") else ""
    label = f"{rendition['name']}{size}"
    target = _relative_link(catalog, rendition.get("uri"))
    mark = "" if rendition.get("passed", True) else " (failed QA)"
    return f'<a href="{html.escape(target)}">{html.escape(label)}</a>{mark}' if target else html.escape(label + mark)


def sync_note(outcome: RowOutcome) -> str:
    """ "sync unmeasured: <why>" for a row whose lip sync QA could not measure with confidence
    (a short greeting): it published, and a person may want to look ('' otherwise)."""
    figures = outcome.qa_figures or {}
    if figures.get("sync_status") != "unmeasured":
        return ""
    return f"sync unmeasured: {figures.get('sync_unmeasured_reason') or 'no confident estimate'}"


def captions_note(outcome: RowOutcome) -> str:
    """ "captions: 7 cues (espeak-dtw), script-vs-audio match 2.10" for a row with captions ('' otherwise)."""
    figures = outcome.qa_figures or {}
    if not figures.get("captions_method"):
        return ""
    match = figures.get("captions_script_match")
    figure = f", script-vs-audio match {match:.2f}" if isinstance(match, (int, float)) else ", no match figure"
    return f"captions: {figures.get('captions_cues')} cues ({figures['captions_method']}){figure}"


def _row_label(outcome: RowOutcome) -> str:
    info = outcome.info
    title = f"<br>{html.escape(info.title)}" if info.title else ""
    captions = f"<br><small>{html.escape(captions_note(outcome))}</small>" if captions_note(outcome) else ""
    return (
        f"<b>{html.escape(info.row_id)}</b><br>{html.escape(info.collection)} / {html.escape(info.language)}"
        f"{title}{captions}"
    )


def _full_row(catalog: Catalog, outcome: RowOutcome) -> str:
    """A row that needs a person (or a published row of a short list): everything about it."""
    info = outcome.info
    video = _relative_link(catalog, outcome.output_uri)
    poster = _relative_link(catalog, outcome.poster_uri)
    plot = _relative_link(catalog, outcome.plot_uri)
    if poster:
        alt = f"poster of {html.escape(info.row_id)}"
        thumb = f'<img class="poster" loading="lazy" src="{html.escape(poster)}" alt="{alt}">'
        thumb = f'<a href="{html.escape(video)}">{thumb}</a>' if video else thumb
    else:
        thumb = '<span class="none">no video</span>'
    plot_html = (
        f'<img class="plot" loading="lazy" src="{html.escape(plot)}" alt="mouth opening vs audio envelope">'
        if plot
        else '<span class="none">no plot</span>'
    )
    return (
        f"<tr><td>{thumb}</td><td>{_row_label(outcome)}</td><td>{_status(outcome.status)}</td>"
        f'<td class="reason">{html.escape(outcome.reason or sync_note(outcome)) or "&mdash;"}</td><td>{plot_html}</td>'
        f"<td>{_links(catalog, outcome)}</td></tr>"
    )


_FULL_HEAD = (
    "<tr><th>poster</th><th>row</th><th>status</th><th>reason</th><th>mouth opening vs audio</th><th>links</th></tr>"
)
_COMPACT_HEAD = "<tr><th></th><th>row</th><th>collection / language</th><th>note</th><th>links</th></tr>"


def _compact_row(catalog: Catalog, outcome: RowOutcome) -> str:
    """A row in the catalog: one line, a small lazily loaded poster."""
    info = outcome.info
    poster = _relative_link(catalog, outcome.poster_uri)
    thumb = f'<img class="thumb" loading="lazy" src="{html.escape(poster)}" alt="">' if poster else ""
    note = html.escape(sync_note(outcome)) if outcome.status == PUBLISHED else html.escape(outcome.reason)
    if captions_note(outcome):
        note = f"{note}<br>{html.escape(captions_note(outcome))}" if note else html.escape(captions_note(outcome))
    return (
        f'<tr><td class="c">{thumb}</td><td class="c"><b>{html.escape(info.row_id)}</b></td>'
        f'<td class="c">{html.escape(info.collection)} / {html.escape(info.language)}</td>'
        f'<td class="c">{note}</td><td class="c">{_links(catalog, outcome, plot=True)}</td></tr>'
    )


def _page(title: str, body: str, footnote: str = "") -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<link rel="icon" href="data:,">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>{body}"
        f'<p class="meta">Every video in this catalog is AI-generated.{html.escape(footnote)}</p></body></html>\n'
    )


def page_name(kind: str, number: int) -> str:
    return f"report-{kind}-{number:04d}.html"


def _section(
    catalog: Catalog,
    run_id: str,
    kind: str,
    heading: str,
    outcomes: list[RowOutcome],
    *,
    full: bool,
    collapsed: bool = False,
) -> tuple[str, dict[str, str]]:
    """One list of the report: its HTML on report.html and, when long, its pages (name -> HTML)."""
    if not outcomes:
        return "", {}
    head, row = (_FULL_HEAD, _full_row) if full else (_COMPACT_HEAD, _compact_row)
    title = f"{heading} ({len(outcomes)})"
    pages: dict[str, str] = {}
    if len(outcomes) <= INLINE_ROWS:
        table = f"<table><thead>{head}</thead><tbody>{''.join(row(catalog, o) for o in outcomes)}</tbody></table>"
        if collapsed:
            return (
                f'<details><summary><h2 style="display:inline">{html.escape(title)}</h2></summary>{table}</details>',
                pages,
            )
        return f"<h2>{html.escape(title)}</h2>{table}", pages
    count = (len(outcomes) + PAGE_ROWS - 1) // PAGE_ROWS
    for number in range(1, count + 1):
        chunk = outcomes[(number - 1) * PAGE_ROWS : number * PAGE_ROWS]
        first = (number - 1) * PAGE_ROWS + 1
        nav = [f'<a href="{REPORT_FILE}">report</a>']
        if number > 1:
            nav.append(f'<a href="{page_name(kind, number - 1)}">&larr; page {number - 1}</a>')
        if number < count:
            nav.append(f'<a href="{page_name(kind, number + 1)}">page {number + 1} &rarr;</a>')
        nav_html = f'<p class="pages">{" ".join(nav)}</p>'
        pages[page_name(kind, number)] = _page(
            f"Catalog run {run_id}: {heading}, page {number} of {count}",
            f"<h1>{html.escape(heading)}, rows {first}-{first + len(chunk) - 1} of {len(outcomes)}</h1>"
            f'<div class="meta">Catalog run {html.escape(run_id)}</div>{nav_html}'
            f"<table><thead>{head}</thead><tbody>{''.join(row(catalog, o) for o in chunk)}</tbody></table>{nav_html}",
        )
    links = " ".join(
        f'<a href="{name}">{(n - 1) * PAGE_ROWS + 1}-{min(n * PAGE_ROWS, len(outcomes))}</a>'
        for n, name in enumerate(pages, start=1)
    )
    return f'<h2>{html.escape(title)}</h2><p class="pages">{count} pages of up to {PAGE_ROWS} rows: {links}</p>', pages


def _credentials_note(credentials: dict) -> str:
    """One sentence on how the published videos are signed (empty when they are not)."""
    if not credentials.get("signer"):
        return ""
    development = credentials.get("mode") == "development"
    return f" Published videos carry Content Credentials (C2PA) signed by {credentials['signer']}" + (
        " with a development certificate, which verifiers do not trust." if development else "."
    )


def render_report_pages(catalog: Catalog, run_id: str, outcomes: list[RowOutcome], summary: dict) -> dict[str, str]:
    """report.html and its list pages: file name -> HTML."""
    counts = Counter(outcome.status for outcome in outcomes)
    count_html = "".join(f"<span>{_status(s)} {counts.get(s, 0)}</span>" for s in STATUSES)
    meta = " &middot; ".join(
        html.escape(f"{key}: {value}")
        for key, value in summary.items()
        if key in ("manifest", "generator", "started_at", "finished_at")
    )
    plan = summary.get("plan") or {}
    plan_html = ""
    if plan:
        plan_html = (
            f'<p class="meta">Plan: {plan.get("work", 0)} rows needed work, {plan.get("update_captions", 0)} only '
            f"new captions (their frames kept), {plan.get('skip', 0)} were unchanged and skipped "
            f"without opening their media, {plan.get('keep_quarantine', 0)} quarantines and "
            f"{plan.get('keep_failed', 0)} QA failures were kept (nothing they depended on changed; "
            f"<code>--recheck</code> probes or renders them again).</p>"
        )
    attention = [o for o in outcomes if o.status in NEEDS_A_PERSON]
    published = [o for o in outcomes if o.status == PUBLISHED]
    skipped = [o for o in outcomes if o.status == SKIPPED_CACHED]
    recaptioned = [o for o in outcomes if o.status == CAPTIONS_UPDATED]
    sections, pages = [], {}
    for kind, heading, rows, full, collapsed in (
        ("attention", "Needs a person: quarantined, failed QA, errors", attention, True, False),
        ("published", "Published by this run", published, len(published) <= FULL_PUBLISHED_ROWS, False),
        ("captions", "Captions updated by this run (frames kept)", recaptioned, False, False),
        ("skipped", "Already in the catalog (skipped)", skipped, False, True),
    ):
        section, section_pages = _section(catalog, run_id, kind, heading, rows, full=full, collapsed=collapsed)
        sections.append(section)
        pages.update(section_pages)
    if not attention:
        sections[0] = "<h2>Needs a person (0)</h2><p>Nothing: every row is in the catalog.</p>"
    pages[REPORT_FILE] = _page(
        f"Catalog run {run_id}",
        f'<h1>Catalog run {html.escape(run_id)}</h1><div class="meta">{meta}</div>'
        f'<div class="counts">{count_html}</div>{plan_html}' + "".join(sections),
        _credentials_note(summary.get("credentials") or {}),
    )
    return pages


def write_report(catalog_url: str, run_id: str, outcomes: list[RowOutcome], summary: dict) -> str:
    """Write the run's report.html and its list pages (each atomically); returns the report's URI."""
    catalog = Catalog(catalog_url)
    pages = render_report_pages(catalog, run_id, outcomes, summary)
    for name, page in pages.items():
        if name != REPORT_FILE:
            catalog.write_bytes(page.encode("utf-8"), catalog.path(RUNS_DIR, run_id, name))
    # The report last: once it is there, every page it links is too.
    return catalog.uri(
        catalog.write_bytes(pages[REPORT_FILE].encode("utf-8"), catalog.path(RUNS_DIR, run_id, REPORT_FILE))
    )


@task(name="write-report", cache_policy=NONE)
def write_report_task(catalog_url: str, run_id: str, outcomes: list[RowOutcome], summary: dict) -> str:
    """Write the QA report people look at."""
    return write_report(catalog_url, run_id, outcomes, summary)
