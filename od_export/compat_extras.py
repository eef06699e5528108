"""Packages od-export installs without their dependencies, and what each needs to import.

Their own pins conflict with TensorFlow 2.20's stack, so ``scripts/setup.sh`` installs
them with ``--no-deps`` and od-export imports only the parts that work without them:

* ``tritonclient``: its extras pin protobuf < 7 and ml-dtypes <= 0.5.4, and
  ``tritonclient.grpc`` refuses to import without ``grpcio``.  Only Triton's
  ``model_config_pb2`` is needed, and that needs protobuf alone: it is loaded from its file.
* ``tflite-support``: it pins protobuf < 4 (for its Task Library, which od-export does
  not import).  Its metadata writer is pure Python on ``flatbuffers`` except two small
  native modules, which link ``libusb-1.0.so.0`` although they never call it; machines
  without libusb get it from the ``libusb-package`` wheel, loaded before them.
"""
from __future__ import annotations

import ctypes
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from od_export.errors import EnvironmentProblem

TFLITE_SUPPORT_HINT = ("TFLite metadata is written with tflite-support's metadata writer: run scripts/setup.sh "
                       "(it installs tflite-support==0.4.4 without dependencies, and libusb-package)")


def import_triton_model_config() -> Any:
    """Triton's ``model_config_pb2``, read from the ``tritonclient`` package without its gRPC client."""
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        raise EnvironmentProblem("Triton's model-config schema comes with tritonclient: run scripts/setup.sh "
                                 "(it installs tritonclient==2.73.0 without dependencies)")
    path = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    if "od_export_triton_model_config" in sys.modules:
        return sys.modules["od_export_triton_model_config"]
    loader_spec = importlib.util.spec_from_file_location("od_export_triton_model_config", path)
    module = importlib.util.module_from_spec(loader_spec)
    loader_spec.loader.exec_module(module)
    sys.modules["od_export_triton_model_config"] = module
    return module


def tflite_metadata_schema_available() -> bool:
    return importlib.util.find_spec("tensorflow_lite_support") is not None


def import_tflite_metadata_schema() -> Any:
    """tflite-support's generated metadata schema (pure Python): enough to read metadata back."""
    if not tflite_metadata_schema_available():
        raise EnvironmentProblem(TFLITE_SUPPORT_HINT)
    return importlib.import_module("tensorflow_lite_support.metadata.metadata_schema_py_generated")


def _load_libusb() -> None:
    """Load ``libusb-1.0.so.0`` from the libusb-package wheel unless the system has one already."""
    try:
        ctypes.CDLL("libusb-1.0.so.0")
        return
    except OSError:
        pass
    spec = importlib.util.find_spec("libusb_package")
    libraries = sorted(Path(next(iter(spec.submodule_search_locations))).glob("libusb-1.0*")) if spec else []
    if not libraries:
        raise EnvironmentProblem("tflite-support's native modules need libusb-1.0.so.0: "
                                 "`pip install libusb-package` (or install the system's libusb)")
    ctypes.CDLL(str(libraries[0]), mode=ctypes.RTLD_GLOBAL)


def import_tflite_metadata_writer() -> Any:
    """tflite-support's ``metadata`` module (``MetadataPopulator``), with what its native modules link."""
    import_tflite_metadata_schema()
    _load_libusb()
    try:
        return importlib.import_module("tensorflow_lite_support.metadata.python.metadata")
    except ImportError as exc:
        raise EnvironmentProblem(f"tflite-support's metadata writer failed to import ({exc}); "
                                 f"{TFLITE_SUPPORT_HINT}") from exc
