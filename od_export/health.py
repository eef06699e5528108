"""Checks that turn a doomed export into one clear line before the work is wasted.

* A diverged training run leaves NaN or Inf in its weights; exporting it produces
  artifacts that compare as ``max |diff| nan``.  The restored variables are checked
  first, by name.
* A model can have finite weights and still compute infinite boxes (``exp`` of a huge
  box encoding) on an ordinary image; the SavedModel's outputs are checked before
  any artifact is compared with them.
* Protobuf cannot serialise a message over 2 GiB, and a frozen graph holds every
  weight as a constant; the size is estimated from the variables before freezing.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from od_export.errors import CheckpointError, InputError, NonFiniteOutputs

#: protobuf's hard limit on one serialised message (a GraphDef).
PROTOBUF_LIMIT_BYTES = 2**31 - 1
#: Room for the graph's nodes and attributes beside the weights (measured: well under 10 MB here).
GRAPH_OVERHEAD_BYTES = 64 * 2**20
_SHOWN = 3


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" (+{len(names) - _SHOWN} more)" if len(names) > _SHOWN else "")


def non_finite_names(named_values: Iterable[tuple[str, np.ndarray]]) -> list[str]:
    """Names whose floating-point values include NaN or ±Inf."""
    bad = []
    for name, value in named_values:
        array = np.asarray(value)
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            bad.append(name)
    return bad


def check_finite_weights(model: Any, prefix: object) -> None:
    """Refuse a checkpoint whose restored weights hold NaN or Inf (a diverged run)."""
    bad = non_finite_names((variable.name, variable.numpy()) for variable in model.variables)
    if bad:
        raise CheckpointError(
            f"checkpoint {prefix} holds NaN or infinite values in {len(bad)} variable(s): {_listing(bad)}; "
            "the training run diverged before this checkpoint: export an earlier one"
        )


def check_finite_outputs(outputs: Mapping[str, np.ndarray], what: str) -> None:
    """Refuse outputs with NaN or Inf on the sample image, naming the outputs."""
    bad = non_finite_names(sorted(outputs.items()))
    if bad:
        raise NonFiniteOutputs(
            f"{what} computes NaN or infinite values on a sample image in {_listing(bad)}; the model's weights "
            "are not usable for inference (check the training run, or export an earlier checkpoint)"
        )


def variable_bytes(shapes_and_dtypes: Iterable[tuple[tuple[int, ...], int]]) -> int:
    """Total bytes of variables given as (shape, bytes per element)."""
    return sum(int(np.prod(shape, dtype=np.int64)) * size for shape, size in shapes_and_dtypes)


def check_frozen_graph_fits(weight_bytes: int) -> None:
    """Refuse to freeze a model whose constants alone would pass protobuf's 2 GiB limit."""
    estimate = weight_bytes + GRAPH_OVERHEAD_BYTES
    if estimate > PROTOBUF_LIMIT_BYTES:
        raise InputError(
            f"a frozen graph of this model would be about {estimate / 2**30:.1f} GiB, over protobuf's 2 GiB limit "
            "for one GraphDef; export without the frozen graph and deploy the SavedModel, which keeps weights "
            "outside the graph"
        )


def model_weight_bytes(model: Any) -> int:
    return variable_bytes((tuple(v.shape.as_list()), v.dtype.size) for v in model.variables)
