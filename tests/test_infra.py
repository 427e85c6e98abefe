"""The infra files agree with the code: YAML parses, the worker command they run is one our CLI
accepts, and the three deployments point at real flows. (Images cannot be built here; CI has
no Docker engine. `hadolint` and `docker-compose config` were run by hand, see docs/cluster.md.)"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from sonic_catalog.cli import build_parser, main

INFRA = Path(__file__).resolve().parents[1] / "infra"


def worker_argv(*argv: str) -> list[str]:
    from sonic_catalog.commands.worker import dask_worker_argv

    return dask_worker_argv(build_parser().parse_args(["worker", *argv]))


def test_worker_wraps_dask_worker_with_a_gpu_resource():
    argv = worker_argv("tcp://10.0.0.5:8786", "--gpus", "2", "--preload", "x.py")
    assert argv[1:4] == ["-m", "distributed.cli.dask_worker", "tcp://10.0.0.5:8786"]
    assert (
        argv[argv.index("--resources") + 1] == "GPU=2" and argv[argv.index("--nthreads") + 1] == "5"
    )  # 2 renders per GPU + 1
    preloads = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--preload"]
    assert preloads == ["sonic_catalog.worker_setup", "x.py"]  # our set-up first, then the user's
    assert "--resources" not in worker_argv("tcp://h:8786", "--gpus", "0")  # CPU-only worker


def test_worker_and_cluster_runs_need_a_shared_prefect_api(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert main(["worker", "tcp://127.0.0.1:1"]) == 1
    assert "PREFECT_API_URL" in capsys.readouterr().err
    assert (
        main(["render", str(tmp_path / "m.parquet"), "--catalog", str(tmp_path), "--cluster", "tcp://127.0.0.1:1"]) == 1
    )
    assert "needs PREFECT_API_URL" in capsys.readouterr().err


def test_infra_files_parse_and_run_our_worker_command():
    dockerfile = (INFRA / "Dockerfile.gpu-worker").read_text()
    entrypoint = yaml.safe_load(re.search(r"^ENTRYPOINT (.+)$", dockerfile, re.M).group(1))
    assert entrypoint[:2] == ["sonic-catalog", "worker"]
    compose = yaml.safe_load((INFRA / "docker-compose.yml").read_text())
    workers = [s for name, s in compose["services"].items() if name.startswith("gpu-worker")]
    assert workers and all(s["environment"]["PREFECT_API_URL"] for s in workers)
    for service in workers:
        worker_argv(*entrypoint[2:], *service["command"])
    k8s = yaml.safe_load((INFRA / "k8s" / "gpu-workers.yaml").read_text())
    container = k8s["spec"]["template"]["spec"]["containers"][0]
    worker_argv(*entrypoint[2:], *container["args"])
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


@pytest.mark.parametrize("name", ["nightly-catalog", "render-manifest", "rerun-failed"])
def test_deployments_point_at_flows(name):
    import importlib

    spec = yaml.safe_load((INFRA / "prefect.yaml").read_text())
    (deployment,) = [d for d in spec["deployments"] if d["name"] == name]
    path, function = deployment["entrypoint"].split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    assert hasattr(getattr(module, function), "fn") and deployment["work_pool"]["name"] == "catalog"


def _prefect_client_seen_by_task() -> tuple[int, int, bool, int]:
    """What a task on the worker gets: its process, Prefect's client (and whether it is the
    shared one) and the worker's generation slots."""
    from prefect.client.orchestration import get_client
    from prefect.context import SyncClientContext

    import sonic_catalog.worker_setup as setup
    import tasks.render

    client = get_client(sync_client=True)
    return (
        os.getpid(),
        id(client),
        SyncClientContext.get() is not None and client is setup.shared_client(),
        tasks.render.generation_slot_count(),
    )


def test_worker_set_up_gives_every_task_one_shared_prefect_client_and_a_slot_per_gpu(tmp_path):
    """`sonic_catalog.worker_setup` (the preload every `sonic-catalog worker` runs) must reach the
    task threads: without it Prefect builds two API clients per task (~30 ms CPU each task), and
    renders would not take turns on the GPU."""
    from distributed import Client, LocalCluster

    env = {
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
        "PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED": "false",
        "PREFECT_HOME": str(tmp_path),
        "DO_NOT_TRACK": "1",
    }
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            resources={"GPU": 2},
            preload=["sonic_catalog.worker_setup"],
            env=env,
        ) as cluster,
        Client(cluster) as client,
    ):
        seen = client.gather([client.submit(_prefect_client_seen_by_task, pure=False) for _ in range(6)])
    assert {pid for pid, *_ in seen} != {os.getpid()}  # really on the worker process
    assert len({client_id for _, client_id, _, _ in seen}) == 1
    assert all(shared for _, _, shared, _ in seen)
    assert {slots for *_, slots in seen} == {2}  # GPU=2: two generation slots


def test_deployments_take_their_task_runner_from_the_worker_environment():
    """The deployed entrypoint reads SONIC_DASK_ADDRESS when a worker's flow-run process loads it;
    importing the flow itself never does (the CLI and tests choose their runner explicitly)."""
    import subprocess
    import sys

    show = (
        "import flows.render_catalog as flow, flows.deployed as deployed; "
        "print(type(flow.render_catalog.task_runner).__name__, type(deployed.render_catalog.task_runner).__name__, "
        "getattr(deployed.render_catalog.task_runner, 'address', None), deployed.render_catalog.name)"
    )

    def runners(**env: str) -> list[str]:
        environment = {k: v for k, v in os.environ.items() if k != "SONIC_DASK_ADDRESS"} | env
        result = subprocess.run(
            [sys.executable, "-c", show], capture_output=True, text=True, timeout=120, env=environment, cwd=INFRA.parent
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout.split()

    assert runners(SONIC_DASK_ADDRESS="tcp://127.0.0.1:8786") == [
        "ThreadPoolTaskRunner",
        "DaskTaskRunner",
        "tcp://127.0.0.1:8786",
        "render-catalog",
    ]
    assert runners() == ["ThreadPoolTaskRunner", "ThreadPoolTaskRunner", "None", "render-catalog"]
