"""od-export: turn a TF2 Object Detection API training run into deployable, verified artifacts.

The public API; everything else is internal.  Names are imported on first use, so
``import od_export`` (and ``od-export --help``) stays free of TensorFlow::

    import od_export

    result = od_export.export(od_export.ExportOptions("pipeline.config", "run/", "out/", targets=("onnx",)))
    report = od_export.validate(od_export.ValidateOptions("out/"))
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "export": "od_export.exporter",
    "ExportResult": "od_export.results",
    "freeze_checkpoint": "od_export.tf1.freeze",
    "FreezeOptions": "od_export.tf1.freeze",
    "wrap_frozen_graph": "od_export.tf1.wrap",
    "WrapOptions": "od_export.tf1.wrap",
    "ExportOptions": "od_export.options",
    "ConversionOptions": "od_export.options",
    "SideInput": "od_export.options",
    "convert": "od_export.converter",
    "ConvertOptions": "od_export.converter",
    "validate": "od_export.validator",
    "ValidateOptions": "od_export.validator",
    "ValidationReport": "od_export.validator",
    "inspect_path": "od_export.inspect.paths",
    "InspectOptions": "od_export.inspect.paths",
    "run_batch": "od_export.pipelines.batch",
    "BatchOptions": "od_export.pipelines.batch",
    "BatchResult": "od_export.pipelines.batch",
    "watch": "od_export.pipelines.watch",
    "WatchOptions": "od_export.pipelines.watch",
    "BuiltModels": "od_export.source.model",
    "create_demo_checkpoint": "od_export.source.demo",
    "DemoCheckpointOptions": "od_export.source.demo",
    "TARGETS": "od_export.targets",
    "OdExportError": "od_export.errors",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'od_export' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value
