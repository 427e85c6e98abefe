"""report.html at catalog scale: summary and the rows needing a person first, long lists paged,
images lazy, the page small, whatever the run holds (real files written by the real writer;
headless Chromium opens a paged report where it is installed)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tasks.records import ERROR, FAILED_QA, PUBLISHED, QUARANTINED, SKIPPED_CACHED, RowInfo, RowOutcome
from tasks.report import FULL_PUBLISHED_ROWS, INLINE_ROWS, PAGE_ROWS, REPORT_FILE, page_name, write_report

FIXTURES = Path(__file__).parent / "fixtures"


def outcomes_for(catalog: Path, *, published: int, skipped: int, attention: int) -> list[RowOutcome]:
    outcomes = []

    def entry(index: int, status: str, reason: str = "") -> RowOutcome:
        row_id = f"row-{index:06d}"
        prefix = catalog / "course" / "en" / row_id
        in_catalog = status in (PUBLISHED, SKIPPED_CACHED)
        return RowOutcome(
            info=RowInfo(row_id=row_id, language="en", collection="course", title=f"Lesson {index}"),
            status=status,
            reasons=(reason,) if reason else (),
            output_uri=f"{prefix}.mp4" if in_catalog else None,
            poster_uri=f"{prefix}.jpg" if in_catalog else None,
            sidecar_uri=f"{prefix}.json" if in_catalog else None,
            plot_uri=str(catalog / "_runs" / "run-x" / "plots" / "course" / "en" / f"{row_id}.png")
            if status == PUBLISHED
            else None,
        )

    index = 0
    for status, count in ((PUBLISHED, published), (SKIPPED_CACHED, skipped)):
        for _ in range(count):
            outcomes.append(entry(index, status, "unchanged since run run-0" if status == SKIPPED_CACHED else ""))
            index += 1
    kinds = (QUARANTINED, FAILED_QA, ERROR)
    for number in range(attention):
        outcomes.insert(
            number * 97 % max(1, len(outcomes)), entry(index, kinds[number % 3], f"problem number {number}")
        )
        index += 1
    return outcomes


def test_report_at_20000_rows_is_small_and_leads_with_what_needs_a_person(tmp_path):
    catalog = tmp_path / "catalog"
    outcomes = outcomes_for(catalog, published=200, skipped=19_790, attention=10)  # a nightly with 1% changed
    write_report(str(catalog), "run-x", outcomes, {"manifest": "m.parquet", "plan": {"work": 210, "skip": 19_790}})
    run_dir = catalog / "_runs" / "run-x"
    report = (run_dir / REPORT_FILE).read_text()
    assert len(report.encode()) < 40_000, len(report.encode())  # summary + 10 full rows + links to the pages
    # The summary first, then the ten rows needing a person, in full, before any catalog row.
    assert report.index("skipped_cached</span> 19790") < report.index("Needs a person")
    attention_part = report[report.index("Needs a person") : report.index("Published by this run")]
    assert len(re.findall(r"problem number \d+", attention_part)) == 10
    assert report.count("<tr>") == 1 + 10  # the attention table: its head and its rows; the rest is paged
    pages = sorted(run_dir.glob("report-skipped-*.html"))
    assert len(pages) == (19_790 + PAGE_ROWS - 1) // PAGE_ROWS
    assert all(page.read_text().count('<tr><td class="c">') <= PAGE_ROWS for page in pages)
    assert pages[-1].read_text().count('<tr><td class="c">') == 19_790 % PAGE_ROWS
    for page in [run_dir / REPORT_FILE, *pages[:3]]:
        text = page.read_text()
        images = re.findall(r"<img [^>]*>", text)
        assert all('loading="lazy"' in image for image in images)
        assert "<script" not in text


def test_a_short_run_keeps_everything_on_one_page(tmp_path):
    catalog = tmp_path / "catalog"
    outcomes = outcomes_for(catalog, published=FULL_PUBLISHED_ROWS, skipped=INLINE_ROWS, attention=2)
    write_report(str(catalog), "run-x", outcomes, {})
    run_dir = catalog / "_runs" / "run-x"
    assert [p.name for p in run_dir.iterdir()] == [REPORT_FILE]
    report = (run_dir / REPORT_FILE).read_text()
    assert report.count('class="plot"') == FULL_PUBLISHED_ROWS and "<details>" in report  # skipped rows collapsed


CHROMIUM = next(
    (path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None
)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install chromium)")
def test_paged_report_opens_in_chromium_with_every_link_and_image_working(tmp_path):
    # (Headless Chromium loads lazy images regardless of the viewport, so laziness itself is
    # checked on the markup above; here: the pages render, and what they show and link is there.)
    from test_report import IMAGE_PROBE, chromium, console_errors

    catalog = tmp_path / "catalog"
    outcomes = outcomes_for(catalog, published=2 * PAGE_ROWS, skipped=0, attention=3)
    for outcome in outcomes:  # real posters, videos and plots for every link and image
        for uri in (outcome.output_uri, outcome.poster_uri, outcome.sidecar_uri, outcome.plot_uri):
            if uri:
                Path(uri).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(FIXTURES / "portrait_hopper.jpg", uri)
    write_report(str(catalog), "run-x", outcomes, {})
    run_dir = catalog / "_runs" / "run-x"
    report = (run_dir / REPORT_FILE).read_text()
    assert page_name("published", 1) in report and page_name("published", 2) in report
    page = run_dir / page_name("published", 2)
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", IMAGE_PROBE + "</body>"))
    result = chromium("--window-size=1280,900", "--dump-dom", probe.as_uri(), user_data_dir=tmp_path / "profile")
    match = re.search(r"IMAGES (\d+) BROKEN (\[.*?\])", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr[-2000:]
    assert int(match.group(1)) == PAGE_ROWS and match.group(2) == "[]"
    assert console_errors(result.stderr) == [], result.stderr[-2000:]
