"""The Sonic pipeline: portrait + speech -> 25 fps frames, as numbered steps.

    1. portrait: face crop, model resolution, face mask, CLIP input      (sonic_model.crop rules)
    2. speech:   Whisper states -> one window of states per 12.5 fps frame
    3. conditioning: CLIP embedding, audio tokens (cond + "no audio"), motion buckets
    4. reference latent: VAE posterior mean of the portrait
    5. noise -> initial latents (reference latent + sigma_max * noise)
    6. sampling: circular shifting windows, 3-way guidance in one batch   (sampler.py)
    7. decode 8 frames at a time -> RIFE middle frames -> uint8, yielded frame by frame

Steps 1-6 hold only what scales with the latents; step 7 streams, so memory does not grow
with the length beyond the latents. `SonicPipeline.run(..., recorder=...)` also captures every
intermediate tensor under the parity fixtures' names.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
import torch
from diffusers import EulerDiscreteScheduler
from PIL import Image

from sonic_model.crop import FACE_MASK_AREA_SCALE, face_mask_rect, prepare_portrait
from sonic_model.sonic.audio_features import frame_windows, pad_for_windows, whisper_input_features, whisper_states
from sonic_model.sonic.models import SonicModels
from sonic_model.sonic.recorder import Recorder
from sonic_model.sonic.sampler import WindowPlan, sample_windows

SAMPLES_PER_AUDIO_FRAME = 640  # 16 kHz / 25 fps
WHISPER_POSITIONS_PER_AUDIO_FRAME = 2  # 50 positions/s / 25 fps


@dataclass(frozen=True)
class SonicSettings:
    """Every knob of one run. Defaults are the release's `sonic.yaml`."""

    min_resolution: int = 512
    expand_ratio: float = 0.5
    crop: bool = True
    inference_steps: int = 25
    dynamic_scale: float = 1.0
    seed: int = 42
    fps_conditioning: float = 12.5
    frames_per_window: int = 25
    window_overlap: int = 0
    shift_offset_per_step: int = 7
    audio_frame_step: int = 2  # audio frames (25 fps) per generated frame (12.5 fps)
    guidance_scale_image_min_max: tuple[float, float] = (2.0, 2.0)
    guidance_scale_audio_min_max: tuple[float, float] = (7.5, 7.5)
    face_mask_area_scale: float = FACE_MASK_AREA_SCALE
    decode_chunk_size: int = 8
    noise_aug_strength: float = 0.0
    i2i_noise_strength: float = 1.0
    audio_token_scale: float = 1.0
    frame_interpolation: bool = True
    max_audio_frames_25fps: int = 10000

    @classmethod
    def from_params(cls, params: dict) -> "SonicSettings":
        """From a parity fixture's `params.json` (unknown keys ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items() if k in known}
        if "motion_bucket_scale" in params and "dynamic_scale" not in params:
            values["dynamic_scale"] = params["motion_bucket_scale"]
        return cls(**values)


@dataclass
class PreparedInputs:
    """Outputs of steps 1-5: everything sampling needs."""

    height: int
    width: int
    face_mask: torch.Tensor  # [H, W] float32 in [0, 1]
    image_embeds: torch.Tensor  # [D]
    cond_tokens: torch.Tensor  # [N, tokens, D]
    uncond_tokens: torch.Tensor  # [tokens, D]
    motion_buckets: torch.Tensor  # [N, 2], already x dynamic_scale
    cond_latent: torch.Tensor  # [C, h, w]
    latents: torch.Tensor  # [N, C, h, w] float32


def generated_frame_count(num_samples_16k: int, settings: SonicSettings, output_frames: int | None) -> int:
    """N, the frames sampled at 12.5 fps.

    `output_frames=None` is the release rule (N = audio frames // 2, so the video is 2N - 1
    frames and ends up to 120 ms before the audio). With a target count F the pipeline samples
    N = F // 2 + 1 so that 2N - 1 >= F, and the caller keeps the first F frames."""
    if output_frames is None:
        audio_frames = min(num_samples_16k // SAMPLES_PER_AUDIO_FRAME, settings.max_audio_frames_25fps)
        return audio_frames // settings.audio_frame_step
    return output_frames // 2 + 1 if settings.frame_interpolation else output_frames


class SonicPipeline:
    def __init__(self, models: SonicModels):
        self.models = models

    # ----- 1. portrait -----
    def prepare_portrait(self, rgb: np.ndarray, face_box_xywh, settings: SonicSettings, recorder: Recorder | None):
        if not math.isclose(settings.face_mask_area_scale, FACE_MASK_AREA_SCALE):
            raise ValueError(f"face_mask_area_scale {settings.face_mask_area_scale} is not supported (the release uses {FACE_MASK_AREA_SCALE})")
        portrait = prepare_portrait(rgb, face_box_xywh, expand_ratio=settings.expand_ratio, min_resolution=settings.min_resolution, crop=settings.crop)
        size = self.models.clip_size
        clip_rgb = np.array(Image.fromarray(portrait.image).resize((size, size), Image.LANCZOS))
        mean, std = (torch.tensor(v, dtype=torch.float32).view(3, 1, 1) for v in self.models.clip_mean_std)
        clip_pixels = (torch.from_numpy(clip_rgb).permute(2, 0, 1).float() / 255.0 - mean) / std
        ref_tensor = (torch.from_numpy(np.array(portrait.image)).permute(2, 0, 1).float() / 255.0 - 0.5) / 0.5
        face_mask = torch.from_numpy(np.array(portrait.face_mask)).float() / 255.0
        if recorder is not None:
            x0, y0, x1, y1 = portrait.crop_box
            used = rgb[y0:y1, x0:x1]
            x, y, w, h = face_box_xywh
            box = (x - x0, y - y0, x - x0 + w, y - y0 + h)
            mx0, my0, mx1, my1 = face_mask_rect(box, (used.shape[1], used.shape[0]))
            unresized = np.zeros(used.shape[:2], np.uint8)
            unresized[my0:my1, mx0:mx1] = 255
            recorder.add("image.input_rgb_uint8", torch.from_numpy(np.array(rgb)))
            if settings.crop:
                recorder.add("image.cropped_rgb_uint8", torch.from_numpy(np.array(used)))
            recorder.add("image.face_mask_unresized_uint8", torch.from_numpy(unresized))
            recorder.add("image.resized_rgb_uint8", torch.from_numpy(np.array(portrait.image)))
            recorder.add("image.ref_tensor", ref_tensor)
            recorder.add("image.face_mask", face_mask.expand(3, -1, -1))
            recorder.add("clip.input_224_rgb_uint8", torch.from_numpy(clip_rgb))
            recorder.add("clip.pixel_values", clip_pixels)
        return ref_tensor, face_mask, clip_pixels

    # ----- 2. speech -----
    def audio_windows(self, waveform_16k: np.ndarray, num_frames: int, settings: SonicSettings, recorder: Recorder | None):
        m = self.models
        audio_frames = min(len(waveform_16k) // SAMPLES_PER_AUDIO_FRAME, settings.max_audio_frames_25fps)
        positions = audio_frames * WHISPER_POSITIONS_PER_AUDIO_FRAME
        features = whisper_input_features(m.feature_extractor, waveform_16k)
        states = whisper_states(m.whisper_encoder, features, positions)  # [P, layers + 1, C]
        stride = WHISPER_POSITIONS_PER_AUDIO_FRAME * settings.audio_frame_step
        token_padded = pad_for_windows(states, m.audio2token.dims.window)
        bucket_padded = pad_for_windows(states[:, -1:], m.audio2bucket.dims.window)
        token_windows = frame_windows(token_padded, num_frames, m.audio2token.dims.window, stride)
        bucket_windows = frame_windows(bucket_padded, num_frames, m.audio2bucket.dims.window, stride)
        if recorder is not None:
            recorder.add("audio.waveform_16k", torch.from_numpy(np.array(waveform_16k, dtype=np.float32)))
            recorder.add("audio.whisper_input_features", features)
            recorder.add("audio.num_frames_25fps", torch.tensor(audio_frames, dtype=torch.int64))
            recorder.add("whisper.all_states_padded", token_padded)
            recorder.add("whisper.last_state_padded", bucket_padded)
            recorder.add("audio2token.input_windows", token_windows)
            recorder.add("audio2bucket.input_windows", bucket_windows)
        return token_windows, bucket_windows

    # ----- 3. conditioning -----
    @torch.no_grad()
    def conditioning(self, clip_pixels, token_windows, bucket_windows, settings: SonicSettings, recorder: Recorder | None):
        m = self.models
        image_embeds = m.image_encoder(pixel_values=clip_pixels[None].to(m.device, m.dtype)).image_embeds[0]
        cond_tokens = torch.cat([m.audio2token(chunk.to(m.device, m.dtype)) for chunk in token_windows.split(64)])
        uncond_tokens = m.audio2token(torch.zeros_like(token_windows[:1]).to(m.device, m.dtype))[0]
        raw = torch.cat([m.audio2bucket(chunk.to(m.device, m.dtype), image_embeds) for chunk in bucket_windows.split(64)]).float()
        motion_buckets = raw * 16 + 16
        scaled = motion_buckets * settings.dynamic_scale
        if recorder is not None:
            recorder.add("clip.image_embeds", image_embeds)
            recorder.add("audio2token.cond_tokens", cond_tokens)
            recorder.add("audio2token.uncond_tokens", uncond_tokens.expand(len(cond_tokens), -1, -1))
            recorder.add("audio2bucket.raw_output", raw)
            recorder.add("audio2bucket.motion_buckets", motion_buckets)
            recorder.add("sampler.motion_buckets_scaled", scaled)
        return image_embeds, cond_tokens, uncond_tokens, scaled

    # ----- 4. reference latent -----
    @torch.no_grad()
    def encode_reference(self, ref_tensor, image_noise, settings: SonicSettings, recorder: Recorder | None):
        vae = self.models.vae
        dtype = self.models.vae_dtype
        mean = vae.encode(ref_tensor[None].to(self.models.device, dtype)).latent_dist.mean[0].float()
        scaled = mean * vae.config.scaling_factor
        if settings.noise_aug_strength:
            noisy = ref_tensor + settings.noise_aug_strength * image_noise[0]
            cond_latent = vae.encode(noisy[None].to(self.models.device, dtype)).latent_dist.mode()[0].float()
        else:
            cond_latent = mean
        if recorder is not None:
            recorder.add("vae.ref_latent_mean", mean)
            recorder.add("vae.cond_latent", cond_latent)
            recorder.add("vae.ref_latent_scaled", scaled)
        return scaled, cond_latent

    # ----- 6. sampling -----
    def schedule(self, settings: SonicSettings) -> tuple[torch.Tensor, torch.Tensor]:
        """Karras sigmas (+ final 0) and the UNet time inputs 0.25 ln(sigma), from the scheduler config."""
        scheduler = EulerDiscreteScheduler.from_config(self.models.scheduler_config)
        scheduler.set_timesteps(settings.inference_steps, device="cpu")
        return scheduler.sigmas.float(), scheduler.timesteps.float()

    @torch.no_grad()
    def sample(self, prepared: PreparedInputs, settings: SonicSettings, recorder: Recorder | None) -> torch.Tensor:
        m = self.models
        sigmas, timesteps = self.schedule(settings)
        steps = settings.inference_steps
        guidance_image = torch.linspace(*settings.guidance_scale_image_min_max, steps)
        guidance_audio = torch.linspace(*settings.guidance_scale_audio_min_max, steps)
        plan = WindowPlan(prepared.latents.shape[0], settings.frames_per_window, settings.window_overlap, settings.shift_offset_per_step)
        device, dtype = m.device, m.dtype

        # Constant across windows: the three branches' image latent and CLIP token.
        cond_latent = prepared.cond_latent.to(device, dtype)
        branch_image_latent = torch.stack([torch.zeros_like(cond_latent), cond_latent, cond_latent])  # [3, C, h, w]
        embeds = prepared.image_embeds.to(device, dtype).reshape(1, 1, -1)
        branch_clip = torch.cat([torch.zeros_like(embeds), embeds, embeds])  # [3, 1, D]
        face_mask = prepared.face_mask.to(device, dtype)
        cond_tokens = prepared.cond_tokens
        uncond_tokens = prepared.uncond_tokens.to(device, dtype)

        def denoise(window_latents, timestep, frames, step, window_index):
            num = len(frames)
            sample = torch.cat(
                [window_latents.to(device, dtype).expand(3, -1, -1, -1, -1), branch_image_latent[:, None].expand(-1, num, -1, -1, -1)], dim=2
            )
            audio = torch.cat([uncond_tokens.expand(2 * num, -1, -1), cond_tokens[frames.to(cond_tokens.device)].to(device, dtype)])
            bucket_means = prepared.motion_buckets[frames].mean(dim=0)
            time_ids = torch.cat([torch.tensor([settings.fps_conditioning]), bucket_means]).to(device, dtype).expand(3, -1)
            if recorder is not None:
                recorder.append("sampler.added_time_ids", time_ids[0])
                if step == 0 and window_index == 0:
                    recorder.add("unet_call0.sample", sample)
                    recorder.add("unet_call0.timestep", timestep)
                    recorder.add("unet_call0.clip_context", branch_clip.repeat_interleave(num, dim=0))
                    recorder.add("unet_call0.audio_context", audio)
                    recorder.add("unet_call0.added_time_ids", time_ids)
                    recorder.add("unet_call0.ip_mask", prepared.face_mask[None, None])
            return m.unet(sample, timestep.to(device, dtype), branch_clip, audio, time_ids, face_mask).float().cpu()

        if recorder is not None:
            recorder.add("sampler.sigmas", sigmas)
            recorder.add("sampler.timesteps", timesteps)
            recorder.add("sampler.guidance_scale_image", guidance_image)
            recorder.add("sampler.guidance_scale_audio", guidance_audio)
            recorder.add("sampler.latents_init", prepared.latents)
            recorder.add("sampler.window_frame_indices", torch.stack([plan.frame_indices(s) for s in range(steps)]))
            recorder.add("sampler.window_start", torch.stack([plan.starts(s) for s in range(steps)]))
            for grid in m.unet.face_mask_grids(prepared.face_mask):
                recorder.add(f"unet.face_mask_{grid.shape[0]}x{grid.shape[1]}", grid)
        latents = sample_windows(prepared.latents, sigmas, timesteps, plan, guidance_image, guidance_audio, denoise, recorder)
        if recorder is not None:
            recorder.tensors["sampler.added_time_ids"] = torch.stack(recorder._lists.pop("sampler.added_time_ids")).reshape(steps, plan.windows_per_step, 3)
            recorder.add("sampler.latents_final", latents)
        return latents

    # ----- 7. decode -> interpolate -> uint8 -----
    @torch.no_grad()
    def decoded_chunks(self, latents: torch.Tensor, settings: SonicSettings, recorder: Recorder | None) -> Iterator[torch.Tensor]:
        """[n, 3, H, W] float frames in [0, 1], `decode_chunk_size` latents at a time."""
        vae = self.models.vae
        scale = 1 / vae.config.scaling_factor  # multiply by the reciprocal, as the release does
        for start in range(0, latents.shape[0], settings.decode_chunk_size):
            chunk = latents[start : start + settings.decode_chunk_size]
            raw = vae.decode(chunk.to(self.models.device, self.models.vae_dtype) * scale, num_frames=chunk.shape[0]).sample.float()
            if recorder is not None and start == 0:
                recorder.add("decode.frames_raw_first_chunk", raw)
            yield (raw * 0.5 + 0.5).clamp(0, 1)

    @torch.no_grad()
    def video_frames(self, latents: torch.Tensor, settings: SonicSettings, recorder: Recorder | None) -> Iterator[np.ndarray]:
        """Decoded and interpolated frames interleaved (d0, m0, d1, ...), as trunc(255 x) uint8 [H, W, 3]."""
        interpolator = self.models.interpolator
        previous = None
        for chunk in self.decoded_chunks(latents, settings, recorder):
            if recorder is not None:
                recorder.extend("decode.frames", chunk)
            if settings.frame_interpolation:
                firsts = chunk[:-1] if previous is None else torch.cat([previous[None], chunk[:-1]])
                seconds = chunk if previous is not None else chunk[1:]
                middles = interpolator.middle(firsts.to(self.models.dtype), seconds.to(self.models.dtype)).float() if len(seconds) else chunk[:0]
                if recorder is not None:
                    recorder.extend("rife.middle_frames", middles)
                ordered = []
                if previous is None:
                    ordered.append(chunk[0])
                    rest = chunk[1:]
                else:
                    rest = chunk
                for middle, frame in zip(middles, rest):
                    ordered += [middle, frame]
                previous = chunk[-1]
            else:
                ordered = list(chunk)
            for frame in ordered:
                # Truncation (not rounding) to uint8, as the release writes its frames.
                yield (frame.float() * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()

    # ----- the whole run -----
    @torch.no_grad()
    def run(
        self,
        portrait_rgb: np.ndarray,
        face_box_xywh: tuple[float, float, float, float],
        waveform_16k: np.ndarray,
        settings: SonicSettings,
        *,
        output_frames: int | None = None,
        latent_noise: torch.Tensor | None = None,
        recorder: Recorder | None = None,
    ) -> Iterator[np.ndarray]:
        """Yield uint8 frames at 25 fps: `output_frames` of them, or the release's 2N - 1 when None.

        `latent_noise` [1, N, C, h, w] replaces the seeded draw (parity fixtures inject theirs)."""
        m = self.models
        num_frames = generated_frame_count(len(waveform_16k), settings, output_frames)

        # 1. portrait
        ref_tensor, face_mask, clip_pixels = self.prepare_portrait(portrait_rgb, face_box_xywh, settings, recorder)
        height, width = ref_tensor.shape[-2:]
        # 2. speech
        token_windows, bucket_windows = self.audio_windows(waveform_16k, num_frames, settings, recorder)
        # 3. conditioning
        image_embeds, cond_tokens, uncond_tokens, buckets = self.conditioning(clip_pixels, token_windows, bucket_windows, settings, recorder)
        del token_windows, bucket_windows
        # 5a. noise, drawn in the release's order on the CPU generator (same on any device):
        # first an image-augmentation draw, then the latent noise.
        generator = torch.Generator().manual_seed(settings.seed)
        image_noise = torch.randn((1, 3, height, width), generator=generator)
        latent_channels = m.unet.config.out_channels
        latent_shape = (1, num_frames, latent_channels, height // 8, width // 8)
        if latent_noise is None:
            latent_noise = torch.randn(latent_shape, generator=generator)
        elif tuple(latent_noise.shape) != latent_shape:
            raise ValueError(f"injected latent noise has shape {tuple(latent_noise.shape)}, expected {latent_shape}")
        # 4. reference latent
        ref_latent, cond_latent = self.encode_reference(ref_tensor, image_noise, settings, recorder)
        # 5b. initial latents: every frame starts from the portrait's latent plus noise
        sigma_max = self.schedule(settings)[0][0]
        latents = ref_latent[None] + sigma_max * latent_noise[0].float()
        if recorder is not None:
            recorder.add("noise.image_aug", image_noise)
            recorder.add("noise.latent", latent_noise)
        prepared = PreparedInputs(height, width, face_mask, image_embeds, cond_tokens, uncond_tokens, buckets, cond_latent, latents)
        # 6. sampling
        latents = self.sample(prepared, settings, recorder)
        del prepared
        # 7. decode -> interpolate -> uint8, streamed
        limit = output_frames if output_frames is not None else (2 * num_frames - 1 if settings.frame_interpolation else num_frames)
        for index, frame in enumerate(self.video_frames(latents, settings, recorder)):
            if index >= limit:
                break
            if recorder is not None:
                recorder.append("video.frames_uint8", torch.from_numpy(frame))
            yield frame
