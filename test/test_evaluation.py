"""COCO evaluation on hand-made cases with known answers, and against the reference library.

The accuracy guard and the model card quote these numbers, so the plumbing around
faster-coco-eval (xyxy -> xywh, class ids -> category ids, per-class and per-lux-bin
subsets, None for empty subsets) has to give what the reference gives. No model needed: the
predictor is a lookup table keyed by a tag pixel in each fake frame.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from faster_coco_eval import COCO, COCOeval_faster

from edge_trt_ros.dataset import LUX_BINS, Sample, lux_bin
from edge_trt_ros.evaluation import Prediction, Predictor, evaluate, format_table

NAMES = ("scratch", "crack", "dent", "stain")
H, W = 120, 160
LUX_OF_BIN = {"dark": 30.0, "dim": 300.0, "bright": 3000.0, "sunlit": 30_000.0}


Boxes = Sequence[Sequence[float]] | np.ndarray
Values = Sequence[float] | np.ndarray


def frame(tag: int, boxes: Boxes, classes: Values, lux: float = 30.0) -> Sample:
    """A fake frame whose pixel (0, 0) carries ``tag`` so the predictor can recognise it."""
    image = np.zeros((H, W, 3), np.uint8)
    image[0, 0, 0] = tag
    return Sample(
        image=image,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        class_ids=np.asarray(classes, np.int64),
        lux=lux,
        seed=tag,
        material="test",
    )


def table_predictor(preds: dict[int, Prediction]) -> Predictor:
    """Predictions per frame tag; frames without an entry get no detections."""
    empty: Prediction = (np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))

    def predict(image: np.ndarray) -> Prediction:
        return preds.get(int(image[0, 0, 0]), empty)

    return predict


def pred(boxes: Boxes, scores: Values, classes: Values) -> Prediction:
    return (np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64),
            np.asarray(classes, np.int64))


def perfect(samples: Sequence[Sample]) -> dict[int, Prediction]:
    return {s.seed: pred(s.boxes, [0.9] * len(s.boxes), s.class_ids) for s in samples}


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union


SAMPLES = [
    frame(1, [[10, 10, 50, 40], [60, 20, 100, 90]], [0, 1], LUX_OF_BIN["dark"]),
    frame(2, [[5, 5, 30, 30]], [2], LUX_OF_BIN["dim"]),
    frame(3, [[20, 30, 140, 60], [100, 70, 150, 110]], [3, 0], LUX_OF_BIN["bright"]),
    frame(4, [[40, 40, 80, 100]], [1], LUX_OF_BIN["sunlit"]),
]


def test_perfect_predictions_score_one_everywhere() -> None:
    r = evaluate(table_predictor(perfect(SAMPLES)), SAMPLES, NAMES)
    assert r["overall"] == {"map50": 1.0, "map50_95": 1.0}
    assert {n: (c["map50"], c["map50_95"]) for n, c in r["per_class"].items()} == {
        n: (1.0, 1.0) for n in NAMES
    }
    assert {n: (b["map50"], b["images"]) for n, b in r["per_lux_bin"].items()} == {
        n: (1.0, 1) for n in LUX_OF_BIN
    }
    assert (r["images"], r["instances"], r["detections"]) == (4, 6, 6)
    assert [r["per_class"][n]["instances"] for n in NAMES] == [2, 2, 1, 1]
    json.dumps(r)  # the CLI writes it as JSON


def test_no_predictions_score_zero() -> None:
    r = evaluate(table_predictor({}), SAMPLES, NAMES)
    assert r["overall"] == {"map50": 0.0, "map50_95": 0.0}
    assert all(c["map50"] == 0.0 for c in r["per_class"].values())
    assert all(b["map50"] == 0.0 for b in r["per_lux_bin"].values())
    assert r["detections"] == 0


def test_right_box_wrong_class_is_not_a_hit() -> None:
    s = [frame(1, [[10, 10, 50, 50]], [0])]
    r = evaluate(table_predictor({1: pred([[10, 10, 50, 50]], [0.9], [1])}), s, NAMES)
    assert r["overall"]["map50"] == 0.0 and r["per_class"]["scratch"]["map50"] == 0.0


@pytest.mark.parametrize(("shift", "expected_map50", "expected_map50_95"), [
    (33.0, 1.0, 0.1),  # IoU 67/133 = 0.504: a hit at 0.5 only, 1 of the 10 thresholds
    (34.0, 0.0, 0.0),  # IoU 66/134 = 0.493: a miss at every threshold
])
def test_iou_just_above_or_below_one_half(
    shift: float, expected_map50: float, expected_map50_95: float
) -> None:
    gt = [0.0, 10.0, 100.0, 110.0]
    shifted = [gt[0] + shift, gt[1], gt[2] + shift, gt[3]]
    assert abs(iou(gt, shifted) - 0.5) < 0.01
    s = [frame(1, [gt], [2])]
    r = evaluate(table_predictor({1: pred([shifted], [0.8], [2])}), s, NAMES)
    assert r["overall"]["map50"] == pytest.approx(expected_map50, abs=1e-9)
    assert r["overall"]["map50_95"] == pytest.approx(expected_map50_95, abs=1e-9)


def test_false_positive_ranked_first_halves_precision() -> None:
    """One GT; a higher-scored false positive, then the hit: precision 1/2 at recall 1, AP 0.5.

    (COCO's 101-point interpolation takes the best precision at recall >= r, which is 0.5 for
    every r here.)
    """
    s = [frame(1, [[10, 10, 50, 50]], [0]), frame(2, [], [])]
    preds = {1: pred([[10, 10, 50, 50]], [0.6], [0]), 2: pred([[70, 70, 90, 90]], [0.9], [0])}
    r = evaluate(table_predictor(preds), s, NAMES)
    assert r["overall"]["map50"] == pytest.approx(0.5, abs=1e-9)


def test_lux_bins_use_only_their_own_images() -> None:
    """Dark frames predicted perfectly, bright ones missed: each bin reports only itself."""
    samples = [
        frame(1, [[10, 10, 50, 40]], [0], 12.0),
        frame(2, [[30, 30, 90, 70]], [1], 95.0),
        frame(3, [[10, 10, 50, 40]], [0], 2_000.0),
        frame(4, [[30, 30, 90, 70]], [1], 9_999.0),
    ]
    r = evaluate(table_predictor(perfect(samples[:2])), samples, NAMES)
    bins = r["per_lux_bin"]
    dark = bins["dark"]
    assert (dark["images"], dark["map50"], dark["map50_95"]) == (2, 1.0, 1.0)
    assert (bins["bright"]["images"], bins["bright"]["map50"]) == (2, 0.0)
    assert 0.0 < r["overall"]["map50"] < 1.0
    assert [bins[n]["lux_range"] for n in bins] == [[lo, hi] for lo, hi, _ in LUX_BINS]


def test_subsets_without_ground_truth_are_none() -> None:
    """No GT means no mAP (None, shown as n/a), not 0: an empty subset did not fail."""
    samples = [frame(1, [[10, 10, 50, 40]], [0], 30.0), frame(2, [], [], 30_000.0)]
    # A detection on the GT-free sunlit frame must not turn its None into a 0.
    preds = {**perfect(samples), 2: pred([[5, 5, 20, 20]], [0.7], [3])}
    r = evaluate(table_predictor(preds), samples, NAMES)
    assert r["per_class"]["scratch"]["map50"] == 1.0
    for name in ("crack", "dent", "stain"):
        assert r["per_class"][name] == {"map50": None, "map50_95": None, "instances": 0}
    assert (r["per_lux_bin"]["sunlit"]["images"], r["per_lux_bin"]["sunlit"]["map50"]) == (1, None)
    assert (r["per_lux_bin"]["dim"]["images"], r["per_lux_bin"]["dim"]["map50_95"]) == (0, None)
    assert "| class `crack` | 0 inst. | n/a | n/a |" in format_table(r)
    nothing = evaluate(table_predictor({}), [frame(1, [], [])], NAMES)
    assert nothing["overall"] == {"map50": None, "map50_95": None}


# ------------------------------------------------------------ against the reference library
def random_case(seed: int) -> tuple[list[Sample], dict[int, Prediction]]:
    """Frames in every lux bin with jittered, missed and spurious detections."""
    rng = np.random.default_rng(seed)
    samples: list[Sample] = []
    preds: dict[int, Prediction] = {}
    for tag in range(1, 17):
        n = int(rng.integers(0, 5))
        xy = rng.uniform(0, 100, (n, 2))
        wh = rng.uniform(6, 50, (n, 2))
        gt = np.concatenate([xy, np.minimum(xy + wh, [W, H])], 1)
        cls = rng.integers(0, 3, n)  # class 3 never occurs: its entry must be None
        lux = float(10 ** rng.uniform(1, 5))
        samples.append(frame(tag, gt, cls, lux))
        keep = rng.random(n) < 0.8
        boxes = gt[keep] + rng.normal(0, 4, (int(keep.sum()), 4))
        labels = np.where(rng.random(int(keep.sum())) < 0.9, cls[keep], rng.integers(0, 4))
        m = int(rng.integers(0, 3))
        fxy = rng.uniform(0, 120, (m, 2))
        spurious = np.concatenate([fxy, fxy + rng.uniform(5, 30, (m, 2))], 1)
        preds[tag] = pred(np.concatenate([boxes, spurious]),
                          rng.uniform(0.05, 1.0, len(boxes) + m),
                          np.concatenate([labels, rng.integers(0, 4, m)]))
    return samples, preds


def reference_map(samples: Sequence[Sample], preds: dict[int, Prediction],
                  keep_class: int | None = None) -> tuple[float, float]:
    """COCOeval on a dataset that *contains only* the subset (no params.imgIds/catIds).

    Only ``samples`` are in it, and only class ``keep_class`` when one is given.
    """
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    dets: list[dict[str, Any]] = []
    for s in samples:
        images.append({"id": s.seed, "width": W, "height": H})
        for (x0, y0, x1, y1), c in zip(s.boxes.tolist(), s.class_ids.tolist(), strict=True):
            if keep_class is None or c == keep_class:
                anns.append({"id": len(anns) + 1, "image_id": s.seed, "category_id": c + 1,
                             "bbox": [x0, y0, x1 - x0, y1 - y0],
                             "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
        boxes, scores, classes = preds[s.seed]
        for (x0, y0, x1, y1), sc, c in zip(boxes.tolist(), scores.tolist(), classes.tolist(),
                                           strict=True):
            if keep_class is None or c == keep_class:
                dets.append({"image_id": s.seed, "category_id": c + 1,
                             "bbox": [x0, y0, x1 - x0, y1 - y0], "score": sc})
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(NAMES)]
    gt = COCO({"images": images, "annotations": anns, "categories": cats})
    ev = COCOeval_faster(gt, gt.loadRes(dets), "bbox", print_function=lambda *a, **k: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return float(ev.stats[1]), float(ev.stats[0])


def _pair(entry: dict[str, Any]) -> tuple[float, float]:
    return (-1.0 if entry["map50"] is None else entry["map50"],
            -1.0 if entry["map50_95"] is None else entry["map50_95"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_cocoeval_on_random_cases(seed: int) -> None:
    samples, preds = random_case(seed)
    r = evaluate(table_predictor(preds), samples, NAMES)
    ref = reference_map(samples, preds)
    assert 0.05 < ref[0] < 0.99  # a case where matching actually matters
    assert _pair(r["overall"]) == pytest.approx(ref, abs=1e-12)
    for i, name in enumerate(NAMES):
        assert _pair(r["per_class"][name]) == pytest.approx(
            reference_map(samples, preds, keep_class=i), abs=1e-12), name
    assert r["per_class"]["stain"]["map50"] is None
    for _, _, name in LUX_BINS:
        in_bin = [s for s in samples if lux_bin(s.lux) == name]
        assert r["per_lux_bin"][name]["images"] == len(in_bin)
        if any(len(s.boxes) for s in in_bin):
            expected = reference_map(in_bin, preds)  # a dataset of only this bin's frames
            assert _pair(r["per_lux_bin"][name]) == pytest.approx(expected, abs=1e-12), name
        else:
            assert r["per_lux_bin"][name]["map50"] is None
