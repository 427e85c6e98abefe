"""The QA report in a real browser: headless Chromium renders it, thumbnails load, no console errors.

Skipped (with the reason) only where no chromium binary is installed; CI installs Debian's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from test_catalog_flow import manifest_rows, run_cli, run_id_of, write_media

CHROMIUM = next(
    (path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install chromium)"
)

# Appended to a copy of the report, beside it, so relative links resolve the same: writes
# whether every image finished loading with real pixels into the DOM that --dump-dom prints.
IMAGE_PROBE = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.getAttribute("src"));
  const out = document.createElement("pre");
  out.id = "image-probe";
  out.textContent = "IMAGES " + images.length + " BROKEN " + JSON.stringify(broken);
  document.body.appendChild(out);
});
</script>
"""


def chromium(*args: str, user_data_dir: Path) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={user_data_dir}",
        "--enable-logging=stderr",
        "--v=0",
        "--allow-file-access-from-files",
        "--virtual-time-budget=5000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def console_errors(stderr: str) -> list[str]:
    """Console messages and resource failures Chromium logged for the page.

    Chromium logs every console message as `...:CONSOLE:<line>] "message"` (console.error
    included, at INFO level); the report has no scripts, so any console message at all is a
    fault. Missing images log nothing, which is why the image probe checks them separately.
    """
    return [
        line for line in stderr.splitlines() if ":CONSOLE" in line or "Failed to load" in line or "net::ERR_" in line
    ]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    durations = write_media(root / "media")
    rows = [r for r in manifest_rows(durations) if r["row_id"] in ("good-de", "good-en", "no-face")]
    manifest = root / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(manifest)
    code, out, err = run_cli("render", str(manifest), "--catalog", str(root / "catalog"))
    assert code == 2, out + err
    return root / "catalog" / "_runs" / run_id_of(out) / "report.html"


def test_report_renders_in_headless_chromium(report, tmp_path):
    screenshot = tmp_path / "report.png"
    result = chromium(
        f"--screenshot={screenshot}", "--window-size=1280,900", report.as_uri(), user_data_dir=tmp_path / "profile"
    )
    assert screenshot.exists() and screenshot.stat().st_size > 10_000, result.stderr[-2000:]
    assert console_errors(result.stderr) == [], result.stderr[-2000:]


def test_report_thumbnails_and_plots_load(report, tmp_path):
    probe_page = report.with_name("report-probe.html")
    probe_page.write_text(report.read_text().replace("</body>", IMAGE_PROBE + "</body>"))
    result = chromium("--dump-dom", probe_page.as_uri(), user_data_dir=tmp_path / "profile")
    match = re.search(r"IMAGES (\d+) BROKEN (\[.*?\])", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr[-2000:]
    # Two published rows: two posters and two plots; the quarantined row has neither.
    assert int(match.group(1)) == 4
    assert match.group(2) == "[]"
    assert console_errors(result.stderr) == [], result.stderr[-2000:]
