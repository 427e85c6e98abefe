"""Load every Sonic model once, onto one device and dtype."""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from sonic_model.errors import WeightsError
from sonic_model.sonic import weights as W
from sonic_model.sonic.audio_adapters import AudioTokenProjector, MotionBucketRegressor
from sonic_model.sonic.rife import FrameInterpolator
from sonic_model.sonic.unet import SonicUNet

CLIP_MEAN_STD_DEFAULT = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))


def default_device_dtype(
    device: str | torch.device | None, dtype: torch.dtype | None
) -> tuple[torch.device, torch.dtype]:
    """CUDA when available, fp16 there and fp32 on CPU (unless asked otherwise)."""
    device = (
        torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    return device, dtype


@dataclass
class SonicModels:
    unet: SonicUNet
    vae: torch.nn.Module  # diffusers AutoencoderKLTemporalDecoder
    image_encoder: torch.nn.Module  # transformers CLIPVisionModelWithProjection
    whisper_encoder: torch.nn.Module  # transformers WhisperEncoder
    feature_extractor: object  # transformers WhisperFeatureExtractor
    scheduler_config: dict
    audio2token: AudioTokenProjector
    audio2bucket: MotionBucketRegressor
    interpolator: FrameInterpolator
    clip_mean_std: tuple[tuple[float, ...], tuple[float, ...]]
    clip_size: int
    device: torch.device
    dtype: torch.dtype
    vae_dtype: torch.dtype
    face_detector_path: Path | None = None

    @property
    def cross_attention_dim(self) -> int:
        return self.unet.config.cross_attention_dim


@contextlib.contextmanager
def _quiet_libraries():
    """Library loaders log, warn and draw progress bars (unused decoder weights, dtype casts);
    a user of ours sees our errors only."""
    from diffusers.utils import logging as dlogging
    from transformers.utils import logging as tlogging

    old_t, old_d = tlogging.get_verbosity(), dlogging.get_verbosity()
    bars = tlogging.is_progress_bar_enabled()
    tlogging.set_verbosity_error()
    dlogging.set_verbosity_error()
    tlogging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        tlogging.set_verbosity(old_t)
        dlogging.set_verbosity(old_d)
        if bars:
            tlogging.enable_progress_bar()


def load_sonic_models(weights_dir: str | Path, device=None, dtype: torch.dtype | None = None) -> SonicModels:
    """Check the layout, then load every model (raises `WeightsError` on any problem)."""
    from diffusers import AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionModelWithProjection, WhisperFeatureExtractor, WhisperModel

    files = W.locate_weights(weights_dir)
    device, dtype = default_device_dtype(device, dtype)
    logging.getLogger(__name__).info("loading Sonic weights from %s on %s (%s)", files.root, device, dtype)

    unet_config = W.read_json(files["unet_config"])
    whisper_config = W.read_json(files["whisper_config"])
    clip_config = W.read_json(files["image_encoder_config"])
    vae_config = W.read_json(files["vae_config"])

    # UNet + audio MLPs + RIFE: our modules, built on the meta device and filled from the files.
    unet_state = W.load_state_dict(files["unet"])
    token_state = W.load_state_dict(files["audio2token"])
    bucket_state = W.load_state_dict(files["audio2bucket"])
    rife_state = W.load_state_dict(files["rife"])
    rife_state = {k.removeprefix("module."): v for k, v in rife_state.items()}
    try:
        token_dims, bucket_dims = W.audio_mlp_dims(
            W.shapes(token_state),
            W.shapes(bucket_state),
            whisper_config,
            unet_config["cross_attention_dim"],
            clip_config["projection_dim"],
        )
    except (KeyError, ValueError) as exc:
        raise WeightsError(
            f"Sonic audio MLP weights do not fit the configs ({exc}); re-download them from {W.SOURCES['Sonic']}"
        ) from None
    with torch.device("meta"):
        unet = W.build_unet(unet_config)
        audio2token, audio2bucket = W.build_audio_mlps(token_dims, bucket_dims)
        rife = W.build_rife(W.shapes(rife_state))
    W.strict_load(unet, unet_state, files["unet"])
    W.strict_load(audio2token, token_state, files["audio2token"])
    W.strict_load(audio2bucket, bucket_state, files["audio2bucket"])
    W.strict_load(rife, rife_state, files["rife"])

    # Upstream models through their libraries (they read the configs from the directory).
    variant = lambda path: "fp16" if ".fp16." in path.name else None  # noqa: E731
    try:
        with _quiet_libraries():
            vae = AutoencoderKLTemporalDecoder.from_pretrained(
                files.svd / "vae", variant=variant(files["vae"]), local_files_only=True
            )
            image_encoder = CLIPVisionModelWithProjection.from_pretrained(
                files.svd / "image_encoder", variant=variant(files["image_encoder"]), local_files_only=True
            )
            whisper = WhisperModel.from_pretrained(files.whisper, local_files_only=True)
        feature_extractor = WhisperFeatureExtractor.from_pretrained(files.whisper, local_files_only=True)
    except Exception as exc:  # library errors: size mismatch, corrupt safetensors, bad config
        raise WeightsError(
            f"cannot load the upstream models from {files.root} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:300]})"
        ) from None
    whisper_encoder = whisper.get_encoder()

    clip_mean_std = CLIP_MEAN_STD_DEFAULT
    extractor_config = files.svd / "feature_extractor" / "preprocessor_config.json"
    if extractor_config.is_file():
        cfg = W.read_json(extractor_config)
        clip_mean_std = (tuple(cfg.get("image_mean", clip_mean_std[0])), tuple(cfg.get("image_std", clip_mean_std[1])))

    # fp16 VAEs overflow (config `force_upcast`): keep that one in fp32, as diffusers does.
    vae_dtype = torch.float32 if dtype == torch.float16 and vae_config.get("force_upcast", False) else dtype
    models = SonicModels(
        unet=unet,
        vae=vae,
        image_encoder=image_encoder,
        whisper_encoder=whisper_encoder,
        feature_extractor=feature_extractor,
        scheduler_config=W.read_json(files["scheduler_config"]),
        audio2token=audio2token,
        audio2bucket=audio2bucket,
        interpolator=FrameInterpolator(rife),
        clip_mean_std=clip_mean_std,
        clip_size=int(clip_config.get("image_size", 224)),
        device=device,
        dtype=dtype,
        vae_dtype=vae_dtype,
        face_detector_path=files.face_detector,
    )
    with _quiet_libraries():
        for name in ("unet", "image_encoder", "whisper_encoder", "audio2token", "audio2bucket", "interpolator"):
            getattr(models, name).to(device=device, dtype=dtype).eval().requires_grad_(False)
        models.vae.to(device=device, dtype=vae_dtype).eval().requires_grad_(False)
    del whisper
    return models
