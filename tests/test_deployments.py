"""infra/prefect.yaml deploys against a real `prefect server start` (127.0.0.1, temporary
PREFECT_HOME, stopped at the end), with the schedule and the event trigger it declares, and
`render-manifest` runs once through a short-lived process worker of the `catalog` pool.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from local_services import BIN, ROOT, LocalServices

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).parent / "fixtures"

# Read back what the server holds, as JSON (a separate process: this one's Prefect settings
# point at no server).
INSPECT = r"""
import json, sys
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as client:
    out = {}
    for name in ("render-catalog/nightly-catalog", "render-catalog/render-manifest", "rerun-failed/rerun-failed"):
        d = client.read_deployment_by_name(name)
        schedules = [{"cron": s.schedule.cron, "timezone": s.schedule.timezone, "active": s.active}
                     for s in d.schedules]
        out[name] = {"id": str(d.id), "pool": d.work_pool_name, "parameters": d.parameters, "schedules": schedules}
    out["automations"] = [json.loads(a.model_dump_json()) for a in client.read_automations()]
    runs = client.read_flow_runs()
    out["runs"] = [{"id": str(r.id), "deployment": str(r.deployment_id),
                    "state": r.state_type.value if r.state_type else None, "parameters": r.parameters} for r in runs]
print(json.dumps(out, default=str))
"""
DELETE = r"""
import sys, uuid
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as client:
    for run_id in sys.argv[1:]:
        client.delete_flow_run(uuid.UUID(run_id))
"""


def prefect(services: LocalServices, *argv: str, env: dict, timeout: float = 120) -> str:
    result = subprocess.run(
        [str(BIN / "prefect"), *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"prefect {' '.join(argv)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def inspect(env: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", INSPECT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_deployments_deploy_schedule_trigger_and_run(tmp_path):
    media = tmp_path / "drop" / "media"
    media.mkdir(parents=True)
    for name in ("portrait_hopper.jpg", "speech_de_48k_stereo.wav"):
        (media / name).write_bytes((FIXTURES / name).read_bytes())
    manifest = tmp_path / "drop" / "manifest.parquet"
    pd.DataFrame(
        [
            {
                "row_id": "dep-1",
                "portrait_uri": "media/portrait_hopper.jpg",
                "audio_uri": "media/speech_de_48k_stereo.wav",
                "language": "de",
                "consent_ref": "release/test-001",
                "min_resolution": 256,
            }
        ]
    ).to_parquet(manifest)
    catalog = tmp_path / "catalog"

    with LocalServices(tmp_path / "services") as services:
        env = services.env(SONIC_CATALOG_URL=str(catalog), SONIC_NIGHTLY_MANIFEST=str(manifest))
        env.pop("SONIC_DASK_ADDRESS", None)
        prefect(services, "work-pool", "create", "catalog", "--type", "process", env=env)
        prefect(services, "--no-prompt", "deploy", "--all", "--prefect-file", "infra/prefect.yaml", env=env)

        state = inspect(env)
        nightly = state["render-catalog/nightly-catalog"]
        assert nightly["pool"] == "catalog"
        assert nightly["schedules"] == [{"cron": "30 1 * * *", "timezone": "Europe/Berlin", "active": True}]
        assert nightly["parameters"]["manifest"] == str(manifest) and nightly["parameters"]["catalog"] == str(catalog)
        assert state["rerun-failed/rerun-failed"]["parameters"] == {"catalog": str(catalog)}
        on_demand = state["render-catalog/render-manifest"]
        (automation,) = [
            a
            for a in state["automations"]
            if any(action.get("deployment_id") == on_demand["id"] for action in a["actions"])
        ]
        assert automation["trigger"]["expect"] == ["sonic-catalog.manifest.uploaded"]
        assert automation["actions"][0]["parameters"] == {"manifest": "{{ event.payload.manifest }}"}

        # The trigger: an upload event creates a render-manifest run with the event's manifest.
        uploaded = str(tmp_path / "drop" / "uploaded.parquet")
        prefect(
            services,
            "event",
            "emit",
            "sonic-catalog.manifest.uploaded",
            "--resource-id",
            "sonic-catalog.manifest.test",
            "--payload",
            json.dumps({"manifest": uploaded}),
            env=env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            triggered = [r for r in inspect(env)["runs"] if r["deployment"] == on_demand["id"]]
            if triggered:
                break
            time.sleep(1)
        assert [r["parameters"]["manifest"] for r in triggered] == [uploaded]
        # Only checked here, not executed (that manifest does not exist): remove the run.
        subprocess.run(
            [sys.executable, "-c", DELETE, *[r["id"] for r in triggered]], cwd=ROOT, env=env, check=True, timeout=60
        )

        # By hand: `prefect deployment run` + a worker that takes one poll's runs and exits.
        out = prefect(
            services,
            "deployment",
            "run",
            "render-catalog/render-manifest",
            "--param",
            f"manifest={manifest}",
            "--param",
            "generator=preview",
            "--param",
            "weights=null",
            env=env,
        )
        assert "Created flow run" in out
        started = time.monotonic()
        prefect(
            services, "worker", "start", "--pool", "catalog", "--type", "process", "--run-once", env=env, timeout=240
        )
        took = time.monotonic() - started
        state = inspect(env)
        runs = [r for r in state["runs"] if r["deployment"] == on_demand["id"]]
        assert [r["state"] for r in runs] == ["COMPLETED"], runs
        # The scheduler has planned the nightly runs (not executed here).
        assert any(r["deployment"] == nightly["id"] and r["state"] == "SCHEDULED" for r in state["runs"])
        index = pd.read_parquet(catalog / "index.parquet")
        assert list(index["row_id"]) == ["dep-1"]
        print(f"render-manifest through a process worker: {took:.1f} s")
