"""``validate --save-images``: the SavedModel's detections and each artifact's, drawn side by side.

Numbers say whether an artifact agrees; a picture shows what a disagreement looks
like (a box that moved, a class that changed, an object that int8 lost).  For each
unit and input image one PNG holds one panel per model: the image with every
detection above the score threshold as a box, its class name (from the label map the
pipeline.config names, when it can be found) and its score.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from od_export.storage.location import AnyPath

#: Distinct colours, one per class id (cycled).
PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128))
#: Small test images are scaled up so that labels stay readable.
MIN_PANEL_SIDE = 320
TITLE_HEIGHT = 22


def label_map_names(config_path: AnyPath) -> dict[int, str]:
    """Class id → name from the label map that the config names; empty when it cannot be read.

    The config's ``label_map_path`` is tried as written and beside the config, which
    is where a copied run usually keeps it.
    """
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError:
        return {}
    for name in re.findall(r'label_map_path:\s*"([^"]+)"', text):
        for candidate in (Path(name), Path(str(config_path)).parent / Path(name).name):
            if candidate.is_file():
                return parse_label_map(candidate.read_text(encoding="utf-8"))
    return {}


def parse_label_map(text: str) -> dict[int, str]:
    """``item { id: 1 name: "cat" display_name: "Cat" }`` blocks → {1: "Cat"}."""
    names = {}
    for block in re.findall(r"item\s*\{(.*?)\}", text, flags=re.S):
        number = re.search(r"\bid:\s*(\d+)", block)
        label = re.search(r'display_name:\s*"([^"]*)"', block) or re.search(r'\bname:\s*"([^"]*)"', block)
        if number and label:
            names[int(number.group(1))] = label.group(1)
    return names


def _panel(image: np.ndarray, outputs: dict[str, np.ndarray] | None, title: str, labels: dict[int, str],
           score_threshold: float) -> Any:
    from PIL import Image, ImageDraw

    scale = max(1, int(np.ceil(MIN_PANEL_SIDE / min(image.shape[:2]))))
    height, width = image.shape[0] * scale, image.shape[1] * scale
    panel = Image.new("RGB", (width, height + TITLE_HEIGHT), "white")
    panel.paste(Image.fromarray(image).resize((width, height), Image.NEAREST), (0, TITLE_HEIGHT))
    draw = ImageDraw.Draw(panel)
    shown = 0
    if outputs is not None:
        scores = np.asarray(outputs["detection_scores"])[0]
        for row in np.flatnonzero(scores > score_threshold):
            ymin, xmin, ymax, xmax = np.asarray(outputs["detection_boxes"])[0][row]
            class_id = int(round(float(np.asarray(outputs["detection_classes"])[0][row])))
            colour = PALETTE[class_id % len(PALETTE)]
            box = [xmin * width, TITLE_HEIGHT + ymin * height, xmax * width, TITLE_HEIGHT + ymax * height]
            draw.rectangle(box, outline=colour, width=2)
            draw.text((box[0] + 3, box[1] + 2), f"{labels.get(class_id, f'class {class_id}')} {scores[row]:.2f}", fill=colour)
            shown += 1
    caption = f"{title}: {shown} above {score_threshold:g}" if outputs is not None else f"{title}: did not run"
    draw.text((4, 5), caption, fill="black")
    return panel


def save_side_by_side(directory: Path, unit: str, images: list[np.ndarray], columns: list[tuple[str, list[dict[str, Any]]]],
                      labels: dict[int, str], score_threshold: float) -> list[Path]:
    """One PNG per image: a panel per (title, outputs per image) column, left to right."""
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for index, image in enumerate(images):
        panels = [_panel(image, outputs[index] if index < len(outputs) else None, title, labels, score_threshold)
                  for title, outputs in columns]
        sheet = Image.new("RGB", (sum(p.width for p in panels) + 8 * (len(panels) - 1), max(p.height for p in panels)),
                          "white")
        left = 0
        for panel in panels:
            sheet.paste(panel, (left, 0))
            left += panel.width + 8
        path = directory / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', unit)}_{index:03d}.png"
        sheet.save(path)
        written.append(path)
    return written
