"""The flows as `infra/prefect.yaml` deploys them: their tasks go where the worker says.

A deployment's flow run starts in a fresh process of the `catalog` pool's worker, which loads
this entrypoint; that process inherits the worker's environment, and `SONIC_DASK_ADDRESS` there
names the Dask render cluster (unset: the tasks run on a thread pool in that process). So the
choice is made here, once per flow run, from the environment of the machine that runs it,
and importing `flows.render_catalog` elsewhere (the CLI, tests, a notebook) never depends on it.

`rerun-failed` needs no such entrypoint: it reads `SONIC_DASK_ADDRESS` itself when it starts the
re-run (`flows/rerun_failed.py`).
"""

from __future__ import annotations

from flows.render_catalog import render_catalog as _render_catalog
from flows.task_runners import task_runner_for

render_catalog = _render_catalog.with_options(task_runner=task_runner_for())
