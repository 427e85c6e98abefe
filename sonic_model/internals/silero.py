"""silero-vad's internals: the speech model's tensors, read from the TorchScript archive its wheel ships.

Why: `sonic_model.audio` runs silero's VAD in numpy, without torch, whose import alone takes
~1.4 s (a third of a short preview render). The weights are read from `silero_vad/data/
silero_vad.jit`, a zip of a pickle and raw storages, with an unpickler that builds numpy arrays
and accepts nothing but the few torch classes the archive names (no code runs). The archive's
layout (`_model.encoder.<n>.reparam_conv`, `_model.decoder.rnn`, the file's name) is silero's
private structure; `tests/test_internals.py` fails when a release moves it and
`tests/test_audio_vad.py` checks the probabilities against silero's own model.

Without the hook (silero-vad outside the range below): `vad_weights()` is None and
`probabilities_with_silero_model` runs silero's public `load_silero_vad()` model (torch),
chunk by chunk: the same probabilities, slower.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np

from sonic_model.internals.versions import VersionRange

SILERO = VersionRange("silero-vad", "6.2", "7", "the speech model read from its TorchScript archive")
MODEL_FILE = "silero_vad.jit"


def model_path() -> Path:
    """Where the wheel keeps the TorchScript model, found without importing the package (its __init__ imports torch)."""
    import importlib.util

    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("silero-vad is not installed; it ships the speech-activity model (pip install silero-vad)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / MODEL_FILE


def vad_weights() -> dict[str, np.ndarray] | None:
    """The 16 kHz model's tensors by the names `sonic_model.audio` uses, or None when the hook is off."""
    if not SILERO.supported():
        return None
    return read_vad_weights()


@functools.lru_cache(maxsize=1)
def read_vad_weights() -> dict[str, np.ndarray]:
    """The 16 kHz model's tensors, read from the TorchScript archive (a zip of a pickle + raw storages)."""
    import pickle
    import zipfile
    from collections import OrderedDict

    path = model_path()

    class ScriptObject:  # a scripted module: only its attributes are kept
        pass

    def rebuild_tensor(storage, offset, size, stride, *_):
        item = storage.itemsize
        return np.lib.stride_tricks.as_strided(storage[offset:], tuple(size), tuple(s * item for s in stride)).copy()

    with zipfile.ZipFile(path) as archive:
        prefix = next(name for name in archive.namelist() if name.endswith("/data.pkl"))[: -len("data.pkl")]

        class Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if module.startswith("__torch__."):
                    return ScriptObject
                known = {
                    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
                    ("torch", "FloatStorage"): np.float32,
                    ("torch.jit._pickle", "build_intlist"): list,
                    ("collections", "OrderedDict"): OrderedDict,
                }
                if (module, name) not in known:
                    raise pickle.UnpicklingError(f"unexpected {module}.{name} in {path}")
                return known[module, name]

            def persistent_load(self, pid):
                _, dtype, key, _, numel = pid
                return np.frombuffer(archive.read(f"{prefix}data/{key}"), dtype, count=numel)

        root = Unpickler(io.BytesIO(archive.read(f"{prefix}data.pkl"))).load()
    model = root._model  # the 16 kHz branch (`_model_8k` is the other)
    blocks = [getattr(model.encoder, str(index)).reparam_conv for index in range(4)]
    weights = {"stft_conv.weight": model.stft.forward_basis_buffer}
    for index, conv in enumerate(blocks, start=1):
        weights[f"conv{index}.weight"], weights[f"conv{index}.bias"] = conv.weight, conv.bias
    rnn, final = model.decoder.rnn, getattr(model.decoder.decoder, "2")
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        weights[f"lstm_cell.{name}"] = getattr(rnn, name)
    weights["final_conv.weight"], weights["final_conv.bias"] = final.weight, final.bias
    return {name: np.ascontiguousarray(value, np.float32) for name, value in weights.items()}


def probabilities_with_silero_model(samples: np.ndarray, chunk: int) -> np.ndarray:
    """The speech probability of every `chunk` samples of 16 kHz audio (the last one zero-padded),
    from silero's public model (torch): the way without the hook."""
    import torch
    from silero_vad import load_silero_vad

    model = load_silero_vad()
    model.reset_states()
    tensor = torch.from_numpy(np.asarray(samples, np.float32))
    probabilities = []
    with torch.no_grad():
        for start in range(0, len(tensor), chunk):
            piece = torch.nn.functional.pad(tensor[start : start + chunk], (0, max(0, start + chunk - len(tensor))))
            probabilities.append(model(piece, 16000).item())
    return np.asarray(probabilities, np.float32)
