"""The customers' own events (transactions and their own activity, `OWN_ACTIVITY`) as validate
wrote them: what a return or a last sign of life is, for the winback and campaigns stages alike.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnlight.features.activity import OWN_ACTIVITY
from churnlight.features.snapshots import release_arrow_memory
from churnlight.models.winback import own_events


def read_own_events(interim: Path) -> pd.DataFrame:
    """customer_id, ts of every own event in the `interim` folder's tables (`own_events`' table):
    only the columns a return needs, the activity filtered to own types as read, the tables
    joined and typed in Arrow and converted once, letting Arrow's buffers go as they convert
    (at 1M customers, 53M own events: the copies of a pandas concat cost GiBs, issue 17). A
    company's outreach is not a customer's return."""
    own = [("event_type", "in", sorted(OWN_ACTIVITY))]
    tables = [
        t
        for t in (_read(interim, "transactions"), _read(interim, "activity", own))
        if t is not None
    ]
    if not tables:
        return own_events(None, None)
    table = pa.concat_tables(tables)
    del tables  # the table's chunks are theirs: only the table may hold them as it converts
    if table["ts"].null_count:
        table = table.filter(pc.is_valid(table["ts"]))
    out = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    release_arrow_memory()
    return out


def _read(folder: Path, name: str, filters: list | None = None) -> pa.Table | None:
    path = folder / f"{name}.parquet"
    if not path.exists():
        return None
    table = pq.read_table(path, columns=["customer_id", "ts"], filters=filters)
    typed = pa.schema([("customer_id", pa.large_string()), ("ts", pa.timestamp("ns"))])
    return table.cast(typed)
