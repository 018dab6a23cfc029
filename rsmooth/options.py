"""One training hyper-parameter declared once (:class:`Option`): its ``TrainConfig`` field, its ``--flag`` of
``scripts/train.py`` and its entry in the config schema's training section are all generated from it.

Torch-free and free of the training package, so that the config module (``rsmooth.train_config``) and the
methods' modules (``rsmooth.train.methods``) both import it from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """One training hyper-parameter: a ``TrainConfig`` field, a ``--flag`` of ``scripts/train.py`` and an
    entry of the config schema's training section, all generated from this.

    ``kind`` is ``int``, ``float``, ``str`` or ``bool``; ``nullable`` allows ``None``. Bounds: ``minimum``
    (inclusive), ``above`` (exclusive minimum), ``below`` (exclusive maximum), or ``choices``. ``short`` is the
    name in cell ids. An ``exclusive`` option has a value only in its own method's configs (``None``
    elsewhere, and setting it for another method is an error); the options of the first methods are carried
    by every config, so that the ids and command lines of existing models stay as they were.
    """

    name: str
    kind: type
    default: Any
    help: str = ""
    minimum: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    short: str | None = None
    exclusive: bool = False

    def check(self, value: Any) -> None:
        """Raise ``ValueError`` naming the value and what is allowed."""
        if value is None and self.nullable:
            return
        name = self.name
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(self.choices)}")
            return
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
            return
        if self.kind is str:
            if not isinstance(value, str):
                raise ValueError(f"{name} must be a string, got {value!r}")
            return
        if self.kind is int:
            ok = not isinstance(value, bool) and isinstance(value, int)
            what = "a positive integer" if self.minimum == 1 else "a non-negative integer"
        else:
            ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
            what = "a non-negative number" if self.above is None else "a positive number"
        if self.below is not None:
            if not (ok and self.above < value < self.below):
                raise ValueError(f"{name} must lie in ({self.above:g}, {self.below:g}), got {value!r}")
            return
        if not ok or (self.minimum is not None and value < self.minimum):
            raise ValueError(f"{name} must be {what}, got {value!r}")
        if self.above is not None and not value > self.above:
            raise ValueError(f"{name} must be {what}, got {value!r}")

    def schema(self) -> dict[str, Any]:
        """The JSON-schema entry with the bounds of :meth:`check`."""
        if self.choices is not None:
            entry: dict[str, Any] = {"enum": [*self.choices, *([None] if self.nullable else [])]}
            return entry
        kind = {int: "integer", float: "number", bool: "boolean", str: "string"}[self.kind]
        entry = {"type": [kind, "null"] if self.nullable else kind}
        if self.minimum is not None:
            entry["minimum"] = self.minimum
        if self.above is not None:
            entry["exclusiveMinimum"] = self.above
        if self.below is not None:
            entry["exclusiveMaximum"] = self.below
        return entry
