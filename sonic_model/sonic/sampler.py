"""Sonic's sampler: Euler (v-prediction) over circular, shifting 25-frame windows, 3-way guidance.

Each step s runs every window w over frames (stride * w - shift * s + k) mod N, k < window: the
clip is treated as a loop so a fixed-size UNet covers any length, and the shift moves the
window seams every step so they do not stay visible. Each window's UNet call batches the three
guidance branches (no image / image / image + audio) together; the Euler results of all windows
are summed per frame and divided by the number of window slots that landed on the frame.

The schedule and the Euler step are diffusers' `EulerDiscreteScheduler`, configured by the
checkpoint's `scheduler_config.json` (Karras sigmas, v-prediction, continuous timesteps).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import EulerDiscreteScheduler

from sonic_model.sonic.recorder import Capture, no_capture


@dataclass(frozen=True)
class WindowPlan:
    """Window layout of one sampling run."""

    num_frames: int
    window: int = 25
    overlap: int = 0
    shift: int = 7

    @property
    def windows_per_step(self) -> int:
        stride = self.window - self.overlap
        return max(1, math.ceil((self.num_frames - self.overlap) / stride))

    def starts(self, step: int) -> torch.Tensor:
        """[windows] start of each window before the modulo."""
        stride = self.window - self.overlap
        return torch.arange(self.windows_per_step, dtype=torch.int64) * stride - self.shift * step

    def frame_indices(self, step: int) -> torch.Tensor:
        """[windows, window] frame index of every window slot at this step."""
        return (self.starts(step)[:, None] + torch.arange(self.window, dtype=torch.int64)) % self.num_frames


def euler_scheduler(config: dict, inference_steps: int) -> EulerDiscreteScheduler:
    """The checkpoint's Euler scheduler, set to `inference_steps` steps from the first one.

    Its sigmas live on the CPU with the latents: the sampler gathers and averages windows there
    and moves only each window's UNet input to the model's device."""
    scheduler = EulerDiscreteScheduler.from_config(config)
    scheduler.set_timesteps(inference_steps, device="cpu")
    scheduler.set_begin_index(0)  # the whole schedule: the release's i2i_noise_strength 1.0
    return scheduler


def combine_guidance(outputs: torch.Tensor, image_scale: float, audio_scale: float) -> torch.Tensor:
    """outputs [3, F, ...] = (no image, image, image + audio) -> guided prediction [F, ...].

    In float32 whatever the UNet's dtype (the release combines in the UNet's dtype, fp16 on GPU)."""
    uncond, image, image_audio = outputs.float().unbind(0)
    return uncond + image_scale * (image - uncond) + audio_scale * (image_audio - image)


# One window's UNet call: (window latents scaled for the UNet [F, C, h, w], timestep, frame
# indices [F], step, window, capture) -> v-prediction of the three branches [3, F, C, h, w].
# `capture` is the caller's hook on the run's first call and `no_capture` on every other one.
PredictFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int, int, Capture], torch.Tensor]


def average_over_windows(
    stepped: torch.Tensor, windows: torch.Tensor, num_frames: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """stepped [W, F, ...] at frames `windows` [W, F] -> (per-frame mean [N, ...], visits [N]).

    index_add_: a frame that occurs twice in one (wrapped) window counts twice."""
    frames = windows.flatten()
    summed = stepped.new_zeros(num_frames, *stepped.shape[2:]).index_add_(0, frames, stepped.flatten(0, 1))
    visits = stepped.new_zeros(num_frames).index_add_(0, frames, stepped.new_ones(len(frames)))
    return summed / visits.view(-1, *([1] * (stepped.dim() - 2))), visits


def sample_windows(
    latents: torch.Tensor,
    scheduler: EulerDiscreteScheduler,
    plan: WindowPlan,
    guidance_image: torch.Tensor,
    guidance_audio: torch.Tensor,
    predict: PredictFn,
    capture: Capture = no_capture,
) -> torch.Tensor:
    """Run every step of `scheduler` on `latents` [N, C, h, w] float32; returns the final latents."""
    for step, timestep in enumerate(scheduler.timesteps):
        step_capture = capture if step == 0 else no_capture
        windows = plan.frame_indices(step)  # [W, F]
        capture("sampler.window_frame_indices", windows[None])
        capture("sampler.window_start", plan.starts(step)[None])
        window_latents = latents[windows]  # [W, F, C, h, w]
        guided = torch.empty_like(window_latents)
        for window, frames in enumerate(windows):
            first_call = step_capture if window == 0 else no_capture
            model_input = scheduler.scale_model_input(window_latents[window], timestep)
            prediction = predict(model_input, timestep, frames, step, window, first_call)
            guided[window] = combine_guidance(prediction, float(guidance_image[step]), float(guidance_audio[step]))
            first_call("unet_call0.window_latents_in", window_latents[window])
            first_call("unet_call0.output", prediction)
            first_call("unet_call0.guided_output", guided[window])
        # One step() for all windows at once: the step is elementwise, so this is each window's
        # own Euler step, and the scheduler advances once per timestep as diffusers intends. The
        # release (src/pipelines/pipeline_sonic.py, SonicPipeline.__call__) calls step() once per
        # window and rewinds the scheduler's private `_step_index = None` before each window,
        # since step() moves on to the next sigma at every call. It also steps in the UNet's dtype
        # (step() returns model_output's dtype) and sums the windows in a buffer of the UNet's
        # dtype (fp16 on GPU); here guidance, step and average stay in float32 on every device.
        # Cost: the stacked windows (W x F >= N frames), their guided outputs and step()'s
        # temporaries are held at once: a few latent-sized CPU buffers, still O(latents).
        stepped = scheduler.step(guided, timestep, window_latents).prev_sample
        latents, visits = average_over_windows(stepped, windows, latents.shape[0])
        step_capture("unet_call0.step_output", stepped[0])
        step_capture("sampler.step0_window_outputs", stepped)
        capture("sampler.frame_visit_count", visits[None])
        capture("sampler.latents_after_step", latents[None])
    return latents
