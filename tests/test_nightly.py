"""Nightly re-runs through `sonic-catalog render`: a re-run costs what changed (issue 12).

Real CLI, real Prefect (the temporary local API; task runs counted on it with
`POST /task_runs/count`), real media rendered by the preview generator at 256 px. One catalog
is rendered once (module fixture); each test then changes something and renders again.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
from test_catalog_flow import ledger_of, manifest_rows, run_cli, run_id_of, task_run_names, write_media

ROWS = ("good-en", "good-de", "twin-de", "own-audio", "no-face", "no-consent")


def count_task_runs(catalog: Path, run_id: str) -> int:
    """Task runs of one catalog run's flow run, counted by the Prefect API itself."""
    from prefect.client.orchestration import get_client

    flow_run_id = json.loads((catalog / "_runs" / run_id / "run.json").read_text())["flow_run_id"]
    with get_client(sync_client=True) as client:
        response = client._client.post(
            "/task_runs/count", json={"flow_runs": {"id": {"any_": [str(uuid.UUID(flow_run_id))]}}}
        )
    return int(response.json())


def render(setup: dict, *options: str) -> tuple[pd.DataFrame, str]:
    code, out, err = run_cli("render", str(setup["manifest"]), "--catalog", str(setup["catalog"]), *options)
    assert code in (0, 2) and "Traceback" not in err, out + err
    run_id = run_id_of(out)
    ledger = ledger_of(str(setup["catalog"]), run_id).set_index("row_id")
    return ledger, run_id


@pytest.fixture(scope="module")
def nightly(tmp_path_factory):
    root = tmp_path_factory.mktemp("nightly")
    durations = write_media(root / "media")
    (root / "media" / "own.wav").write_bytes((root / "media" / "en.wav").read_bytes())
    rows = {r["row_id"]: r for r in manifest_rows(durations)}
    manifest_rows_ = [
        rows["good-en"],
        rows["good-de"],
        {**rows["good-de"], "row_id": "twin-de", "title": "the same inputs again"},
        {**rows["good-en"], "row_id": "own-audio", "audio_uri": "media/own.wav"},
        rows["no-face"],
        rows["no-consent"],
    ]
    manifest = root / "manifest.parquet"
    pd.DataFrame(manifest_rows_).to_parquet(manifest)
    time.sleep(2.1)  # let the media settle: files written in the last 2 s are hashed rather than trusted by metadata
    setup = {"root": root, "manifest": manifest, "catalog": root / "catalog"}
    ledger, run_id = render(setup)
    assert dict(ledger.status) == {
        "good-en": "published",
        "good-de": "published",
        "twin-de": "published",
        "own-audio": "published",
        "no-face": "quarantined",
        "no-consent": "quarantined",
    }
    setup["first_run"] = run_id
    return setup


def test_an_unchanged_rerun_settles_every_row_in_the_plan_with_no_task_per_row(nightly):
    ledger, run_id = render(nightly)
    first = nightly["first_run"]
    for row_id in ("good-en", "good-de", "twin-de", "own-audio"):
        assert ledger.status[row_id] == "skipped_cached" and ledger.reason[row_id] == f"unchanged since run {first}"
    assert ledger.reason["no-face"].startswith("quarantine kept: no face found")
    assert ledger.reason["no-face"].endswith(
        f"(inputs, limits and parameters unchanged since run {first}; --recheck to probe again)"
    )
    assert ledger.status["no-consent"] == "quarantined" and "consent_ref is missing" in ledger.reason["no-consent"]
    names = task_run_names(nightly["catalog"], run_id)
    assert count_task_runs(nightly["catalog"], run_id) == len(names) <= 5, names
    assert not [name for name in names if name.endswith(ROWS)], names
    # Two rows with the same inputs and parameters are still two catalog entries.
    index = pd.read_parquet(nightly["catalog"] / "index.parquet")
    assert {"good-de", "twin-de"} <= set(index.row_id) and index.row_id.is_unique


def test_audio_rewritten_with_other_samples_of_the_same_size_is_rendered_again(nightly):
    own = nightly["root"] / "media" / "own.wav"
    raw = bytearray(own.read_bytes())
    assert soundfile.info(own).subtype == "PCM_16"
    data = raw.index(b"data") + 8
    size = int.from_bytes(raw[data - 4 : data], "little")
    samples = np.frombuffer(bytes(raw[data : data + size]), dtype="<i2")
    raw[data : data + size] = (
        (-np.clip(samples, -32767, 32767)).astype("<i2").tobytes()
    )  # the speech inverted: other bytes
    before = own.stat()
    own.write_bytes(bytes(raw))
    assert (
        own.stat().st_size == before.st_size and own.read_bytes() != (nightly["root"] / "media" / "en.wav").read_bytes()
    )
    ledger, run_id = render(nightly)
    assert ledger.status["own-audio"] == "published"
    assert ledger.plan["own-audio"] == f"audio changed since run {nightly['first_run']}"
    assert {ledger.status[r] for r in ("good-en", "good-de", "twin-de")} == {"skipped_cached"}
    names = task_run_names(nightly["catalog"], run_id)
    assert {"probe-own-audio", "render-own-audio"} <= names
    assert not [name for name in names if name.endswith(("good-en", "good-de", "twin-de", "no-face"))], names


def test_a_published_video_deleted_from_the_catalog_is_rendered_again(nightly):
    (nightly["catalog"] / "course" / "de" / "twin-de.mp4").unlink()
    ledger, _ = render(nightly)
    assert ledger.status["twin-de"] == "published" and "missing" in ledger.plan["twin-de"]
    assert (nightly["catalog"] / "course" / "de" / "twin-de.mp4").exists()
    assert ledger.status["good-de"] == "skipped_cached"


def test_recheck_probes_kept_quarantines_again(nightly):
    ledger, run_id = render(nightly, "--recheck")
    assert ledger.status["no-face"] == "quarantined" and ledger.reason["no-face"].startswith("no face found")
    assert ledger.plan["no-face"] == "--recheck"
    assert "probe-no-face" in task_run_names(nightly["catalog"], run_id)
    assert ledger.status["good-en"] == "skipped_cached"


def test_force_renders_every_row_again(nightly):
    ledger, _ = render(nightly, "--force")
    assert {ledger.status[r] for r in ("good-en", "good-de", "twin-de", "own-audio")} == {"published"}
    assert {plan for plan in ledger.plan if isinstance(plan, str) and plan} == {"--force"}
    assert ledger.reason["no-face"].startswith("no face found")


def test_rerun_takes_force_and_recheck(nightly):
    code, out, err = run_cli("rerun", "--catalog", str(nightly["catalog"]), "--recheck")
    assert code == 2 and "Traceback" not in err, out + err
    ledger = ledger_of(str(nightly["catalog"]), run_id_of(out)).set_index("row_id")
    assert set(ledger.index) == {"no-face", "no-consent"}
    assert ledger.plan["no-face"] == "--recheck"


def test_the_temporary_api_starts_first_and_only_without_a_server(monkeypatch):
    """`render` launches Prefect's temporary API before it imports Prefect (sonic_catalog/temporary_api.py);
    the flow then runs against that server; a server named in the settings or the environment wins,
    and the speculative one is stopped."""
    from prefect.context import refresh_global_settings_context

    from sonic_catalog import temporary_api
    from sonic_catalog.temporary_api import start_temporary_api

    # This test's servers are its own. A command run earlier in this process (tests calling the
    # CLI in-process) may have one running, with PREFECT_API_URL pointing at it: it must stay up,
    # as must the settings that point at it.
    monkeypatch.setattr(temporary_api, "_current", None)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    refresh_global_settings_context()
    try:
        _check_the_temporary_api(start_temporary_api, monkeypatch)
    finally:
        monkeypatch.undo()
        refresh_global_settings_context()


def _check_the_temporary_api(start_temporary_api, monkeypatch) -> None:
    import httpx
    from prefect import flow, get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # A server named in Prefect's settings (as a profile would): ours is launched, then stopped unused.
    api = start_temporary_api()
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        api.use()
        assert PREFECT_API_URL.value() == "http://127.0.0.1:9/api"
    assert not api.running and "PREFECT_API_URL" not in os.environ
    # Named in the environment: nothing is launched at all.
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    nothing = start_temporary_api()
    assert not hasattr(nothing, "process")
    nothing.use()
    monkeypatch.delenv("PREFECT_API_URL")

    api = start_temporary_api()
    try:
        assert api.running  # launched before anything waited for it
        api.use()
        assert PREFECT_API_URL.value() == api.api_url == os.environ["PREFECT_API_URL"]
        assert httpx.get(f"{api.api_url}/health").status_code == 200
        assert not hasattr(start_temporary_api(), "process")  # a second command in this process uses it too

        @flow
        def recorded() -> str:
            return "ran"

        state = recorded(return_state=True)
        assert state.result() == "ran"

        async def flow_run_name() -> str:
            async with get_client() as client:
                assert str(client.api_url).rstrip("/") == api.api_url
                return (await client.read_flow_run(state.state_details.flow_run_id)).name

        import asyncio

        assert asyncio.run(flow_run_name())  # the run is on our server
    finally:
        api.stop()
    assert not api.running and "PREFECT_API_URL" not in os.environ
