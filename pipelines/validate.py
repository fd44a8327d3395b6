"""Stage `validate`: check a raw folder against the data contract, write typed Parquet.

On any violation it logs every problem (table, column, count, example rows), exits non-zero
and writes nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from churnlight.features.contract import ContractError, ValidatedData, validate_tables
from churnlight.pipelines.common import (
    atomic_dir,
    load_params,
    read_raw_folder,
    setup_logging,
    write_json,
)

log = logging.getLogger("churnlight.validate")


def resolve_source(data_params: dict) -> Path:
    return Path(str(data_params.get("source", "data/raw")))


def resolve_as_of(data_params: dict, raw: Path) -> str | None:
    """The user's stated end date, or for the synthetic world the one it wrote beside the truth."""
    if data_params.get("as_of"):
        return str(data_params["as_of"])
    stamp = raw / "_truth" / "as_of.txt"
    return stamp.read_text().strip() if stamp.exists() else None


def run(
    raw: Path, out: Path, as_of: str | None, label_column: str = "churn", max_examples: int = 5
) -> ValidatedData:
    tables = read_raw_folder(raw)
    data = validate_tables(
        tables, as_of=as_of, label_column=label_column, max_examples=max_examples
    )
    with atomic_dir(out) as tmp:
        for name, df in data.tables.items():
            df.to_parquet(tmp / f"{name}.parquet", index=False)
        write_json(data.report, tmp / "contract_report.json")
    fams = data.report["families"]
    off = [f for f, on in fams.items() if not on]
    log.info("valid: %s", ", ".join(f"{k}={v:,}" for k, v in data.report["rows"].items()))
    if off:
        log.warning("feature families switched off for lack of data: %s", ", ".join(off))
    return data


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--raw", default=None, help="raw folder (default: from data.source)")
    ap.add_argument("--out", default="data/interim")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    setup_logging(params["base"].get("log_level", "INFO"))
    raw = Path(args.raw) if args.raw else resolve_source(params["data"])
    try:
        run(
            raw,
            Path(args.out),
            resolve_as_of(params["data"], raw),
            label_column=params["data"].get("label_column", "churn"),
            max_examples=params["validate"]["max_examples"],
        )
    except (ContractError, FileNotFoundError, ValueError) as err:
        log.error("%s", err)
        sys.exit(2)


if __name__ == "__main__":
    main()
