#!/usr/bin/env python3
"""Train the shipped defect detector and export it as a YOLOv8-layout ONNX.

Training-only tool: needs PyTorch (never imported by the package at run time). The model is
a small anchor-free YOLOv8-style net (Conv-BN-activation + C2f backbone, SPPF, PAN neck,
strides 8/16/32, decoupled head with DFL box regression; SiLU, or ReLU with ``--act relu``)
trained with a task-aligned assigner (TAL), CIoU + DFL + BCE losses, EMA weights and a
wall-clock-based cosine schedule so a fixed device budget is used fully.

    python tools/train_detector.py --out /tmp/run --train-count 24000 --time-budget-s 390

The exported ONNX has one output ``output0`` [1, 4+nc, N]: cx, cy, w, h in letterboxed
input pixels, then per-class sigmoid scores; input ``images`` float32 [1,3,H,W] RGB 0..1.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edge_trt_ros.dataset import CLASS_NAMES, render_sample, split_lux, split_seeds  # noqa: E402

REG_MAX = 16
STRIDES = (8, 16, 32)
MAX_GT = 8
PAD = 114


# ----------------------------------------------------------------------------- model
ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "relu": nn.ReLU}


class Conv(nn.Sequential):
    act: type[nn.Module] = nn.SiLU  # set by build_model from --act

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c1, c2, k, s, k // 2, bias=False),
            nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03),
            self.act(inplace=True),  # type: ignore[call-arg]
        )


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool) -> None:
        super().__init__()
        self.cv1, self.cv2, self.add = Conv(c, c, 3), Conv(c, c, 3), shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    def __init__(self, c1: int, c2: int, n: int, shortcut: bool = True) -> None:
        super().__init__()
        self.c = c2 // 2
        self.cv1 = Conv(c1, 2 * self.c)
        self.cv2 = Conv((2 + n) * self.c, c2)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # split, not chunk: exports as a Split with constant sizes, so ONNX shape inference
        # (MAC counting, TensorRT) sees static shapes
        y = list(self.cv1(x).split((self.c, self.c), 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1: int, c2: int) -> None:
        super().__init__()
        self.cv1, self.cv2 = Conv(c1, c1 // 2), Conv(c1 // 2 * 4, c2)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat((x, y1, y2, self.pool(y2)), 1))


class Detect(nn.Module):
    def __init__(self, nc: int, chs: tuple[int, ...], cb: int, cc: int) -> None:
        super().__init__()
        self.nc = nc
        self.box = nn.ModuleList(
            nn.Sequential(Conv(c, cb, 3), Conv(cb, cb, 3), nn.Conv2d(cb, 4 * REG_MAX, 1))
            for c in chs
        )
        self.cls = nn.ModuleList(
            nn.Sequential(Conv(c, cc, 3), Conv(cc, cc, 3), nn.Conv2d(cc, nc, 1)) for c in chs
        )
        self.register_buffer("proj", torch.arange(REG_MAX, dtype=torch.float32))

    def init_bias(self, input_hw: tuple[int, int]) -> None:
        for b, c, s in zip(self.box, self.cls, STRIDES, strict=True):
            nn.init.constant_(b[-1].bias, 1.0)
            cells = input_hw[0] * input_hw[1] / s**2
            nn.init.constant_(c[-1].bias, math.log(5 / self.nc / cells))

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (B, A, 4*REG_MAX) distance logits and (B, A, nc) class logits."""
        box = torch.cat([m(f).flatten(2) for m, f in zip(self.box, feats, strict=True)], 2)
        cls = torch.cat([m(f).flatten(2) for m, f in zip(self.cls, feats, strict=True)], 2)
        return box.transpose(1, 2), cls.transpose(1, 2)


class DefectYolo(nn.Module):
    def __init__(self, nc: int, w: tuple[int, ...], head: tuple[int, int]) -> None:
        super().__init__()
        c0, c1, c2, c3, c4 = w
        self.stem = nn.Sequential(Conv(3, c0, 3, 2), Conv(c0, c1, 3, 2), C2f(c1, c1, 1))
        self.d3 = nn.Sequential(Conv(c1, c2, 3, 2), C2f(c2, c2, 2))
        self.d4 = nn.Sequential(Conv(c2, c3, 3, 2), C2f(c3, c3, 2))
        self.d5 = nn.Sequential(Conv(c3, c4, 3, 2), C2f(c4, c4, 1), SPPF(c4, c4))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.td4 = C2f(c4 + c3, c3, 1, False)
        self.td3 = C2f(c3 + c2, c2, 1, False)
        self.dn3 = Conv(c2, c2, 3, 2)
        self.bu4 = C2f(c2 + c3, c3, 1, False)
        self.dn4 = Conv(c3, c3, 3, 2)
        self.bu5 = C2f(c3 + c4, c4, 1, False)
        self.detect = Detect(nc, (c2, c3, c4), *head)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        b3 = self.d3(self.stem(x))
        b4 = self.d4(b3)
        b5 = self.d5(b4)
        t4 = self.td4(torch.cat((self.up(b5), b4), 1))
        p3 = self.td3(torch.cat((self.up(t4), b3), 1))
        p4 = self.bu4(torch.cat((self.dn3(p3), t4), 1))
        p5 = self.bu5(torch.cat((self.dn4(p4), b5), 1))
        return [p3, p4, p5]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.detect(self.features(x))


def anchors_for(input_hw: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Anchor centres (A, 2) in input pixels and their strides (A, 1), P3 first."""
    pts, strides = [], []
    for s in STRIDES:
        h, w = input_hw[0] // s, input_hw[1] // s
        sy, sx = torch.meshgrid(
            torch.arange(h, device=device) + 0.5, torch.arange(w, device=device) + 0.5,
            indexing="ij",
        )
        pts.append(torch.stack((sx, sy), -1).reshape(-1, 2) * s)
        strides.append(torch.full((h * w, 1), float(s), device=device))
    return torch.cat(pts), torch.cat(strides)


def decode_ltrb(box_logits: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """DFL: expected distance (in strides) from 16-bin distributions -> (B, A, 4).

    ``proj`` as a [16, 1] matrix: by a 1-D vector the MatMul exports in a form ONNX
    Runtime's CPU kernels run as thousands of tiny products (1.7 ms per frame); the matrix
    form runs as one GEMM (0.08 ms). Same arithmetic.
    """
    b, a, _ = box_logits.shape
    return (box_logits.view(b, a, 4, REG_MAX).softmax(-1) @ proj[:, None]).squeeze(-1)


class ExportWrapper(nn.Module):
    """Inference graph with the YOLOv8 output layout [1, 4+nc, A]."""

    def __init__(self, model: DefectYolo, input_hw: tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        pts, strides = anchors_for(input_hw, torch.device("cpu"))
        self.register_buffer("pts", pts)
        self.register_buffer("strides", strides)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        box, cls = self.model(images)
        ltrb = decode_ltrb(box, self.model.detect.proj) * self.strides
        xy1 = self.pts - ltrb[..., :2]
        xy2 = self.pts + ltrb[..., 2:]
        xywh = torch.cat(((xy1 + xy2) / 2, xy2 - xy1), -1)
        return torch.cat((xywh, cls.sigmoid()), -1).transpose(1, 2)


def count_macs(model: nn.Module, input_hw: tuple[int, int]) -> int:
    """Multiply-accumulates of all Conv2d layers for one image (what dominates the cost)."""
    total = 0

    def hook(m: nn.Conv2d, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1]
        total += out.numel() * (m.in_channels // m.groups) * k

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, *input_hw))
    model.train(was_training)
    for h in hs:
        h.remove()
    return total


# ----------------------------------------------------------------------------- loss
def box_iou(a: torch.Tensor, b: torch.Tensor, ciou: bool = False, eps: float = 1e-7):
    """Element-wise IoU (or CIoU) of broadcastable xyxy boxes."""
    w1, h1 = (a[..., 2] - a[..., 0]).clamp(min=0), (a[..., 3] - a[..., 1]).clamp(min=0)
    w2, h2 = (b[..., 2] - b[..., 0]).clamp(min=0), (b[..., 3] - b[..., 1]).clamp(min=0)
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    inter = iw * ih
    iou = inter / (w1 * h1 + w2 * h2 - inter + eps)
    if not ciou:
        return iou
    cw = torch.maximum(a[..., 2], b[..., 2]) - torch.minimum(a[..., 0], b[..., 0])
    ch = torch.maximum(a[..., 3], b[..., 3]) - torch.minimum(a[..., 1], b[..., 1])
    c2 = cw**2 + ch**2 + eps
    rho2 = ((a[..., 0] + a[..., 2] - b[..., 0] - b[..., 2]) ** 2
            + (a[..., 1] + a[..., 3] - b[..., 1] - b[..., 3]) ** 2) / 4
    v = (4 / math.pi**2) * (torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


@torch.no_grad()
def tal_assign(scores, pboxes, pts, strides, glabels, gboxes, gmask, topk=10, alpha=0.5, beta=6.0):
    """Task-aligned assignment (as in TOOD/YOLOv8), candidates = anchors inside the GT box.

    GT boxes thinner than a stride are widened to one stride for the candidate test only, so
    near-axis-aligned scratches (2-3 px tall) still get anchors.
    """
    b, a, nc = scores.shape
    m = gboxes.shape[1]
    ctr = (gboxes[..., :2] + gboxes[..., 2:]) / 2
    half = torch.maximum((gboxes[..., 2:] - gboxes[..., :2])[:, :, None] / 2,
                         strides.view(1, 1, a, 1) / 2)
    inside = ((pts.view(1, 1, a, 2) - ctr[:, :, None]).abs() < half).all(-1)
    inside &= gmask[..., None]
    ious = box_iou(gboxes[:, :, None], pboxes[:, None]).clamp(min=0)  # B,M,A
    cls_scores = scores.transpose(1, 2).gather(1, glabels.clamp(min=0)[..., None].expand(b, m, a))
    metric = cls_scores.pow(alpha) * ious.pow(beta) * inside
    top = metric.topk(min(topk, a), dim=-1).indices
    pos = torch.zeros_like(metric).scatter_(-1, top, 1.0) * inside
    multi = pos.sum(1, keepdim=True) > 1
    if multi.any():
        best = F.one_hot(ious.argmax(1), m).transpose(1, 2).to(pos.dtype)
        pos = torch.where(multi, best, pos)
    fg = pos.sum(1) > 0  # B,A
    gt_idx = pos.argmax(1)
    bi = torch.arange(b, device=scores.device)[:, None]
    t_boxes = gboxes[bi, gt_idx]
    t_labels = glabels[bi, gt_idx].clamp(min=0)
    metric = metric * pos
    norm = (metric * (ious * pos).amax(-1, keepdim=True)
            / (metric.amax(-1, keepdim=True) + 1e-9)).amax(1)
    t_scores = F.one_hot(t_labels, nc).float() * (norm * fg)[..., None]
    return t_boxes, t_scores, fg


def detection_loss(box_logits, cls_logits, targets, pts, strides, proj):
    """YOLOv8 loss: 7.5*CIoU + 0.5*BCE + 1.5*DFL, normalised by the total target score."""
    box_logits, cls_logits = box_logits.float(), cls_logits.float()
    glabels, gboxes = targets[..., 0].long(), targets[..., 1:]
    gmask = glabels >= 0
    ltrb = decode_ltrb(box_logits, proj)
    pboxes = torch.cat((pts - ltrb[..., :2] * strides, pts + ltrb[..., 2:] * strides), -1)
    t_boxes, t_scores, fg = tal_assign(
        cls_logits.sigmoid().detach(), pboxes.detach(), pts, strides, glabels, gboxes, gmask
    )
    norm = t_scores.sum().clamp(min=1.0)
    loss_cls = F.binary_cross_entropy_with_logits(cls_logits, t_scores, reduction="sum") / norm
    if fg.any():
        w = t_scores.sum(-1)[fg]
        ciou = box_iou(pboxes[fg], t_boxes[fg], ciou=True)
        loss_box = ((1.0 - ciou) * w).sum() / norm
        p, s = pts.expand_as(pboxes[..., :2])[fg], strides.expand(fg.shape[0], -1, -1)[fg]
        tb = t_boxes[fg]
        t_ltrb = torch.cat(((p - tb[:, :2]) / s, (tb[:, 2:] - p) / s), -1)
        t_ltrb = t_ltrb.clamp(0, REG_MAX - 1 - 0.01)
        logits = box_logits[fg].view(-1, REG_MAX)
        tl = t_ltrb.long().view(-1)
        wr = t_ltrb.view(-1) - tl
        dfl = (F.cross_entropy(logits, tl, reduction="none") * (1 - wr)
               + F.cross_entropy(logits, tl + 1, reduction="none") * wr)
        loss_dfl = (dfl.view(-1, 4).mean(-1) * w).sum() / norm
    else:
        loss_box = loss_dfl = box_logits.sum() * 0.0
    return 7.5 * loss_box + 0.5 * loss_cls + 1.5 * loss_dfl, (loss_box, loss_cls, loss_dfl)


class Ema:
    """Exponential moving average of weights with a warm-up ramp (decay -> 0.9998)."""

    def __init__(self, model: nn.Module, decay: float = 0.9998, tau: float = 1000.0) -> None:
        import copy

        self.model = copy.deepcopy(model).eval()
        self.decay, self.tau, self.updates = decay, tau, 0
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        msd = model.state_dict()
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
            else:
                v.copy_(msd[k])


# ----------------------------------------------------------------------------- data
def letterbox_np(img: np.ndarray, input_hw: tuple[int, int]) -> tuple[np.ndarray, float, tuple]:
    """Same geometry as the runtime letterbox: fit, keep aspect, centre, pad 114."""
    h, w = img.shape[:2]
    dh, dw = input_hw
    s = min(dh / h, dw / w)
    rh, rw = max(1, round(h * s)), max(1, round(w * s))
    ox, oy = (dw - rw) // 2, (dh - rh) // 2
    out = np.full((dh, dw, 3), PAD, dtype=np.uint8)
    out[oy : oy + rh, ox : ox + rw] = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR)
    return out, s, (ox, oy)


_SHARED: dict = {}


def _worker_init(path: str, shape: tuple, input_hw: tuple[int, int]) -> None:
    cv2.setNumThreads(1)
    _SHARED.update(arr=np.memmap(path, np.uint8, "r+", shape=shape), hw=input_hw)


def _render_into(job: tuple[int, int, str]) -> tuple[int, np.ndarray]:
    i, seed, split = job
    s = render_sample(seed, lux=split_lux(split, seed))
    img, scale, (ox, oy) = letterbox_np(s.image, _SHARED["hw"])
    _SHARED["arr"][i] = img
    t = np.full((MAX_GT, 5), -1.0, dtype=np.float32)
    n = min(len(s.boxes), MAX_GT)
    t[:n, 0] = s.class_ids[:n]
    t[:n, 1:] = s.boxes[:n] * scale + np.array([ox, oy, ox, oy], dtype=np.float32)
    return i, t


def render_split(
    split: str, count: int, input_hw: tuple[int, int], workers: int, offset: int = 0
):
    """Render ``count`` frames of ``split`` (from index ``offset``) in parallel.

    Workers write into a file-backed memmap rather than /dev/shm, which containers often
    cap at 64 MB.
    """
    import tempfile

    shape = (count, *input_hw, 3)
    targets = np.zeros((count, MAX_GT, 5), dtype=np.float32)
    seeds = split_seeds(split, offset + count)[offset:]
    jobs = [(i, seed, split) for i, seed in enumerate(seeds)]
    with tempfile.NamedTemporaryFile(suffix=".u8") as f:
        np.memmap(f.name, np.uint8, "w+", shape=shape).flush()
        ctx = mp.get_context("fork")
        with ctx.Pool(workers, _worker_init, (f.name, shape, input_hw)) as pool:
            for i, t in pool.imap_unordered(_render_into, jobs, chunksize=64):
                targets[i] = t
        images = np.array(np.memmap(f.name, np.uint8, "r", shape=shape))
    return images, targets


# ----------------------------------------------------------------------------- export
def export_onnx(model: DefectYolo, input_hw: tuple[int, int], path: Path, meta: dict) -> None:
    import onnx

    wrapper = ExportWrapper(model.float().cpu().eval(), input_hw).eval()
    dummy = torch.zeros(1, 3, *input_hw)
    # PRESERVE (model is in eval mode) keeps BatchNormalization as separate nodes: the
    # EVAL peephole would fold it into the convs, and the fusion study needs it unfused.
    torch.onnx.export(
        wrapper, (dummy,), str(path), opset_version=17, input_names=["images"],
        output_names=["output0"], dynamo=False, do_constant_folding=True,
        training=torch.onnx.TrainingMode.PRESERVE,
    )
    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def metadata(input_hw: tuple[int, int], extra: str) -> dict[str, str]:
    names = {i: n for i, n in enumerate(CLASS_NAMES)}
    return {
        "description": "edge_trt_ros synthetic industrial-defect detector (YOLOv8 layout). "
        + extra,
        "author": "edge_trt_ros",
        "task": "detect",
        "stride": "32",
        "imgsz": str(list(input_hw)),
        "names": str(names),
        "batch": "1",
    }


# ----------------------------------------------------------------------------- main
def checkpoint_act(ckpt: dict, path: Path, act: str) -> None:
    """Refuse a checkpoint trained with another activation: its weights would load (same
    shapes) and silently compute a different network. Checkpoints from before ``--act``
    were SiLU."""
    trained = ckpt.get("args", {}).get("act", "silu")
    if trained != act:
        raise SystemExit(f"{path} was trained with --act {trained}; pass --act {trained} "
                         f"(got --act {act})")


def act_note(act: str) -> str:
    """The description's note on a non-default activation (none for SiLU, so a re-export
    of a SiLU checkpoint stays byte-identical to earlier ones)."""
    return "" if act == "silu" else f"activation {act}"


def build_model(args: argparse.Namespace) -> DefectYolo:
    Conv.act = ACTIVATIONS[args.act]
    widths = tuple(int(c) for c in args.widths.split(","))
    head = tuple(int(c) for c in args.head.split(","))
    return DefectYolo(len(CLASS_NAMES), widths, head)  # type: ignore[arg-type]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--imgsz", default="384,512", help="H,W (multiples of 32)")
    ap.add_argument("--widths", default="16,32,64,128,192")
    ap.add_argument("--head", default="40,32", help="box,cls head widths")
    ap.add_argument("--train-count", type=int, default=24_000)
    ap.add_argument("--train-offset", type=int, default=0, help="first train-split frame")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--time-budget-s", type=float, default=390.0)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--max-iters", type=int, default=0, help="stop early (smoke tests)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--export-only", type=Path, help="checkpoint to export, skip training")
    ap.add_argument("--init", type=Path, help="checkpoint to continue from (EMA weights)")
    ap.add_argument(
        "--act", choices=tuple(ACTIVATIONS), default="silu",
        help="activation after every Conv-BN: SiLU (YOLOv8's), or ReLU, which INT8 kernels "
        "fold into the convolution (ONNX Runtime's QLinearConv, TensorRT); --export-only "
        "and --init refuse a checkpoint trained with another one",
    )
    ap.add_argument(
        "--bn", choices=("batch", "frozen"), default="batch",
        help="BatchNorm while training: batch statistics (standard), or frozen at mean 0 / "
        "var 1 so each BN is a learned per-channel affine (how the shipped model was trained)",
    )
    args = ap.parse_args()
    input_hw = tuple(int(v) for v in args.imgsz.split(","))
    assert len(input_hw) == 2 and all(v % 32 == 0 for v in input_hw)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    model = build_model(args)
    model.detect.init_bias(input_hw)
    params = sum(p.numel() for p in model.parameters())
    macs = count_macs(model, input_hw)
    print(f"params {params:,}  MACs {macs / 1e9:.3f} G at {input_hw}", flush=True)
    log: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "params": params,
                 "macs": macs, "torch": torch.__version__}

    if args.export_only:
        ckpt = torch.load(args.export_only, map_location="cpu", weights_only=False)
        checkpoint_act(ckpt, args.export_only, args.act)
        model.load_state_dict(ckpt["ema"])
        export_onnx(model, input_hw, args.out / "defect_yolo.onnx",
                    metadata(input_hw, act_note(args.act)))
        return 0

    if args.init:
        ckpt = torch.load(args.init, map_location="cpu", weights_only=False)
        checkpoint_act(ckpt, args.init, args.act)
        model.load_state_dict(ckpt["ema"])
    t0 = time.time()
    images, targets = render_split(
        "train", args.train_count, input_hw, args.workers, args.train_offset
    )
    log["render_s"] = time.time() - t0
    print(f"rendered {len(images)} frames in {log['render_s']:.1f}s", flush=True)

    dev = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    gpu_imgs = torch.from_numpy(images).to(dev)
    del images
    gpu_tgts = torch.from_numpy(targets).to(dev)
    model = model.to(dev).to(memory_format=torch.channels_last)
    model.train(args.bn == "batch")
    ema = Ema(model)
    pts, strides = anchors_for(input_hw, dev)
    proj = model.detect.proj

    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim == 4 else no_decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.999),
    )
    use_amp = dev.type == "cuda"
    n = gpu_imgs.shape[0]
    hw_t = torch.tensor([input_hw[1], input_hw[0]], device=dev, dtype=torch.float32)
    it, epoch, t_train = 0, 0, time.time()
    history = []
    done = False
    while not done:
        perm = torch.randperm(n, device=dev)
        for k in range(0, n - args.batch + 1, args.batch):
            frac = (time.time() - t_train) / args.time_budget_s
            if frac >= 1.0 or (args.max_iters and it >= args.max_iters):
                done = True
                break
            warm = min(1.0, (it + 1) / 300)
            lr = args.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = perm[k : k + args.batch]
            x = gpu_imgs[idx].permute(0, 3, 1, 2).float().div_(255.0)
            t = gpu_tgts[idx].clone()
            valid = t[..., 0] >= 0
            fx = torch.rand(len(idx), device=dev) < 0.5
            fy = torch.rand(len(idx), device=dev) < 0.5
            x = torch.where(fx[:, None, None, None], x.flip(3), x)
            x = torch.where(fy[:, None, None, None], x.flip(2), x)
            bx = t[..., 1:].clone()
            w_, h_ = hw_t[0], hw_t[1]
            fxm, fym = fx[:, None] & valid, fy[:, None] & valid
            t[..., 1] = torch.where(fxm, w_ - bx[..., 2], bx[..., 0])
            t[..., 3] = torch.where(fxm, w_ - bx[..., 0], bx[..., 2])
            t[..., 2] = torch.where(fym, h_ - bx[..., 3], bx[..., 1])
            t[..., 4] = torch.where(fym, h_ - bx[..., 1], bx[..., 3])
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                box_l, cls_l = model(x)
            loss, parts = detection_loss(box_l, cls_l, t, pts, strides, proj)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            ema.update(model)
            if it % args.log_every == 0:
                rec = {"it": it, "epoch": epoch, "t": round(time.time() - t_train, 1),
                       "lr": lr, "loss": loss.item(), "box": parts[0].item(),
                       "cls": parts[1].item(), "dfl": parts[2].item()}
                history.append(rec)
                print(json.dumps(rec), flush=True)
            it += 1
        epoch += 1
    log.update(iters=it, epochs_seen=it * args.batch / n, train_s=time.time() - t_train,
               history=history)
    torch.save({"ema": ema.model.state_dict(), "args": log["args"]}, args.out / "ckpt.pt")
    export_onnx(ema.model, input_hw, args.out / "defect_yolo.onnx",
                metadata(input_hw, f"trained {it} iters on {n} synthetic frames"
                         + (f", {act_note(args.act)}" if args.act != "silu" else "")))
    log["total_s"] = time.time() - t0
    (args.out / "train_log.json").write_text(json.dumps(log, indent=1))
    print(f"done: {it} iters, {log['epochs_seen']:.1f} epochs, {log['total_s']:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
