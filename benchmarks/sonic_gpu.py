"""Sonic on a GPU at real size: seconds per output second and peak GPU memory at 512 px.

    .venv/bin/python benchmarks/sonic_gpu.py [--seconds 10] [--steps 25] [--min-resolution 512]

No weights are downloaded: every model is built at the REAL release sizes (the SVD-xt configs
and the key/shape manifests in tests/fixtures/real_size_manifests) and filled with random
values, which costs the same compute as the real weights. fp16 + SDPA, the three guidance
branches in one batch, as `SonicGenerator` runs on CUDA. Exits with a message without CUDA
(`--device cpu` forces a, very slow, CPU run for a smoke test).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MANIFESTS = ROOT / "tests" / "fixtures" / "real_size_manifests"
SVD_CONFIGS = MANIFESTS / "configs" / "stable-video-diffusion-img2vid-xt"
FIXTURE = ROOT / "tests" / "fixtures" / "sonic_parity_dev"

from sonic_model.encode import frame_count  # noqa: E402
from sonic_model.image import load_image  # noqa: E402
from sonic_model.sonic import weights as W  # noqa: E402
from sonic_model.sonic.models import CLIP_MEAN_STD_DEFAULT, SonicModels, _quiet_libraries  # noqa: E402
from sonic_model.sonic.pipeline import SonicPipeline, SonicSettings  # noqa: E402
from sonic_model.sonic.rife import FrameInterpolator  # noqa: E402


def manifest(name: str) -> dict:
    return json.loads((MANIFESTS / name).read_text())


@torch.no_grad()
def randomize(module: torch.nn.Module, device, dtype) -> torch.nn.Module:
    """Allocate on `device` and fill with small random values (norm scales 1, biases 0)."""
    module = module.to_empty(device=device)
    for name, param in module.named_parameters():
        if name.endswith("bias"):
            param.zero_()
        elif param.ndim == 1:
            param.fill_(1.0)
        else:
            param.normal_(0.0, 0.02)
    for buffer in module.buffers():
        if buffer.is_floating_point():
            buffer.zero_()
    return module.to(dtype).eval().requires_grad_(False)


def real_size_models(device: torch.device, dtype: torch.dtype) -> SonicModels:
    from diffusers import AutoencoderKLTemporalDecoder
    from transformers import (
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperModel,
    )

    unet_config = json.loads((SVD_CONFIGS / "unet" / "config.json").read_text())
    vae_config = {
        k: v for k, v in json.loads((SVD_CONFIGS / "vae" / "config.json").read_text()).items() if not k.startswith("_")
    }
    clip_keys = manifest("upstream_svd_xt_image_encoder.safetensors.json")["keys"]
    hidden = clip_keys["vision_model.embeddings.class_embedding"][0]
    clip_config = CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=clip_keys["vision_model.encoder.layers.0.mlp.fc1.weight"][0],
        num_hidden_layers=sum(1 for k in clip_keys if k.endswith("mlp.fc1.weight")),
        num_attention_heads=hidden // 80,  # ViT-H/14: head width 80 (not visible in the shapes)
        projection_dim=clip_keys["visual_projection.weight"][0],
        patch_size=clip_keys["vision_model.embeddings.patch_embedding.weight"][-1],
        image_size=224,
        hidden_act="gelu",
    )
    whisper_manifest = manifest("upstream_whisper_tiny_model.safetensors.json")
    d_model = whisper_manifest["d_model"]
    whisper_config = WhisperConfig(
        d_model=d_model, encoder_layers=whisper_manifest["encoder_layers"], encoder_attention_heads=6,
        encoder_ffn_dim=4 * d_model, decoder_layers=1, max_source_positions=whisper_manifest["max_source_positions"],
        num_mel_bins=80,
    )  # fmt: skip
    token_keys = {k: tuple(v) for k, v in manifest("Sonic__audio2token.pth.json")["keys"].items()}
    bucket_keys = {k: tuple(v) for k, v in manifest("Sonic__audio2bucket.pth.json")["keys"].items()}
    token_dims, bucket_dims = W.audio_mlp_dims(
        token_keys,
        bucket_keys,
        {"d_model": d_model, "encoder_layers": whisper_config.encoder_layers},
        unet_config["cross_attention_dim"],
        clip_config.projection_dim,
    )
    with torch.device("meta"):
        unet = W.build_unet(unet_config)
        vae = AutoencoderKLTemporalDecoder.from_config(vae_config)
        image_encoder = CLIPVisionModelWithProjection(clip_config)
        whisper = WhisperModel(whisper_config).get_encoder()
        audio2token, audio2bucket = W.build_audio_mlps(token_dims, bucket_dims)
        rife = W.build_rife({k: tuple(v) for k, v in manifest("RIFE__flownet.pkl.json")["keys"].items()})
    vae_dtype = torch.float32 if dtype == torch.float16 else dtype  # config force_upcast
    models = SonicModels(
        unet=randomize(unet, device, dtype),
        vae=randomize(vae, device, vae_dtype),
        image_encoder=randomize(image_encoder, device, dtype),
        whisper_encoder=randomize(whisper, device, dtype),
        feature_extractor=WhisperFeatureExtractor(),
        scheduler_config=json.loads((SVD_CONFIGS / "scheduler" / "scheduler_config.json").read_text()),
        audio2token=randomize(audio2token, device, dtype),
        audio2bucket=randomize(audio2bucket, device, dtype),
        interpolator=FrameInterpolator(randomize(rife, device, dtype)),
        clip_mean_std=CLIP_MEAN_STD_DEFAULT,
        clip_size=224,
        device=device,
        dtype=dtype,
        vae_dtype=vae_dtype,
    )
    # CLIP position ids are a buffer: restore them after `to_empty`.
    embeddings = models.image_encoder.vision_model.embeddings
    if hasattr(embeddings, "position_ids"):
        embeddings.position_ids.copy_(
            torch.arange(embeddings.position_ids.shape[-1], device=device).expand_as(embeddings.position_ids)
        )
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--min-resolution", type=int, default=512)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("sonic_gpu: no CUDA device here; nothing measured (run it on a GPU worker)")
        return
    dtype = torch.float16 if device.type == "cuda" else torch.float32

    started = time.perf_counter()
    with _quiet_libraries():
        models = real_size_models(device, dtype)
    build_s = time.perf_counter() - started
    portrait = load_image(FIXTURE / "inputs" / "astronaut.png")
    face = (171.37, 54.81, 110.55, 128.24)
    speech, rate = soundfile.read(FIXTURE / "inputs" / "speech_en_16k.wav", dtype="float32")
    waveform = np.tile(speech, int(np.ceil(args.seconds * rate / len(speech))))[: int(args.seconds * rate)]
    settings = SonicSettings(min_resolution=args.min_resolution, inference_steps=args.steps)
    pipeline = SonicPipeline(models)

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    first_frame_s = None
    count = 0
    with torch.inference_mode():
        for _frame in pipeline.run(portrait, face, waveform, settings, output_frames=frame_count(args.seconds)):
            count += 1
            if first_frame_s is None:
                first_frame_s = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"device {name}, {dtype}, real-size random weights (built in {build_s:.1f} s)")
    print(f"{args.seconds:g} s audio, {args.min_resolution} px, {args.steps} steps: {count} frames in {wall:.1f} s")
    print(
        f"  {wall / args.seconds:.2f} s per output second; first frame after {first_frame_s:.1f} s; peak GPU memory "
        f"{peak:.2f} GiB"
    )


if __name__ == "__main__":
    main()
