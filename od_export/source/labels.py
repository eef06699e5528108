"""The run's class names: read from its label map, checked against the config, carried by every artifact.

The label map is the one given, else the one the config's input readers name
(``label_map_path``), found as written, relative to the config's directory, or by its
file name beside the config (a path from another machine, a Windows path).  Its ids must be classes of the model (1 to
``num_classes``).  No label map is a warning: artifacts then carry no names.

Every artifact gets a ``labels.txt``: line *k* (counting from 0) is the name of label
id *k* + 1, as the TFLite Task Library and Triton read such a file; an id the label
map leaves out is ``???``.  Each runtime's output relates to it by its own offset
(:func:`label_spec`): the SavedModel's ``detection_classes`` are label ids (line =
value - 1), a TFLite file's are 0-based (line = value).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Any

from od_export.errors import InputError
from od_export.storage.location import AnyPath
from od_export.source.proto_text import label_map_proto
from od_export.storage.reading import decode_text, read_bounded

logger = logging.getLogger(__name__)

LABELS_FILE = "labels.txt"
#: Where an export keeps the names in its SavedModel, relative to a unit.
SAVED_MODEL_LABELS = "saved_model/assets/labels.txt"
MISSING_NAME = "???"


@dataclass(frozen=True)
class Labels:
    """Label id → class name, and where they were read."""

    names: tuple[tuple[int, str], ...]
    source: str

    def as_dict(self) -> dict[int, str]:
        return dict(self.names)

    def lines(self, num_classes: int) -> list[str]:
        """``labels.txt``: the name of id 1, 2, … ``num_classes``, one per line."""
        names = self.as_dict()
        lines = [names.get(number, MISSING_NAME) for number in range(1, num_classes + 1)]
        broken = [line for line in lines if "\n" in line or "\r" in line]
        if broken:  # one line per class: a line break would shift every later name
            logger.warning(f"class name {broken[0]!r} holds a line break; labels.txt writes it as a space")
        return [" ".join(line.splitlines()) if line in broken else line for line in lines]


#: A label map of tens of thousands of classes is a few MB.
MAX_LABEL_MAP_BYTES = 64 * 2**20


def parse_label_map(data: bytes | str, source: str = "label map") -> dict[int, str]:
    """A label map as the OD API reads it (``label_map_util.load_labelmap``) → {id: display_name or name}.

    Text format through the OD API's own ``StringIntLabelMap`` proto, the binary form where
    the text does not parse; ids below 0, and id 0 for anything but ``background``, are
    refused as the OD API refuses them; id 0 (the background) names no class.
    """
    proto = label_map_proto(data, source)
    names = {}
    for item in proto.item:
        if item.id < 0:
            raise InputError(f"label map {source} has id {item.id}; label map ids are 0 or more (the OD API refuses "
                             "others): fix the label map")
        if item.id == 0 and "background" not in (item.name, item.display_name):
            raise InputError(f"label map {source} gives id 0 to {item.name or item.display_name!r}; the OD API keeps "
                             "id 0 for the background: number classes from 1")
        label = item.display_name or item.name
        if item.id > 0 and label:
            names[item.id] = label
    return names


def named_label_maps(config_path: AnyPath | None) -> list[str]:
    """The ``label_map_path`` values a config names, in its order."""
    if config_path is None:
        return []
    from od_export.errors import OdExportError
    from od_export.source.pipeline_config import read_text

    try:
        text = read_text(config_path)
    except OdExportError:
        return []
    return list(dict.fromkeys(m.group(2) for m in re.finditer(r"""label_map_path:\s*(["'])(.+?)\1""", text)))


def find_label_map(config_path: AnyPath | None) -> tuple[Path | None, str]:
    """The label map the config names, where it is found; else None and why not."""
    written = named_label_maps(config_path)
    for name in written:
        file_name = PureWindowsPath(name).name if "\\" in name else Path(name).name
        beside = Path(str(config_path)).parent
        relative = [] if "\\" in name or Path(name).is_absolute() else [beside / name]  # as training ran, from the run
        for candidate in (Path(name), *relative, beside / file_name):
            if candidate.is_file():
                return candidate, ""
    return None, f"the config names {written[0]!r}, which is not there" if written else "the config names none"


def read_labels(config_path: AnyPath | None, given: str | Path | None, num_classes: int | None,
                purpose: str = "artifacts carry no class names", exported: Path | None = None) -> Labels | None:
    """The run's labels, checked against ``num_classes``; None (with a warning) when there is no label map.

    ``exported`` is a ``labels.txt`` an earlier export wrote (a SavedModel's), used when the
    config's label map is not found: an export carries its names to later conversions."""
    if given is not None:
        path = Path(given)
        if not path.exists():
            raise InputError(f"label map {path} does not exist; give the path of a label_map.pbtxt")
    else:
        path, why = find_label_map(config_path)
        if path is None and exported is not None and exported.is_file():
            lines = decode_text(read_bounded(exported, "labels file", MAX_LABEL_MAP_BYTES, "export again"), exported,
                                "labels file", "export again").splitlines()
            return Labels(tuple((i + 1, n) for i, n in enumerate(lines) if n != MISSING_NAME), str(exported))
        if path is None:
            logger.warning(f"no label map found ({why}): {purpose}; give the label map's path to name them")
            return None
    names = parse_label_map(read_bounded(path, "label map", MAX_LABEL_MAP_BYTES, "give a label_map.pbtxt"), str(path))
    if not names:
        raise InputError(f"label map {path} has no item with an id and a name; give a label_map.pbtxt")
    if num_classes is not None:
        outside = sorted(number for number in names if not 1 <= number <= num_classes)
        if outside:
            raise InputError(f"label map {path} has id {outside[0]}, but the model's classes are 1 to {num_classes} "
                             "(num_classes in the config); give the label map the model was trained with")
    return Labels(tuple(sorted(names.items())), str(path))


def label_spec(labels: Labels, offset: int) -> dict[str, Any]:
    """The ``labels`` entry of an artifact's io_spec.json: the names, and how its class output maps to them."""
    return {"file": LABELS_FILE, "source": labels.source, "names": {str(k): v for k, v in labels.names},
            "class_offset": offset,
            "read": f"label id = class output + {offset}; labels.txt line (from 0) = label id - 1"}


def attach_labels(directory: Path, labels: Labels, num_classes: int, offset: int) -> list[Path]:
    """``labels.txt`` in an artifact's directory, and its ``labels`` entry in the io_spec.json there (if any)."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LABELS_FILE
    path.write_text("\n".join(labels.lines(num_classes)) + "\n", encoding="utf-8")
    spec_path = directory / "io_spec.json"
    if spec_path.is_file():
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        spec["labels"] = label_spec(labels, offset)
        spec_path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return [path]


def metadata_entries(labels: Labels, offset: int) -> dict[str, str]:
    """Key → text, for formats that carry string metadata (ONNX ``metadata_props``, OpenVINO ``rt_info``)."""
    import json

    return {"labels": json.dumps({str(k): v for k, v in labels.names}), "class_offset": str(offset)}
