"""The machinery under params.yaml's sections (features/params.py): strict, frozen pydantic
models that also record which keys a stage reads, so the DVC test can hold dvc.yaml's
dependencies to the truth."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_READS: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("reads", default=None)


class Section(BaseModel):
    """A params.yaml section: unknown keys are errors, every key is required, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    _path: str = ""

    def __getattribute__(self, name: str) -> Any:
        seen = _READS.get()
        if seen is not None and not name.startswith("_") and name in type(self).model_fields:
            private = object.__getattribute__(self, "__pydantic_private__") or {}
            prefix = private.get("_path", "")
            alias = type(self).model_fields[name].alias or name
            if prefix:  # the top level's reads are sections, not keys
                seen.add(f"{prefix}.{alias}")
        return super().__getattribute__(name)

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        """As pydantic's, and a read of every field for `record_reads`."""
        if _READS.get() is not None:
            for name in type(self).model_fields:
                getattr(self, name)
        return super().model_dump(**kwargs)

    def model_post_init(self, context: Any, /) -> None:
        private = object.__getattribute__(self, "__pydantic_private__") or {}
        self._set_paths(private.get("_path", ""))

    def _set_paths(self, prefix: str) -> None:
        """Name each nested section by its key path, for `record_reads`."""
        object.__setattr__(self, "__pydantic_private__", {"_path": prefix})
        for name, info in type(self).model_fields.items():
            value = object.__getattribute__(self, name)
            if isinstance(value, Section):
                key = info.alias or name
                value._set_paths(f"{prefix}.{key}" if prefix else key)


@contextlib.contextmanager
def record_reads() -> Iterator[set[str]]:
    """Collect the key paths (`features.signals.gap_ratio`) read inside the block: the DVC test
    checks that every key a stage reads is one of its dependencies in dvc.yaml."""
    seen: set[str] = set()
    token = _READS.set(seen)
    try:
        yield seen
    finally:
        _READS.reset(token)


def runtime(**kwargs: Any) -> Any:
    """A field that cannot change results: kept out of dvc.yaml's dependencies."""
    return Field(json_schema_extra={"runtime": True}, **kwargs)
