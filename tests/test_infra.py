"""The infra files agree with the code: YAML parses, the worker command they run is one our CLI
accepts, and the three deployments point at real flows. (Images cannot be built here; CI has
no Docker engine. `hadolint` and `docker-compose config` were run by hand, see the README.)"""

from __future__ import annotations

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
    assert argv[argv.index("--resources") + 1] == "GPU=2" and argv[argv.index("--nthreads") + 1] == "3"
    assert argv[argv.index("--preload") + 1] == "x.py"
    assert "--resources" not in worker_argv("tcp://h:8786", "--gpus", "0")  # CPU-only worker


def test_worker_and_cluster_runs_need_a_shared_prefect_api(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert main(["worker", "tcp://127.0.0.1:1"]) == 1
    assert "PREFECT_API_URL" in capsys.readouterr().err
    assert main(["render", str(tmp_path / "m.parquet"), "--catalog", str(tmp_path), "--cluster", "tcp://127.0.0.1:1"]) == 1
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
