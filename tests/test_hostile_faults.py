"""Unlucky runs: storage that fails mid-publish, renders that raise / hang / run out of memory,
a `render` process killed mid-run. Whatever happens, the catalog stays consistent (no object
half-written under a final name, an index that lists only videos that are there), every row
ends with a verdict, and a later `rerun` / `render` finishes the job without republishing.

Storage faults come from `FaultyFileSystem`, a local fsspec filesystem under the `faulty://`
protocol that fails chosen writes or moves (a write fails after writing half its bytes, as a
full disk or a dropped connection would).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import fsspec
import pandas as pd
import pytest
from cli_runs import CLI
from fsspec.implementations.local import LocalFileSystem

from sonic_catalog.cli import main

HOSTILE = Path(__file__).parent / "fixtures" / "hostile"


# --- a fault-injecting filesystem ------------------------------------------------------------------


class FaultyFileSystem(LocalFileSystem):
    """Local files under `faulty://`, failing the operations listed in `FaultyFileSystem.rules`.

    A rule is `[operation, substring, nth]`: the nth `write` (pipe_file/put_file, matched on the
    target path) or `mv` (matched on the destination) whose path contains `substring` fails. A
    failing write first writes half of its bytes.
    """

    protocol = ("faulty",)
    rules: list[list] = []
    seen: dict = {}
    injected: list[str] = []
    _lock = threading.Lock()

    @classmethod
    def _strip_protocol(cls, path):
        path = str(path)
        if path.startswith("faulty://"):
            path = path[len("faulty://") :]
        return super()._strip_protocol(path)

    def unstrip_protocol(self, name: str) -> str:
        return "faulty://" + self._strip_protocol(name)

    def _should_fail(self, operation: str, path: str) -> bool:
        with self._lock:
            for index, (op, substring, nth) in enumerate(self.rules):
                if op == operation and substring in path:
                    count = self.seen[index] = self.seen.get(index, 0) + 1
                    if count == nth:
                        self.injected.append(f"{operation} {path}")
                        return True
        return False

    def pipe_file(self, path, value, **kwargs):
        if self._should_fail("write", self._strip_protocol(path)):
            with open(self._strip_protocol(path), "wb") as handle:
                handle.write(value[: len(value) // 2])
            raise OSError(28, "injected fault: no space left on device")
        return super().pipe_file(path, value, **kwargs)

    def put_file(self, lpath, rpath, **kwargs):
        if self._should_fail("write", self._strip_protocol(rpath)):
            data = Path(lpath).read_bytes()
            with open(self._strip_protocol(rpath), "wb") as handle:
                handle.write(data[: len(data) // 2])
            raise OSError(5, "injected fault: connection dropped during upload")
        return super().put_file(lpath, rpath, **kwargs)

    def mv(self, path1, path2, *args, **kwargs):
        if self._should_fail("mv", self._strip_protocol(path2)):
            raise OSError(5, "injected fault: rename failed")
        return super().mv(path1, path2, *args, **kwargs)


fsspec.register_implementation("faulty", FaultyFileSystem, clobber=True)


@pytest.fixture
def faults():
    FaultyFileSystem.rules, FaultyFileSystem.seen, FaultyFileSystem.injected = [], {}, []
    yield FaultyFileSystem
    FaultyFileSystem.rules, FaultyFileSystem.seen = [], {}


# --- helpers ----------------------------------------------------------------------------------------


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def run_id_of(stdout: str) -> str:
    return next(line.split()[1].rstrip(":") for line in stdout.splitlines() if line.startswith("run "))


def make_manifest(folder: Path, row_ids: list[str], portraits: dict | None = None) -> Path:
    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    shutil.copy(HOSTILE / "portrait_ok.jpg", media / "portrait.jpg")
    shutil.copy(HOSTILE / "speech_ok.wav", media / "speech.wav")
    for name in (portraits or {}).values():
        shutil.copy(HOSTILE / "portrait_ok.jpg", media / name)
    rows = [
        {
            "row_id": row_id,
            "portrait_uri": f"media/{(portraits or {}).get(row_id, 'portrait.jpg')}",
            "audio_uri": "media/speech.wav",
            "language": "en",
            "consent_ref": "release/test",
            "collection": "faults",
            "min_resolution": 256,
        }
        for row_id in row_ids
    ]
    manifest = folder / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(manifest)
    return manifest


def ledger(catalog: Path, run_id: str) -> pd.DataFrame:
    return pd.read_parquet(catalog / "_runs" / run_id / "ledger.parquet")


def assert_catalog_consistent(catalog: Path) -> set[str]:
    """No half-written object under a final name; the index lists exactly the live sidecars' videos."""
    from sonic_model.video_reader import probe_video

    published = set()
    for path in catalog.rglob("*"):
        if "_runs" in path.relative_to(catalog).parts or not path.is_file():
            continue
        assert ".partial" not in path.name, f"temporary object left behind: {path}"
        if path.suffix == ".mp4":
            facts = probe_video(path)  # a half-written MP4 (no index atom) does not open
            assert facts.num_frames > 0
        if path.suffix == ".json" and path.name != "index.json":
            sidecar = json.loads(path.read_text())
            assert (catalog / sidecar["video"]).is_file()
            published.add(sidecar["row_id"])
    index = pd.read_parquet(catalog / "index.parquet")
    for video in index.video:
        assert (catalog / video).is_file(), f"index lists a missing video {video}"
    assert {v["video"] for v in json.loads((catalog / "index.json").read_text())["videos"]} == set(index.video)
    assert set(index.row_id) <= published
    return published


# --- storage faults ------------------------------------------------------------------------------------


@pytest.mark.slow  # kill-and-corrupt suite: storage faults, then a rerun, ~20-40 s
def test_storage_faults_leave_a_consistent_catalog_and_rerun_completes(tmp_path, faults):
    manifest = make_manifest(tmp_path / "project", ["row-a", "row-b", "row-c", "row-d"])
    catalog = tmp_path / "catalog"
    faults.rules = [
        ["mv", "/row-b.mp4", 1],  # the video's rename onto its final name fails
        ["write", ".row-c.json", 1],  # the sidecar's upload fails halfway
        ["write", ".row-d.jpg", 1],  # the poster's upload fails halfway (after the video landed)
    ]
    code, out, err = run_cli("render", str(manifest), "--catalog", f"faulty://{catalog}", "--concurrency", "2")
    assert code == 2, out + err
    assert "Traceback" not in err
    assert len(faults.injected) == 3, faults.injected
    first = ledger(catalog, run_id_of(out)).set_index("row_id")
    assert first.loc["row-a", "status"] == "published"
    for row_id in ("row-b", "row-c", "row-d"):
        assert first.loc[row_id, "status"] == "error"
        assert "injected fault" in first.loc[row_id, "reason"], first.loc[row_id, "reason"]
    assert assert_catalog_consistent(catalog) == {"row-a"}
    a_sidecar = catalog / "faults" / "en" / "row-a.json"
    a_mtime = a_sidecar.stat().st_mtime_ns

    faults.rules = []
    code, out, err = run_cli("rerun", "--catalog", f"faulty://{catalog}")
    assert code == 0, out + err
    second = ledger(catalog, run_id_of(out))
    assert sorted(second.row_id) == ["row-b", "row-c", "row-d"]  # only the failed rows
    assert set(second.status) == {"published"}
    assert assert_catalog_consistent(catalog) == {"row-a", "row-b", "row-c", "row-d"}
    assert a_sidecar.stat().st_mtime_ns == a_mtime  # the published row was not touched


# --- a render that raises, hangs or runs out of memory ---------------------------------------------------


def test_render_raise_hang_and_memory_error_fail_only_their_row(tmp_path, monkeypatch):
    import tasks.render

    real_render_video = tasks.render.render_video

    def misbehaving_render_video(generator, portrait_path, *args, **kwargs):
        name = Path(portrait_path).name
        if name == "raise.jpg":
            raise RuntimeError("generator exploded")
        if name == "oom.jpg":
            raise MemoryError("CUDA out of memory (simulated)")
        if name == "hang.jpg":
            while True:  # a generator stuck in a loop: only the per-row timeout ends it
                time.sleep(0.05)
        return real_render_video(generator, portrait_path, *args, **kwargs)

    monkeypatch.setattr(tasks.render, "render_video", misbehaving_render_video)
    portraits = {"row-raise": "raise.jpg", "row-oom": "oom.jpg", "row-hang": "hang.jpg"}
    manifest = make_manifest(tmp_path / "project", ["row-ok", "row-raise", "row-oom", "row-hang"], portraits)
    catalog = tmp_path / "catalog"
    started = time.monotonic()
    code, out, err = run_cli(
        "render",
        str(manifest),
        "--catalog",
        str(catalog),
        "--concurrency",
        "2",
        "--row-timeout",
        "6",
        "--render-retries",
        "0",
    )
    elapsed = time.monotonic() - started
    assert code == 2, out + err
    assert "Traceback" not in err
    verdicts = ledger(catalog, run_id_of(out)).set_index("row_id")
    assert verdicts.loc["row-ok", "status"] == "published"
    for row_id in portraits:
        assert verdicts.loc[row_id, "status"] == "error", verdicts.loc[row_id].to_dict()
    assert "RuntimeError: generator exploded" in verdicts.loc["row-raise", "reason"]
    assert "MemoryError: CUDA out of memory" in verdicts.loc["row-oom", "reason"]
    assert "past the per-row timeout of 6 s (--row-timeout)" in verdicts.loc["row-hang", "reason"], verdicts.loc[
        "row-hang", "reason"
    ]
    assert elapsed < 120  # the hung row stopped being waited for
    assert_catalog_consistent(catalog)


# --- a killed run ---------------------------------------------------------------------------------------


@pytest.mark.slow  # kill-and-corrupt suite: a CLI run SIGKILLed, then rerun, ~35-60 s
def test_killed_run_is_finished_by_rerun_and_render_without_republishing(tmp_path):
    row_ids = [f"row-{i}" for i in range(6)]
    manifest = make_manifest(tmp_path / "project", row_ids)
    catalog = tmp_path / "catalog"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PYTHONWARNINGS": "ignore"}
    command = CLI + ["render", str(manifest), "--catalog", str(catalog), "--concurrency", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    sidecars = catalog / "faults" / "en"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            if len(list(sidecars.glob("row-*.json"))) >= 2:
                break
            time.sleep(0.1)
        assert process.poll() is None, "the run finished before it could be interrupted"
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
    before = {
        p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sidecars.iterdir() if p.suffix in (".json", ".mp4")
    }
    done_before = {name[: -len(".json")] for name in before if name.endswith(".json")}
    assert 2 <= len(done_before) < len(row_ids)

    # The killed run left a partial ledger (and no finished_at): `rerun` finishes it.
    rerun = subprocess.run(
        CLI + ["rerun", "--catalog", str(catalog)], capture_output=True, text=True, env=env, timeout=300
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    second = ledger(catalog, run_id_of(rerun.stdout)).set_index("row_id")
    missing = set(row_ids) - done_before
    assert missing <= set(second.index) and set(second.loc[sorted(missing), "status"]) == {"published"}
    assert set(second.status) <= {"published", "skipped_cached"}
    for name, (mtime, content) in before.items():  # nothing published before was rewritten
        assert (sidecars / name).stat().st_mtime_ns == mtime and (sidecars / name).read_bytes() == content

    # Rendering the same manifest again now renders nothing and rewrites nothing.
    after_rerun = {p.name: p.stat().st_mtime_ns for p in sidecars.iterdir()}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    third = ledger(catalog, run_id_of(done.stdout))
    assert set(third.status) == {"skipped_cached"} and sorted(third.row_id) == row_ids
    assert {p.name: p.stat().st_mtime_ns for p in sidecars.iterdir()} == after_rerun
    assert assert_catalog_consistent(catalog) == set(row_ids)


# --- security rules that are properties of the code ------------------------------------------------------


def test_no_shell_strings_anywhere_in_the_code():
    root = Path(__file__).resolve().parent.parent
    offenders = []
    for folder in ("sonic_model", "sonic_catalog", "tasks", "flows", "manifests"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for needle in (
                "shell=True",
                "os.system(",
                "os.popen(",
                "subprocess.getoutput(",
                "subprocess.getstatusoutput(",
            ):
                if needle in text:
                    offenders.append(f"{path.relative_to(root)}: {needle}")
    assert not offenders, offenders


def test_limit_defaults_mirror_the_library():
    from sonic_model.audio import DEFAULT_MAX_SECONDS, MIN_SECONDS
    from sonic_model.image import DEFAULT_MAX_PIXELS
    from tasks import limits

    assert (limits.DEFAULT_MAX_PIXELS, limits.DEFAULT_MAX_SECONDS, limits.MIN_SECONDS) == (
        DEFAULT_MAX_PIXELS,
        DEFAULT_MAX_SECONDS,
        MIN_SECONDS,
    )


def test_limits_options_reach_media_limits_and_bad_values_are_refused():
    import argparse

    from sonic_model.errors import ParameterError
    from tasks.limits import MediaLimits, add_limit_options, limits_from_args

    parser = argparse.ArgumentParser()
    add_limit_options(parser)
    limits = limits_from_args(
        parser.parse_args(["--max-pixels", "1000000", "--max-audio-seconds", "30", "--max-file-mb", "1.5"])
    )
    assert limits == MediaLimits(max_pixels=1_000_000, max_audio_seconds=30.0, max_file_bytes=int(1.5 * 1024 * 1024))
    assert MediaLimits.from_dict(limits.as_dict()) == limits
    for bad in ({"max_pixels": 0}, {"max_audio_seconds": float("nan")}, {"max_file_bytes": -1}, {"bogus": 1}):
        with pytest.raises(ParameterError):
            MediaLimits.from_dict(bad)


# --- nothing outside the allowed roots is ever opened ------------------------------------------------------

_OPENED: list[str] | None = None


def _audit(event: str, args) -> None:
    if _OPENED is not None and event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one records only while _OPENED is a list


def test_nothing_outside_the_allowed_roots_is_opened(tmp_path):
    """Every `open` in the process (Python's audit hook) while validating and probing escapes."""
    global _OPENED
    from manifests.schema import read_manifest
    from tasks.probe import probe_or_quarantine
    from tasks.table import validate_table

    project, outside = tmp_path / "project", tmp_path / "outside"
    outside.mkdir()
    shutil.copy(HOSTILE / "portrait_ok.jpg", outside / "portrait.jpg")
    shutil.copy(HOSTILE / "speech_ok.wav", outside / "speech.wav")
    manifest = make_manifest(project, ["seed-row"])
    os.symlink(outside / "portrait.jpg", project / "media" / "link.jpg")
    os.symlink(outside, project / "media" / "linkdir")
    escapes = [
        "media/../../outside/portrait.jpg",
        str(outside / "portrait.jpg"),
        f"file://{outside}/portrait.jpg",
        "file:///etc/passwd",
        "/etc/passwd",
        "media/link.jpg",
        "media/linkdir/portrait.jpg",
        "../outside/portrait.jpg",
    ]
    rows = [
        {
            "row_id": f"esc-{i}",
            "portrait_uri": uri,
            "audio_uri": "media/speech.wav",
            "language": "en",
            "consent_ref": "c",
        }
        for i, uri in enumerate(escapes)
    ]
    rows += [
        {
            "row_id": "esc-audio",
            "portrait_uri": "media/portrait.jpg",
            "audio_uri": f"{outside}/speech.wav",
            "language": "en",
            "consent_ref": "c",
        }
    ]
    pd.DataFrame(rows).to_parquet(manifest)
    _OPENED = []
    try:
        good, refused = validate_table(read_manifest(manifest))
        # Probe even the rows the table check refused: the media layer must refuse them on its own.
        from manifests.schema import ManifestRow

        verdicts = [probe_or_quarantine(ManifestRow(**{**row}), str(manifest)) for row in rows]
    finally:
        opened, _OPENED = _OPENED, None
    assert not good and len(refused) == len(rows)
    assert all(getattr(v, "stage", None) == "probe" for v in verdicts)
    assert any(path.endswith("media/portrait.jpg") for path in opened)  # the hook does see our reads
    leaked = [path for path in opened if str(outside) in os.path.realpath(path) or path.startswith("/etc/passwd")]
    assert not leaked, leaked


def test_a_replacement_that_fails_half_way_withdraws_the_old_entry(tmp_path, faults):
    manifest = make_manifest(tmp_path / "project", ["row-a"])
    catalog = tmp_path / "catalog"
    code, out, err = run_cli("render", str(manifest), "--catalog", f"faulty://{catalog}")
    assert code == 0, out + err
    old_key = json.loads((catalog / "faults" / "en" / "row-a.json").read_text())["content_key"]
    # New parameters -> a new video for the same key; its sidecar upload fails half-way.
    faults.rules = [["write", ".row-a.json", 1]]
    code, out, err = run_cli("render", str(manifest), "--catalog", f"faulty://{catalog}", "--seed", "7")
    assert code == 2, out + err
    verdicts = ledger(catalog, run_id_of(out))
    assert verdicts.status.tolist() == ["error"], verdicts.to_dict("records")
    assert not (catalog / "faults" / "en" / "row-a.json").exists()  # no old sidecar describing the new video
    assert assert_catalog_consistent(catalog) == set()
    assert pd.read_parquet(catalog / "index.parquet").empty
    faults.rules = []
    code, out, err = run_cli("rerun", "--catalog", f"faulty://{catalog}")
    assert code == 0, out + err
    sidecar = json.loads((catalog / "faults" / "en" / "row-a.json").read_text())
    assert sidecar["content_key"] != old_key and sidecar["generator"]["params"]["seed"] == 7
    assert assert_catalog_consistent(catalog) == {"row-a"}
