"""Every private internal of a dependency this project relies on, one module per dependency.

A private attribute, a copied command or a matched log text is not an API: the dependency may
move it in any release. Each one is used only through its module here, which says why it is
used and what happens without it, checks the installed version against the range the hook
was written for (`versions.VersionRange`: outside it the hook is switched off, with one
warning), and has a test that fails when the dependency moves it (`tests/test_internals.py`).

- silero-vad: `sonic_model/internals/silero.py`, the speech model's tensors read from its
  TorchScript archive.
- fsspec: `sonic_model/internals/fsspec.py`, a filesystem's own path for a URL, through the
  public `fsspec.core.strip_protocol` (no private use left).
- Prefect: `flows/prefect_internals.py`, the events worker's queue, the thread-pool runner's
  cancel events, the flow run's `task_run_assets` and `run_results`, the "Finished in state
  Completed(" log line, `SyncClientContext` entered by hand, the temporary API server's
  command and private settings.

The Prefect module lives in `flows/` because `sonic_model` never imports Prefect.
"""
