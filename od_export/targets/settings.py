"""The options a target declares: one :class:`Setting` each, read by the CLI, batch files and checks.

A target module lists its settings in ``SETTINGS``; the registry gathers them, the CLI
adds one flag per setting, a batch job accepts one key per setting, and
:meth:`Setting.check` runs before any model is built.  A request holds only the values
given (:class:`od_export.options.ConversionOptions`); a target reads a value, or its
declared default, with ``options.conversion.value(SETTING)``.

Pure Python: the CLI's ``--help`` reads these without importing TensorFlow.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from od_export.errors import InputError

_WHAT = {bool: "true or false", int: "a whole number", str: "a string"}


@dataclass(frozen=True)
class Setting:
    """One option of a target: its name (library field and batch key), its flag, default and check."""

    name: str
    default: Any
    help: str
    #: The type of the value (of each item, when repeatable).
    kind: type = str
    #: Given once per item (``--tflite-precision fp16 --tflite-precision int8``); the value is a tuple.
    repeatable: bool = False
    choices: tuple[str, ...] = ()
    #: The command line's spelling (default: ``--`` and the name with dashes).
    flag: str = ""
    metavar: str | None = None
    #: Text (a flag's argument or a batch file's string) → value, raising InputError.
    parse: Callable[[str], Any] | None = None
    #: Raises InputError for a value that cannot work (after the choices are checked).
    check_value: Callable[[Any], None] | None = None
    #: How messages name the setting ("TFLite precision").
    label: str = ""

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def what(self) -> str:
        return self.label or self.name.replace("_", " ")

    def from_text(self, text: str) -> Any:
        """One item as the command line gives it."""
        if self.parse is not None:
            return self.parse(text)
        if self.kind is int:
            try:
                return int(text)
            except ValueError:
                raise InputError(f"{self.what} {text!r} is not a whole number") from None
        return text

    def from_yaml(self, value: Any) -> Any:
        """A batch file's value, strictly typed: never a silent change (``true`` is not 1)."""
        if self.repeatable:
            items = [value] if not isinstance(value, list) else value
            return tuple(self._item_from_yaml(item) for item in items)
        return self._item_from_yaml(value)

    def _item_from_yaml(self, value: Any) -> Any:
        if self.parse is not None and isinstance(value, list):
            return self.parse(",".join(str(v) for v in value))
        if type(value) is self.kind:
            return value
        if self.parse is not None and isinstance(value, str):
            return self.parse(value)
        raise InputError(f"must be {_WHAT.get(self.kind, self.kind.__name__)}, not {value!r}")

    def check(self, value: Any) -> None:
        items = value if self.repeatable else (value,)
        if self.repeatable and not isinstance(value, tuple):
            raise InputError(f"{self.what} must be a tuple, one item per {self.what.split()[-1]}, not {value!r}")
        for item in items:
            if type(item) is not self.kind and not (item is None and self.default is None):
                raise InputError(f"{self.what} must be {_WHAT.get(self.kind, self.kind.__name__)}, not {item!r}")
        if self.repeatable and not items:
            raise InputError(f"no {self.what} given; choose from: {', '.join(self.choices)}")
        for item in items:
            if self.choices and item not in self.choices:
                raise InputError(f"unknown {self.what} {item!r}; choose from: {', '.join(self.choices)}")
            if self.repeatable and items.count(item) > 1:
                raise InputError(f"{self.what} {item} is given twice; give each {self.what.split()[-1]} once")
        if self.check_value is not None:
            self.check_value(value)
