"""Our Sonic modules, built from the REAL configs on the meta device, have exactly the parameter
names and shapes of the real release files (so strict loading of the real weights succeeds)."""

import json
from pathlib import Path

import torch

from sonic_model.sonic import weights as W

MANIFESTS = Path(__file__).parent / "fixtures" / "real_size_manifests"
SVD_CONFIGS = MANIFESTS / "configs" / "stable-video-diffusion-img2vid-xt"


def manifest(name: str) -> dict:
    return json.loads((MANIFESTS / name).read_text())


def named_shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def test_unet_with_audio_projections_matches_release():
    config = json.loads((SVD_CONFIGS / "unet" / "config.json").read_text())
    with torch.device("meta"):
        unet = W.build_unet(config)
    expected = manifest("Sonic__unet.pth.json")
    ours = named_shapes(unet)
    assert ours == expected["keys"]
    assert len(ours) == expected["num_tensors"] == 1492
    added = [k for k in ours if ".processor.to_" in k]
    assert sorted(added) == sorted(expected["keys_added_vs_svd"])


def test_audio_mlps_match_release():
    unet_config = json.loads((SVD_CONFIGS / "unet" / "config.json").read_text())
    whisper = manifest("upstream_whisper_tiny_model.safetensors.json")
    whisper_config = {
        "d_model": whisper["keys"]["encoder.layer_norm.weight"][0],
        "encoder_layers": whisper["encoder_layers"],
    }
    clip_projection = manifest("upstream_svd_xt_image_encoder.safetensors.json")["keys"]["visual_projection.weight"][0]
    token_manifest, bucket_manifest = manifest("Sonic__audio2token.pth.json"), manifest("Sonic__audio2bucket.pth.json")
    token_dims, bucket_dims = W.audio_mlp_dims(
        {k: tuple(v) for k, v in token_manifest["keys"].items()},
        {k: tuple(v) for k, v in bucket_manifest["keys"].items()},
        whisper_config,
        unet_config["cross_attention_dim"],
        clip_projection,
    )
    assert (token_dims.window, token_dims.states, token_dims.channels, token_dims.tokens) == (10, 5, 384, 32)
    assert (bucket_dims.window, bucket_dims.tokens) == (50, 2)
    with torch.device("meta"):
        token, bucket = W.build_audio_mlps(token_dims, bucket_dims)
    assert named_shapes(token) == token_manifest["keys"]
    assert named_shapes(bucket) == bucket_manifest["keys"]


def test_rife_matches_release():
    expected = manifest("RIFE__flownet.pkl.json")["keys"]
    with torch.device("meta"):
        rife = W.build_rife({k: tuple(v) for k, v in expected.items()})
    assert {"module." + k: v for k, v in named_shapes(rife).items()} == expected
