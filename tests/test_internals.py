"""The hooks into dependencies' internals (`sonic_model/internals/`, `flows/prefect_internals.py`).

Each test here fails when the dependency moves what its hook uses (with the installed version),
and the version check switches a hook off with one warning outside its range.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from pathlib import Path

import fsspec
import numpy as np
import pytest
from prefect import flow, task

from flows import prefect_internals
from sonic_model.internals import fsspec as fsspec_internals
from sonic_model.internals import silero, versions

FIXTURES = Path(__file__).parent / "fixtures"


# -- the version check ----------------------------------------------------------------------------


def test_release_reads_the_numeric_part():
    assert versions.release("3.8.8") == (3, 8, 8)
    assert versions.release("6.2.3.post1") == (6, 2, 3)
    assert versions.release("2026.9.0rc1") == (2026, 9, 0)
    with pytest.raises(ValueError, match="not a version"):
        versions.release("dev")


def test_outside_its_range_a_hook_is_switched_off_with_one_warning(monkeypatch):
    monkeypatch.setattr(versions, "_warned", set())
    monkeypatch.setattr(
        prefect_internals, "PREFECT", versions.VersionRange("prefect", "99.0", "100.0", "every Prefect hook")
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not prefect_internals.enabled()
        assert prefect_internals.queued_events() == 0
        assert prefect_internals.cancel_events_of_task_runner() == {}
        assert prefect_internals.task_run_assets() == {}
        assert prefect_internals.temporary_server_command("python", 1234) is None
        assert prefect_internals.enter_shared_client() is None
    ours = [w for w in caught if issubclass(w.category, versions.InternalsVersionWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    message = str(ours[0].message)
    assert "prefect" in message and "99.0 <= version < 100.0" in message and "switched off" in message


def test_a_missing_distribution_is_out_of_range(monkeypatch):
    monkeypatch.setattr(versions, "_warned", set())
    missing = versions.VersionRange("no-such-distribution-here", "1", "2", "nothing")
    with pytest.warns(versions.InternalsVersionWarning, match="not installed"):
        assert not missing.supported()


# -- Prefect ----------------------------------------------------------------------------------------


def test_installed_prefect_is_in_the_range_the_hooks_were_written_for():
    installed = versions.installed_version("prefect")
    assert prefect_internals.PREFECT.contains(installed), (
        f"Prefect {installed} is outside the hooks' range {prefect_internals.PREFECT}: check each hook in "
        "flows/prefect_internals.py against it, then widen the range"
    )


@task
def plus_one(value: int) -> dict:
    return {"value": value + 1}


@flow
def the_hooks_in_a_flow_run() -> dict:
    future = plus_one.submit(1)
    result = future.result()
    found = {
        "cancel_event": future.task_run_id in prefect_internals.cancel_events_of_task_runner(),
        "assets": future.task_run_id in prefect_internals.task_run_assets(),
    }
    from prefect.context import FlowRunContext

    linked = FlowRunContext.get().run_results
    found["result_linked"] = id(result) in linked
    prefect_internals.forget_run_results([result])
    found["result_forgotten"] = id(result) not in linked
    found["queued_events"] = prefect_internals.queued_events()
    return found


def test_prefects_task_run_bookkeeping_is_where_the_hooks_look():
    found = the_hooks_in_a_flow_run()
    assert found["cancel_event"], "ThreadPoolTaskRunner._cancel_events moved (flows/prefect_internals.py)"
    assert found["assets"], "FlowRunContext.task_run_assets moved (flows/prefect_internals.py)"
    assert found["result_linked"], "FlowRunContext.run_results moved (flows/prefect_internals.py)"
    assert found["result_forgotten"]
    assert isinstance(found["queued_events"], int) and found["queued_events"] >= 0
    from prefect.events.worker import EventsWorker

    workers = [w for w in EventsWorker._instances.values() if isinstance(w, EventsWorker)]
    assert workers and all(hasattr(w._queue, "qsize") for w in workers), "EventsWorker._instances/_queue moved"


def test_the_completed_line_is_the_one_prefects_task_engine_logs():
    from prefect import task_engine
    from prefect.states import Completed, Failed

    source = inspect.getsource(task_engine)
    assert 'msg = f"Finished in state {display_state}"' in source, "Prefect's task-run end line changed"

    def record(level: int, msg: str) -> logging.LogRecord:
        return logging.LogRecord("prefect.task_runs", level, __file__, 1, msg, None, None)

    assert prefect_internals.is_completed_task_run_line(record(logging.INFO, f"Finished in state {Completed()}"))
    assert not prefect_internals.is_completed_task_run_line(record(logging.ERROR, f"Finished in state {Failed()}"))
    assert not prefect_internals.is_completed_task_run_line(record(logging.INFO, "our own line"))


def test_sync_client_context_can_be_entered_by_hand():
    from prefect.context import ContextModel, SyncClientContext

    assert issubclass(SyncClientContext, ContextModel), "SyncClientContext is no longer a ContextModel"
    assert "client" in SyncClientContext.model_fields, "SyncClientContext.client moved"
    assert callable(SyncClientContext.get) and callable(SyncClientContext.__enter__)


def test_the_temporary_server_command_is_prefects_own():
    from prefect.server.api.server import SubprocessASGIServer

    source = inspect.getsource(SubprocessASGIServer._run_uvicorn_command)
    command = prefect_internals.temporary_server_command("python", 4200)
    for part in command[1:]:
        if part not in ("python", "4200", "127.0.0.1"):
            assert f'"{part}"' in source, f"Prefect's temporary server command no longer has {part!r}"
    for name, value in prefect_internals.SERVER_ENVIRONMENT.items():
        assert f'"{name}": "{value}"' in source, f"Prefect's temporary server environment no longer sets {name}"


# -- silero-vad -------------------------------------------------------------------------------------


def test_installed_silero_is_in_the_range_the_hook_was_written_for():
    installed = versions.installed_version("silero-vad")
    assert silero.SILERO.contains(installed), f"silero-vad {installed} is outside {silero.SILERO}"


def test_silero_archive_holds_the_tensors_where_the_hook_reads_them():
    weights = silero.read_vad_weights()
    assert weights["stft_conv.weight"].shape == (258, 1, 256)
    assert weights["lstm_cell.weight_ih"].shape == (512, 128)
    assert weights["lstm_cell.weight_hh"].shape == (512, 128)
    assert weights["final_conv.weight"].shape == (1, 128, 1)
    assert all(np.isfinite(value).all() for value in weights.values())


def test_without_the_hook_silero_own_model_gives_the_same_probabilities(monkeypatch):
    from sonic_model.audio import VAD_CHUNK, load_audio, speech_probabilities

    samples = load_audio(FIXTURES / "speech_en_16k.wav").samples[: 16000 * 2]
    ours = speech_probabilities(samples)
    monkeypatch.setattr(versions, "_warned", set())
    monkeypatch.setattr(silero, "SILERO", versions.VersionRange("silero-vad", "99", "100", "the archive"))
    with pytest.warns(versions.InternalsVersionWarning):
        plain = speech_probabilities(samples)
    assert plain.shape == ours.shape
    assert np.abs(plain - ours).max() < 1e-3
    assert VAD_CHUNK == 512


# -- fsspec -----------------------------------------------------------------------------------------


def test_fs_path_matches_each_filesystems_own_paths(tmp_path):
    local = fsspec.filesystem("file")
    assert fsspec_internals.fs_path(local, str(tmp_path / "a.mp4")) == str(tmp_path / "a.mp4")
    assert fsspec_internals.fs_path(local, f"file://{tmp_path}/a.mp4") == f"{tmp_path}/a.mp4"
    memory = fsspec.filesystem("memory")
    assert fsspec_internals.fs_path(memory, "memory://catalog/a.mp4") == "/catalog/a.mp4"
    assert fsspec_internals.fs_path(memory, "/catalog/a.mp4") == "/catalog/a.mp4"
    s3 = fsspec.filesystem("s3", anon=True)
    assert fsspec_internals.fs_path(s3, "s3://bucket/catalog/a.mp4") == "bucket/catalog/a.mp4"
    assert fsspec_internals.fs_path(s3, "bucket/catalog/a.mp4") == "bucket/catalog/a.mp4"  # as S3 lists it
