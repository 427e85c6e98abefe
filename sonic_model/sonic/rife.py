"""RIFE frame interpolation (IFNet, "HD v3" layout) as used by Sonic to go from 12.5 to 25 fps.

Written from `RIFE/flownet.pkl`'s key shapes: three `IFBlock`s refine a bidirectional optical
flow and a blend mask coarse-to-fine (at 1/4, 1/2 and full scale); `block_tea` (the training
teacher) is in the file but unused at inference. Block width and input channels are read from
the weights, so the tiny test checkpoint and the real one (width 90) both load strictly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FLOW_BLOCKS = ("block0", "block1", "block2")
TEACHER_BLOCK = "block_tea"


def conv_prelu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.PReLU(out_channels))


class IFBlock(nn.Module):
    """Predicts a flow update (4 channels: to frame 0 and to frame 1) and a mask update at one scale."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        self.conv0 = nn.Sequential(conv_prelu(in_channels, width // 2, 2), conv_prelu(width // 2, width, 2))
        self.convblock0 = nn.Sequential(conv_prelu(width, width), conv_prelu(width, width))
        self.convblock1 = nn.Sequential(conv_prelu(width, width), conv_prelu(width, width))
        self.convblock2 = nn.Sequential(conv_prelu(width, width), conv_prelu(width, width))
        self.convblock3 = nn.Sequential(conv_prelu(width, width), conv_prelu(width, width))
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(width, width // 2, 4, 2, 1),
            nn.PReLU(width // 2),
            nn.ConvTranspose2d(width // 2, 4, 4, 2, 1),
        )
        self.conv2 = nn.Sequential(
            nn.ConvTranspose2d(width, width // 2, 4, 2, 1),
            nn.PReLU(width // 2),
            nn.ConvTranspose2d(width // 2, 1, 4, 2, 1),
        )

    def forward(self, x: torch.Tensor, flow: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.interpolate(
            x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False, recompute_scale_factor=False
        )
        flow = F.interpolate(
            flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False, recompute_scale_factor=False
        ) * (1.0 / scale)
        feat = self.conv0(torch.cat((x, flow), 1))
        feat = self.convblock0(feat) + feat
        feat = self.convblock1(feat) + feat
        feat = self.convblock2(feat) + feat
        feat = self.convblock3(feat) + feat
        flow = self.conv1(feat)
        mask = self.conv2(feat)
        flow = (
            F.interpolate(flow, scale_factor=scale, mode="bilinear", align_corners=False, recompute_scale_factor=False)
            * scale
        )
        mask = F.interpolate(
            mask, scale_factor=scale, mode="bilinear", align_corners=False, recompute_scale_factor=False
        )
        return flow, mask


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `image` at (pixel + flow), border padding, in RIFE's normalised-grid convention."""
    n, _, h, w = flow.shape
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype).view(1, 1, 1, w).expand(n, -1, h, -1)
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype).view(1, 1, h, 1).expand(n, -1, -1, w)
    grid = torch.cat([xs, ys], 1)
    flow = torch.cat([flow[:, 0:1] / ((image.shape[3] - 1.0) / 2.0), flow[:, 1:2] / ((image.shape[2] - 1.0) / 2.0)], 1)
    return F.grid_sample(
        image, (grid + flow).permute(0, 2, 3, 1), mode="bilinear", padding_mode="border", align_corners=True
    )


class IFNet(nn.Module):
    """The interpolation network; `forward(frame0, frame1)` gives the middle frame (unclamped)."""

    def __init__(self, width: int, in_channels: int = 11, teacher_in_channels: int = 14):
        super().__init__()
        self.block0 = IFBlock(in_channels, width)
        self.block1 = IFBlock(in_channels, width)
        self.block2 = IFBlock(in_channels, width)
        self.block_tea = IFBlock(teacher_in_channels, width)

    @classmethod
    def from_shapes(cls, shapes: dict[str, tuple[int, ...]], prefix: str = "") -> IFNet:
        """Size the network from `flownet.pkl`'s tensor shapes (keys with or without `module.`)."""
        width = shapes[f"{prefix}block0.conv0.1.0.weight"][0]
        in_channels = shapes[f"{prefix}block0.conv0.0.0.weight"][1]
        teacher_in = shapes.get(f"{prefix}block_tea.conv0.0.0.weight", (0, in_channels + 3))[1]
        return cls(width, in_channels, teacher_in)

    def forward(
        self, frame0: torch.Tensor, frame1: torch.Tensor, scales: tuple[float, ...] = (4.0, 2.0, 1.0)
    ) -> torch.Tensor:
        flow = frame0.new_zeros(frame0.shape[0], 4, *frame0.shape[2:])
        mask = frame0.new_zeros(frame0.shape[0], 1, *frame0.shape[2:])
        warped0, warped1 = frame0, frame1
        for block, scale in zip((self.block0, self.block1, self.block2), scales, strict=False):
            # Run the block both ways (0->1 and 1->0) and average, as the release does.
            f0, m0 = block(torch.cat((warped0[:, :3], warped1[:, :3], mask), 1), flow, scale=scale)
            f1, m1 = block(
                torch.cat((warped1[:, :3], warped0[:, :3], -mask), 1),
                torch.cat((flow[:, 2:4], flow[:, :2]), 1),
                scale=scale,
            )
            flow = flow + (f0 + torch.cat((f1[:, 2:4], f1[:, :2]), 1)) / 2
            mask = mask + (m0 + (-m1)) / 2
            warped0 = backward_warp(frame0, flow[:, :2])
            warped1 = backward_warp(frame1, flow[:, 2:4])
        blend = torch.sigmoid(mask)
        return warped0 * blend + warped1 * (1 - blend)


class FrameInterpolator(nn.Module):
    """Middle frames between consecutive frames; inputs and outputs in [0, 1], [n, 3, H, W]."""

    def __init__(self, net: IFNet):
        super().__init__()
        self.net = net

    @torch.no_grad()
    def middle(self, frame0: torch.Tensor, frame1: torch.Tensor) -> torch.Tensor:
        h, w = frame0.shape[-2:]
        # IFNet downsamples by 16 at its coarsest scale (x 2 margin): pad to a multiple of 32.
        pad = (0, (-w) % 32, 0, (-h) % 32)
        if any(pad):
            frame0, frame1 = F.pad(frame0, pad), F.pad(frame1, pad)
        return self.net(frame0, frame1)[..., :h, :w].clamp(0, 1)
