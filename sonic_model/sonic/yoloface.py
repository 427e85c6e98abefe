"""The release's face detector, `yoloface_v5m.pt` (a YOLOv5-face TorchScript model): pre/post-processing.

Pre-processing: letterbox the RGB image into a square of `input_size` (416) keeping the aspect
ratio, grey (114) padding, values / 255, NCHW float. The TorchScript module returns decoded
predictions [1, boxes, 16] = (cx, cy, w, h, objectness, 5 landmark (x, y), class score) in
input pixels, YOLOv5-face's export format (a tuple whose first item is that tensor is accepted).
Post-processing: score = objectness x class score, keep >= 0.5, NMS at IoU 0.45 (written here:
torchvision is not a dependency), undo the letterbox.

When the file is absent, `sonic_model.face.detect_faces` (MediaPipe models) is used instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sonic_model.errors import WeightsError
from sonic_model.face import FaceBox

INPUT_SIZE = 416
PAD_VALUE = 114
SCORE_THRESHOLD = 0.5
NMS_IOU = 0.45


def letterbox(rgb: np.ndarray, size: int = INPUT_SIZE) -> tuple[torch.Tensor, float, tuple[int, int]]:
    """[1, 3, size, size] float in [0, 1], the scale applied, and the (left, top) padding."""
    height, width = rgb.shape[:2]
    scale = min(size / width, size / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.BILINEAR))
    canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
    left, top = (size - new_w) // 2, (size - new_h) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    tensor = torch.from_numpy(canvas).permute(2, 0, 1)[None].float() / 255.0
    return tensor, scale, (left, top)


def nms(boxes_xyxy: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression; indices kept, best score first."""
    order = scores.argsort(descending=True).tolist()
    keep = []
    while order:
        best = order.pop(0)
        keep.append(best)
        if not order:
            break
        rest = torch.tensor(order)
        b, others = boxes_xyxy[best], boxes_xyxy[rest]
        inter_w = (torch.minimum(b[2], others[:, 2]) - torch.maximum(b[0], others[:, 0])).clamp(min=0)
        inter_h = (torch.minimum(b[3], others[:, 3]) - torch.maximum(b[1], others[:, 1])).clamp(min=0)
        inter = inter_w * inter_h
        area = lambda x: (x[..., 2] - x[..., 0]).clamp(min=0) * (x[..., 3] - x[..., 1]).clamp(min=0)  # noqa: E731
        iou = inter / (area(b) + area(others) - inter).clamp(min=1e-9)
        order = [i for i, o in zip(order, iou.tolist(), strict=False) if o <= iou_threshold]
    return keep


def decode_predictions(
    pred: torch.Tensor, scale: float, pad: tuple[int, int], image_wh: tuple[int, int]
) -> list[FaceBox]:
    """[boxes, 16] letterboxed predictions -> faces in image pixels, largest first (ties: score, top, left)."""
    pred = pred.float()
    scores = pred[:, 4] * pred[:, 15]
    pred, scores = pred[scores >= SCORE_THRESHOLD], scores[scores >= SCORE_THRESHOLD]
    if len(pred) == 0:
        return []
    cx, cy, w, h = pred[:, 0], pred[:, 1], pred[:, 2], pred[:, 3]
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
    left, top = pad
    width, height = image_wh
    faces = []
    for i in nms(boxes, scores, NMS_IOU):
        x0, y0, x1, y1 = boxes[i].tolist()
        x0, x1 = (min(max((v - left) / scale, 0.0), width) for v in (x0, x1))
        y0, y1 = (min(max((v - top) / scale, 0.0), height) for v in (y0, y1))
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        points = pred[i, 5:15].reshape(5, 2)
        keypoints = tuple(((float(px) - left) / scale, (float(py) - top) / scale) for px, py in points)
        faces.append(FaceBox(x0, y0, x1 - x0, y1 - y0, float(scores[i]), keypoints))
    faces.sort(key=lambda f: (-round(f.area, 3), -f.score, f.y, f.x))
    return faces


class YoloFaceDetector:
    """`detect(rgb) -> list[FaceBox]`, largest first, like `sonic_model.face.detect_faces`."""

    def __init__(self, path: str | Path, device: torch.device | str = "cpu"):
        try:
            self.model = torch.jit.load(str(path), map_location=device).eval()
        except Exception as exc:
            raise WeightsError(
                f"cannot load the face detector {path} ({type(exc).__name__}); re-download yoloface_v5m.pt from the "
                "official Sonic release on Hugging Face 'LeonJoe13/Sonic'"
            ) from None
        self.device = torch.device(device)

    @torch.no_grad()
    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        tensor, scale, pad = letterbox(rgb)
        param = next(iter(self.model.parameters()), None)
        dtype = param.dtype if param is not None else torch.float32
        out = self.model(tensor.to(self.device, dtype))
        if isinstance(out, (tuple, list)):
            out = out[0]
        if not isinstance(out, torch.Tensor) or out.ndim != 3 or out.shape[-1] < 16:
            raise WeightsError(
                "yoloface_v5m.pt returned an unexpected output (expected decoded [1, boxes, 16] predictions)"
            )
        return decode_predictions(out[0].cpu(), scale, pad, (rgb.shape[1], rgb.shape[0]))
