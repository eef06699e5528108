"""Typed errors that the CLI turns into one line and an exit code.

Every problem a user can fix (a wrong path, a malformed config, a checkpoint that
does not fit the config) is raised as an :class:`OdExportError` subclass whose
message names the problem *and* the fix.  The CLI prints ``od-export: error: <message>``
and exits with :attr:`exit_code`; it never shows a traceback for these.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

USAGE_EXIT_CODE = 2
#: ``{option:overwrite}`` in a message names an option; each front end spells it its own way.
_OPTION = re.compile(r"\{option:(\w+)\}")


def option(name: str) -> str:
    """A reference to the option ``name`` (an :class:`ExportOptions` field) inside a message."""
    return "{option:" + name + "}"

FAILURE_EXIT_CODE = 1


class OdExportError(Exception):
    """Base class: a user-facing problem with a one-line message."""

    exit_code: int = USAGE_EXIT_CODE

    def __init__(self, message: str) -> None:
        # Keep the message on one line whatever the underlying library said.
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self) -> str:
        """The message as the library says it: options by their field names (``overwrite``)."""
        return self.render({})

    def __str__(self) -> str:
        return self.message

    def render(self, spellings: Mapping[str, str]) -> str:
        """The message with each option spelled as a front end names it (``--overwrite`` on the CLI)."""
        return _OPTION.sub(lambda m: spellings.get(m.group(1), f"'{m.group(1)}'"), str(self.args[0]))


class ConfigError(OdExportError):
    """pipeline.config is missing, malformed or describes an unbuildable model."""


class CheckpointError(OdExportError):
    """The checkpoint is missing, unreadable or does not match the model."""


class InputError(OdExportError):
    """A command-line value is invalid (unknown input type, bad shape, ...)."""


class OutputError(OdExportError):
    """The output location cannot be used (exists and may not be replaced, not writable)."""


class EnvironmentProblem(OdExportError):
    """A required package is missing or broken in this Python environment."""


class ExportFailed(OdExportError):
    """TensorFlow failed after the inputs were accepted; nothing was written."""

    exit_code = FAILURE_EXIT_CODE


class ValidationFailed(OdExportError):
    """An artifact does not compute the same detections as the SavedModel."""

    exit_code = FAILURE_EXIT_CODE


class OutputBusy(OdExportError):
    """Another od-export process is writing the same output directory right now."""

    exit_code = FAILURE_EXIT_CODE


class WriteFailed(OdExportError):
    """Writing the export failed (disk full, quota, I/O error); nothing was published."""

    exit_code = FAILURE_EXIT_CODE


class NonFiniteOutputs(OdExportError):
    """The model computes NaN or infinite values on the sample image."""

    exit_code = FAILURE_EXIT_CODE
