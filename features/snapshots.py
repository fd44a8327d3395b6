"""The snapshot files: features.parquet (labelled rows) and scoring.parquet (the scoring
snapshot, without label), written a customer range at a time, and read back for modelling."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnlight.features.columns import Column, arrow_schema

# a range's rows -> (its labelled rows, its scoring rows still with their label)
Split = Callable[[pa.Table, pd.Timestamp | None], tuple[pa.Table, pa.Table]]


def split_events(table: pa.Table, last: pd.Timestamp | None) -> tuple[pa.Table, pa.Table]:
    """Event mode: the labelled rows (which come first, see `ranges.ROW_ORDER`) and the rows
    of the newest cutoff `last`."""
    labelled = table.slice(0, table.num_rows - table["label"].null_count)
    if labelled["label"].null_count:
        raise RuntimeError("a range's rows came without the labelled ones first")
    newest = pc.equal(table["cutoff"], pa.scalar(last, table.schema.field("cutoff").type))
    rest = table.slice(labelled.num_rows)
    if pc.sum(newest).as_py() == rest.num_rows and pc.all(newest.slice(labelled.num_rows)).as_py():
        return labelled, rest  # as by default: the rows without a label are the newest cutoff's
    # the newest cutoff's label window is observed (features.last_cutoff set early): a cutoff's
    # rows are all labelled or none, so this keeps (customer_id) order
    return labelled, table.filter(newest)


def split_flat(table: pa.Table, last: pd.Timestamp | None) -> tuple[pa.Table, pa.Table]:
    """Flat mode: every row is labelled; the scoring list is the customers still with us."""
    return table, table.filter(pc.equal(table["label"], 0))


class SnapshotWriter:
    """features.parquet and scoring.parquet in `folder` from a run's rows (Arrow tables of
    the written `columns`), a customer range at a time, keeping what the summary needs.

    The caller works on the next ranges while a thread of this writer splits and encodes the
    previous one to Parquet (pyarrow lets go of the GIL); one range in flight, each a row group
    of each file (while under pyarrow's row-group size).
    """

    def __init__(
        self,
        folder: Path,
        columns: Iterable[Column],
        last: pd.Timestamp | None,
        split: Split = split_events,
    ) -> None:
        columns = list(columns)
        self.schema, self.last, self.split = arrow_schema(columns), last, split
        scoring_schema = arrow_schema(c for c in columns if c.name != "label")
        # dictionary encoding where values repeat (keys, counts, categories), not for floats,
        # where it costs encoding time for little size (bench/README.md)
        repeat = (pa.types.is_string, pa.types.is_integer, pa.types.is_timestamp)
        dictionary = [f.name for f in self.schema if any(is_(f.type) for is_ in repeat)]
        self.labelled = pq.ParquetWriter(
            folder / "features.parquet", self.schema, use_dictionary=dictionary
        )
        self.scoring = pq.ParquetWriter(
            folder / "scoring.parquet", scoring_schema, use_dictionary=dictionary
        )
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending: Future | None = None
        self.rows, self.label_sum, self.cutoffs = 0, 0, set()
        self.colours: Counter[str] = Counter()

    def write(self, table: pa.Table) -> None:
        """Queue a range's rows for writing, once the previous range's are written."""
        self._wait()  # a failure of the previous range's write surfaces here
        self.pending = self.pool.submit(self._write, table)

    def _write(self, table: pa.Table) -> None:
        labelled, scoring = self.split(table, self.last)
        scoring = scoring.drop_columns("label")
        self.labelled.write_table(labelled)
        self.scoring.write_table(scoring)
        self.rows += labelled.num_rows
        self.label_sum += pc.sum(labelled["label"]).as_py() or 0
        self.cutoffs.update(pc.unique(labelled["cutoff"]).to_pylist())
        # counts, not the column: a slice would keep the whole range's Arrow buffers alive
        for item in pc.value_counts(scoring["rule_colour"]).to_pylist():
            self.colours[item["values"]] += item["counts"]

    def _wait(self) -> None:
        if self.pending is not None:
            self.pending.result()
            self.pending = None

    def close(self) -> None:
        try:
            self._wait()
        finally:
            self.pool.shutdown()
            try:
                self.labelled.close()
            finally:
                self.scoring.close()

    def summary(self) -> dict:
        cutoffs = [pd.Timestamp(c) for c in self.cutoffs]
        colours = pd.Series(self.colours, dtype="int64")
        return snapshot_summary(self.rows, int(self.label_sum), cutoffs, self.last, colours)


def snapshot_summary(
    n: int, label_sum: int, cutoffs: list, last: pd.Timestamp | None, colours: pd.Series
) -> dict:
    """The row counts and shares of features_report.json; `colours`: the scoring rows per
    rule colour."""
    scoring = int(colours.sum())
    shares = (colours[colours > 0] / scoring).sort_values(ascending=False, kind="stable")
    return {
        "labelled_rows": n,
        "scoring_rows": scoring,
        "cutoffs": sorted(str(c.date()) for c in cutoffs if pd.notna(c)),
        "scoring_cutoff": str(last.date()) if scoring and last is not None else None,
        "churn_rate": label_sum / n if n else None,
        "rule_colours": shares.round(4).to_dict(),
    }


def read_snapshots(
    path: str | Path, columns: list[str] | None = None, filters: list | None = None
) -> pd.DataFrame:
    """features.parquet (its `columns`, default all; the rows `filters` keeps, pyarrow's
    filter form, default all) in (cutoff, customer_id) order, whatever order the file holds.

    The models are fitted and scored in this one order, so that they do not depend on how the
    features stage lays its rows out: LightGBM's row subsampling, for one, picks rows by
    position, and the same rows in another order give another model.
    """
    keys = ["cutoff", "customer_id"]
    read = None if columns is None else [*dict.fromkeys([*keys, *columns])]
    # Arrow's buffers let go as each column converts, a block per column, and each column
    # reordered on its own: at 1M customers (4.7M rows) the peak fell from 10.5 to 5.8 GiB
    # against reading whole and sorting a copy (issue 17); the same frame, value for value
    df = pd.read_parquet(
        path,
        columns=read,
        filters=filters,
        to_pandas_kwargs={"split_blocks": True, "self_destruct": True},
    )
    order = df[keys].sort_values(keys, kind="stable").index.to_numpy()
    for i in range(df.shape[1]):
        df.isetitem(i, df.iloc[:, i].array.take(order))
    release_arrow_memory()
    return df if columns is None else df[columns]


def release_arrow_memory() -> None:
    """Hand the memory Arrow's pool keeps for reuse back to the system after a big read: the
    pandas work that follows cannot use it (at 1M customers, about 1 GiB after the snapshots)."""
    pa.default_memory_pool().release_unused()


def snapshot_differences(a: Path, b: Path, rel: float = 1e-9) -> dict[str, list]:
    """Where the snapshot files of two processed folders differ (the engines' parity): per file,
    "schema" when the Parquet schemas (with pandas' metadata) differ, the shapes when those do,
    else the columns with the number of rows beyond exact equality (keys, counts, labels,
    categories) or beyond `rel` relative difference (floats; NaN equals NaN); [] where equal."""
    out: dict[str, list] = {}
    for name in ("features.parquet", "scoring.parquet"):
        left, right = pd.read_parquet(a / name), pd.read_parquet(b / name)
        problems: list = []
        if not pq.read_schema(a / name).equals(pq.read_schema(b / name), check_metadata=True):
            problems.append("schema")
        if list(left.columns) != list(right.columns) or len(left) != len(right):
            out[name] = [*problems, ("shape", left.shape, right.shape)]
            continue
        for c in left.columns:
            x, y = left[c], right[c]
            if x.dtype.kind == "f" or str(x.dtype) == "Float64":
                u, v = x.astype("float64").to_numpy(), y.astype("float64").to_numpy()
                both = np.isnan(u) & np.isnan(v)
                close = np.abs(u - v) <= rel * np.maximum(np.abs(u), np.abs(v))
                wrong = int((~(both | close)).sum())
            else:
                same = (x == y).fillna(False).astype(bool) | (x.isna() & y.isna())
                wrong = int((~same).sum())
            if wrong:
                problems.append((c, wrong))
        out[name] = problems
    return out
