"""pandera, without pyspark's warning. pandera imports pyspark.pandas when pyspark is installed
(the Spark engine's), on import and again on the first validation, and pyspark then warns that
it does not support pandas 3 on every run: nothing a user can act on, so that one warning, and
only it, is silenced around pandera."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

PYSPARK_PANDAS = "PySpark does not yet fully support"


@contextlib.contextmanager
def quiet_pyspark() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", PYSPARK_PANDAS, FutureWarning)
        yield


with quiet_pyspark():
    import pandera.pandas as pa

__all__ = ["pa", "quiet_pyspark"]
