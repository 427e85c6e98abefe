"""Our Sonic implementation reproduces the public one stage by stage on the dev fixture."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sonic_model.sonic import format_parity_table, run_parity
from sonic_model.sonic.recorder import Recorder
from sonic_model.sonic.sampler import WindowPlan, combine_guidance, euler_scheduler

FIXTURE = Path(__file__).parent / "fixtures" / "sonic_parity_dev"
REQUIRED = [
    "audio.waveform_16k", "audio.whisper_input_features", "whisper.all_states_padded", "whisper.last_state_padded",
    "audio2token.cond_tokens", "audio2token.uncond_tokens", "audio2bucket.motion_buckets", "image.ref_tensor",
    "image.face_mask", "clip.pixel_values", "clip.image_embeds", "vae.ref_latent_scaled", "vae.cond_latent",
    "sampler.latents_init", "sampler.latents_final", "decode.frames", "rife.middle_frames", "video.frames_uint8",
]  # fmt: skip


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    out = tmp_path_factory.mktemp("parity")
    return run_parity(FIXTURE, out), out


def test_every_stage_within_tolerance(parity):
    results, _ = parity
    table = format_parity_table(results)
    assert all(r.passed for r in results), table
    assert {r.name for r in results} >= set(REQUIRED)
    assert table.splitlines()[-1] == f"{len(results)}/{len(results)} stages within tolerance"


def test_outputs_use_fixture_names_and_shapes(parity):
    _, out = parity
    stages, frames = load_file(str(out / "stages.safetensors")), load_file(str(out / "frames.safetensors"))
    reference = {**load_file(str(FIXTURE / "stages.safetensors")), **load_file(str(FIXTURE / "frames.safetensors"))}
    ours = {**stages, **frames}
    assert set(frames) == {"decode.frames", "rife.middle_frames", "video.frames_uint8"}
    for name in REQUIRED:
        assert ours[name].shape == reference[name].shape, name
    assert ours["video.frames_uint8"].dtype == torch.uint8


def test_window_plan_matches_fixture_and_counts_wrapped_frames_twice():
    reference = load_file(str(FIXTURE / "stages.safetensors"))
    steps, windows, size = reference["sampler.window_frame_indices"].shape
    plan = WindowPlan(num_frames=reference["sampler.latents_final"].shape[0], window=size)
    assert plan.windows_per_step == windows
    assert torch.equal(
        torch.stack([plan.frame_indices(s) for s in range(steps)]), reference["sampler.window_frame_indices"]
    )
    # Shorter than one window: the window wraps over the clip, some frames twice.
    short = WindowPlan(num_frames=10).frame_indices(1)
    counts = torch.bincount(short[0], minlength=10)
    assert short.shape == (1, 25) and counts.sum() == 25 and set(counts.tolist()) == {2, 3}


def test_guidance_and_euler_step_match_fixture():
    ref = load_file(str(FIXTURE / "stages.safetensors"))
    guided = combine_guidance(
        ref["unet_call0.output"],
        float(ref["sampler.guidance_scale_image"][0]),
        float(ref["sampler.guidance_scale_audio"][0]),
    )
    assert (guided - ref["unet_call0.guided_output"]).abs().max() < 1e-4
    config_file = FIXTURE / "checkpoints" / "stable-video-diffusion-img2vid-xt" / "scheduler" / "scheduler_config.json"
    scheduler = euler_scheduler(json.loads(config_file.read_text()), len(ref["sampler.timesteps"]))
    assert torch.allclose(scheduler.sigmas, ref["sampler.sigmas"])
    assert torch.allclose(scheduler.timesteps, ref["sampler.timesteps"])
    timestep = scheduler.timesteps[0]
    scheduler.scale_model_input(ref["unet_call0.window_latents_in"], timestep)
    # Two windows stepped in one call: each gets the same step as alone (the sampler relies on it).
    window_latents = torch.stack([ref["unet_call0.window_latents_in"], ref["unet_call0.window_latents_in"].flip(0)])
    stepped = scheduler.step(torch.stack([ref["unet_call0.guided_output"]] * 2), timestep, window_latents).prev_sample
    assert (stepped[0] - ref["unet_call0.step_output"]).abs().max() <= 1e-4 * ref["unet_call0.step_output"].abs().max()
    assert scheduler.step_index == 1


def test_recorder_copies_captures_and_joins_repeated_ones():
    recorder = Recorder()
    recorder.capture("one", torch.ones(2, 3, dtype=torch.float16))
    for step in range(3):
        recorder.capture("per_step", torch.full((1, 4), step, dtype=torch.uint8))
    source = torch.zeros(2)
    recorder.capture("copied", source)
    source += 1  # the pipeline may change a tensor after capturing it
    result = recorder.result()
    assert result["one"].dtype == torch.float32 and result["one"].shape == (2, 3)
    assert result["per_step"].dtype == torch.uint8 and result["per_step"][:, 0].tolist() == [0, 1, 2]
    assert result["copied"].tolist() == [0.0, 0.0]
