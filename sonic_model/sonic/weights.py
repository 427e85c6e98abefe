"""The official Sonic weight layout, checked up front, and loading every model from it.

    WEIGHTS_DIR/
      Sonic/unet.pth, Sonic/audio2token.pth, Sonic/audio2bucket.pth    (LeonJoe13/Sonic)
      RIFE/flownet.pkl                                                 (LeonJoe13/Sonic)
      yoloface_v5m.pt                   optional face detector         (LeonJoe13/Sonic)
      stable-video-diffusion-img2vid-xt/                               (stabilityai/stable-video-diffusion-img2vid-xt)
        unet/config.json, vae/, image_encoder/, scheduler/, feature_extractor/ (optional)
      whisper-tiny/                                                    (openai/whisper-tiny)

Every size comes from the config files and the weight shapes, so the tiny parity checkpoints and
the real release load through the same code. Anything missing or not matching raises one
`WeightsError` that lists every problem and where the files come from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from sonic_model.errors import WeightsError
from sonic_model.sonic.audio_adapters import AudioMLPDims, AudioTokenProjector, MotionBucketRegressor
from sonic_model.sonic.rife import IFNet
from sonic_model.sonic.unet import SonicUNet

SVD = "stable-video-diffusion-img2vid-xt"
WHISPER = "whisper-tiny"
SOURCES = {
    "Sonic": "the official Sonic release on Hugging Face 'LeonJoe13/Sonic'",
    SVD: "Hugging Face 'stabilityai/stable-video-diffusion-img2vid-xt'",
    WHISPER: "Hugging Face 'openai/whisper-tiny'",
}
FACE_DETECTOR = "yoloface_v5m.pt"

# Each entry: one required file, given as alternatives (the first that exists is used).
REQUIRED_FILES: dict[str, tuple[str, ...]] = {
    "unet": ("Sonic/unet.pth",),
    "audio2token": ("Sonic/audio2token.pth",),
    "audio2bucket": ("Sonic/audio2bucket.pth",),
    "rife": ("RIFE/flownet.pkl",),
    "unet_config": (f"{SVD}/unet/config.json",),
    "vae_config": (f"{SVD}/vae/config.json",),
    "vae": (f"{SVD}/vae/diffusion_pytorch_model.fp16.safetensors", f"{SVD}/vae/diffusion_pytorch_model.safetensors"),
    "image_encoder_config": (f"{SVD}/image_encoder/config.json",),
    "image_encoder": (f"{SVD}/image_encoder/model.fp16.safetensors", f"{SVD}/image_encoder/model.safetensors"),
    "scheduler_config": (f"{SVD}/scheduler/scheduler_config.json",),
    "whisper_config": (f"{WHISPER}/config.json",),
    "whisper_preprocessor": (f"{WHISPER}/preprocessor_config.json",),
    "whisper": (f"{WHISPER}/model.safetensors", f"{WHISPER}/pytorch_model.bin"),
}


def _source_of(relative: str) -> str:
    top = relative.split("/", 1)[0]
    return SOURCES.get(top, SOURCES["Sonic"])


@dataclass(frozen=True)
class WeightFiles:
    """Resolved paths of one weights directory (all required files exist)."""

    root: Path
    paths: dict[str, Path]
    face_detector: Path | None

    def __getitem__(self, key: str) -> Path:
        return self.paths[key]

    @property
    def svd(self) -> Path:
        return self.root / SVD

    @property
    def whisper(self) -> Path:
        return self.root / WHISPER


def locate_weights(weights_dir: str | Path) -> WeightFiles:
    """Check the layout; raise one `WeightsError` listing every missing file and its source."""
    root = Path(weights_dir).expanduser()
    if not root.is_dir():
        raise WeightsError(
            f"weights directory not found: {root}; download the Sonic release ({SOURCES['Sonic']}), "
            f"SVD-xt ({SOURCES[SVD]}) and whisper-tiny ({SOURCES[WHISPER]}) into it"
        )
    paths, missing = {}, []
    for key, alternatives in REQUIRED_FILES.items():
        found = next((root / rel for rel in alternatives if (root / rel).is_file()), None)
        if found is None:
            missing.append(alternatives[0])
        else:
            paths[key] = found
    if missing:
        by_source: dict[str, list[str]] = {}
        for rel in missing:
            by_source.setdefault(_source_of(rel), []).append(rel)
        where = "; ".join(f"{', '.join(files)} from {source}" for source, files in by_source.items())
        raise WeightsError(f"Sonic weights in {root} are incomplete: missing {len(missing)} file(s): {where}")
    detector = root / FACE_DETECTOR
    return WeightFiles(root, paths, detector if detector.is_file() else None)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot read {path}: {exc}; re-download it from {_source_of_path(path)}") from None


def _source_of_path(path: Path) -> str:
    parts = path.parts
    for top in (SVD, WHISPER):
        if top in parts:
            return SOURCES[top]
    return SOURCES["Sonic"]


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A `.pth`/`.pkl`/`.safetensors` tensor dict, memory-mapped where possible."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # corrupt zip, truncated file, pickle with code
        raise WeightsError(
            f"cannot read {path} ({type(exc).__name__}: {exc}); re-download it from {_source_of_path(path)}"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} is not a tensor dictionary; re-download it from {_source_of_path(path)}")
    return state


def strict_load(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load with `strict=True`; turn key or shape mismatches into one `WeightsError`."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    if missing or unexpected or wrong:
        problems = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                problems.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise WeightsError(
            f"{path} does not match the model built from the configs: {'; '.join(problems)}; "
            f"it is not the expected release file, re-download it from {_source_of_path(path)}"
        )
    module.load_state_dict(state, strict=True, assign=True)


def shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


# --- builders: shared by the loader (real tensors) and the real-size test (meta tensors) ---


def build_unet(unet_config: dict, *, audio_scale: float = 1.0) -> SonicUNet:
    return SonicUNet.from_svd_config(unet_config, audio_scale=audio_scale)


def audio_mlp_dims(
    token_shapes, bucket_shapes, whisper_config: dict, cross_attention_dim: int, clip_projection_dim: int
):
    """Dims of audio2token and audio2bucket from their weight shapes and the Whisper/UNet configs."""
    channels = whisper_config["d_model"]
    states = whisper_config["encoder_layers"] + 1  # the input embedding + every layer's output
    token = AudioMLPDims.from_shapes(
        token_shapes, states=states, channels=channels, extra_inputs=0, token_width=cross_attention_dim
    )
    bucket = AudioMLPDims.from_shapes(
        bucket_shapes, states=1, channels=channels, extra_inputs=clip_projection_dim, token_width=1
    )
    return token, bucket


def build_audio_mlps(
    token_dims: AudioMLPDims, bucket_dims: AudioMLPDims
) -> tuple[AudioTokenProjector, MotionBucketRegressor]:
    return AudioTokenProjector(token_dims), MotionBucketRegressor(bucket_dims)


def build_rife(flownet_shapes: dict[str, tuple[int, ...]]) -> IFNet:
    prefix = "module." if any(k.startswith("module.") for k in flownet_shapes) else ""
    return IFNet.from_shapes(flownet_shapes, prefix)
