"""``validate --save-images``: the SavedModel's detections and each artifact's, drawn side by side.

Numbers say whether an artifact agrees; a picture shows what a disagreement looks
like (a box that moved, a class that changed, an object that int8 lost).  For each
unit and input image one PNG (named after the image) holds one panel per model, in a
grid of at most :data:`GRID_COLUMNS` columns, each panel :data:`PANEL_WIDTH` pixels
wide.  Every panel shows the same detections: above the same score threshold and at
most the same number (the shortest list any model returns, so a TFLite file's 10 are
compared with the SavedModel's best 10).  Boxes are coloured by class and labelled
with the class name from the label map; on an artifact's panel, a detection that
matches one of the SavedModel's (same class, IoU ≥ 0.5) is drawn solid, one that
matches none is marked ``extra``, and each SavedModel detection it missed is drawn
dashed and marked ``missed``.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from od_export.storage.location import AnyPath
from od_export.verify.compare import match_detections

logger = logging.getLogger(__name__)

#: Distinct colours, one per class id (cycled).
PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128))
MISSED = (128, 128, 128)
PANEL_WIDTH = 640
GRID_COLUMNS = 4
TITLE_HEIGHT = 22
GAP = 8


def label_map_names(config_path: AnyPath | None, label_map: Path | None = None) -> dict[int, str]:
    """Class id → name from ``label_map``, else from the label map the config names; warns when none is found."""
    from od_export.source.labels import read_labels

    labels = read_labels(config_path, label_map, None, purpose="classes are drawn by number")
    return labels.as_dict() if labels is not None else {}


def _top(outputs: dict[str, np.ndarray], keep: int) -> dict[str, np.ndarray]:
    return {k: np.asarray(outputs[k])[:, :keep] for k in ("detection_boxes", "detection_scores", "detection_classes")}


def _dashed(draw: Any, box: list[float], colour: tuple[int, int, int], dash: int = 6) -> None:
    left, top, right, bottom = box
    for start in np.arange(left, right, 2 * dash):
        for y in (top, bottom):
            draw.line([(start, y), (min(start + dash, right), y)], fill=colour, width=2)
    for start in np.arange(top, bottom, 2 * dash):
        for x in (left, right):
            draw.line([(x, start), (x, min(start + dash, bottom))], fill=colour, width=2)


class _Panel:
    """One model's detections on one image, ``PANEL_WIDTH`` pixels wide."""

    def __init__(self, image: np.ndarray, title: str, labels: dict[int, str]) -> None:
        from PIL import Image, ImageDraw

        self.width = PANEL_WIDTH
        self.height = max(1, round(image.shape[0] * PANEL_WIDTH / image.shape[1]))
        self.image = Image.new("RGB", (self.width, self.height + TITLE_HEIGHT), "white")
        self.image.paste(Image.fromarray(image).resize((self.width, self.height), Image.BILINEAR), (0, TITLE_HEIGHT))
        self.draw, self.title, self.labels = ImageDraw.Draw(self.image), title, labels

    def box(self, box: np.ndarray, class_id: int, text: str, dashed: bool = False) -> None:
        ymin, xmin, ymax, xmax = (float(v) for v in box)
        corners = [xmin * self.width, TITLE_HEIGHT + ymin * self.height, xmax * self.width, TITLE_HEIGHT + ymax * self.height]
        corners = [min(corners[0], corners[2]), min(corners[1], corners[3]), max(corners[0], corners[2]),
                   max(corners[1], corners[3])]
        colour = MISSED if dashed else PALETTE[class_id % len(PALETTE)]
        if dashed:
            _dashed(self.draw, corners, colour)
        else:
            self.draw.rectangle(corners, outline=colour, width=2)
        self.draw.text((corners[0] + 3, corners[1] + 2), f"{self.labels.get(class_id, f'class {class_id}')} {text}", fill=colour)

    def caption(self, text: str) -> None:
        self.draw.text((4, 5), f"{self.title}: {text}", fill="black")


def _draw(panel: _Panel, outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray] | None,
          threshold: float) -> None:
    scores, classes, boxes = (outputs[k][0] for k in ("detection_scores", "detection_classes", "detection_boxes"))
    shown = np.flatnonzero(scores > threshold)
    if reference is None:
        for row in shown:
            panel.box(boxes[row], int(round(float(classes[row]))), f"{scores[row]:.2f}")
        return panel.caption(f"{len(shown)} above {threshold:g}")
    pairs = dict((c, r) for r, c in match_detections(reference, outputs, 0, threshold, 0.0).pairs)
    for row in shown:
        panel.box(boxes[row], int(round(float(classes[row]))), f"{scores[row]:.2f}" + ("" if row in pairs else " extra"))
    ref_scores = reference["detection_scores"][0]
    missed = [r for r in np.flatnonzero(ref_scores > threshold) if r not in pairs.values()]
    for row in missed:
        panel.box(reference["detection_boxes"][0][row], int(round(float(reference["detection_classes"][0][row]))),
                  "missed", dashed=True)
    panel.caption(f"{len(pairs)} matched, {len(shown) - len(pairs)} extra, {len(missed)} missed")


def save_side_by_side(directory: Path, unit: str, images: list[np.ndarray], names: list[str],
                      columns: list[tuple[str, list[dict[str, Any]]]], labels: dict[int, str],
                      score_threshold: float, suffix: str = ".png") -> list[Path]:
    """One picture per image, named ``<unit>_<image><suffix>``: a panel per (title, outputs, expected) column.

    The first column is the reference (the SavedModel) the others are marked against,
    unless a column brings the outputs its check compared it with (``expected``, per image).
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for index, image in enumerate(images):
        runs = [_at(outputs, index) for _, outputs, _ in columns]
        keep = min(np.asarray(run["detection_scores"]).shape[1] for run in runs if run is not None)
        panels = []
        for (title, _, expected), run in zip(columns, runs):
            panel = _Panel(image, title, labels)
            reference = _at(expected, index) or runs[0]
            if run is None:
                panel.caption("did not run")
            else:
                _draw(panel, _top(run, keep), _top(reference, keep) if panels and reference else None, score_threshold)
            panels.append(panel)
        written.append(_save_grid(directory / f"{_safe(unit)}_{_safe(names[index])}{suffix}", panels))
    return written


def _at(per_image: list[dict[str, Any]], index: int) -> dict[str, Any] | None:
    return per_image[index] if index < len(per_image) else None


def _save_grid(path: Path, panels: list[_Panel]) -> Path:
    from PIL import Image

    columns = min(GRID_COLUMNS, len(panels))
    rows = -(-len(panels) // columns)
    cell_width, cell_height = PANEL_WIDTH + GAP, max(p.image.height for p in panels) + GAP
    sheet = Image.new("RGB", (columns * cell_width - GAP, rows * cell_height - GAP), "white")
    for number, panel in enumerate(panels):
        sheet.paste(panel.image, ((number % columns) * cell_width, (number // columns) * cell_height))
    sheet.save(path, quality=85) if path.suffix == ".jpg" else sheet.save(path)
    return path


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).stem if "." in name else name)
