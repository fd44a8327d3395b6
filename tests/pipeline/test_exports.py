"""Exports as they come (tests/exports.py: an online shop's invoice lines, a Telco-style customer
table, a Chinese CRM export in GB18030): `churnlight inspect` guesses the mapping, and the
mapping file it writes, unedited, makes validate pass and the whole pipeline run through
`data.source` + `data.mapping`, as `dvc exp run -S ...` would. A mapping that does not fit
fails naming the mapping file, the table and the column. The Telco run also records every
warning and log record: MLflow's pickle notice (one per saved model) must be gone."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml

from churnlight.models.tracking import PICKLE_NOTICE
from churnlight.pipelines.common import InputError, Layout, load_params
from churnlight.pipelines.inspect import inspect_export
from churnlight.pipelines.scoring import score_folder
from churnlight.pipelines.validate import run as validate_run
from tests.exports import SHOP_END, crm_gb18030, online_retail, telco

STAGES = ("validate", "features", "train", "evaluate", "campaigns", "explain", "segment", "report")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _run(root: Path, source: Path, params: dict, run_stages, stages=STAGES) -> dict:
    """Inspect `source`, then run the stages with the mapping it wrote, untouched."""
    guesses, mapping = inspect_export(source, None, "auto", "churn", show=False)
    text = mapping.read_text(encoding="utf-8")
    params["data"].update(source=str(source), mapping=str(mapping))
    paths = run_stages(root, params, stages)
    assert mapping.read_text(encoding="utf-8") == text  # unedited
    return {**paths, "root": root, "guesses": guesses, "mapping": mapping}


def _report(run: dict) -> dict:
    return json.loads((run["interim"] / "contract_report.json").read_text(encoding="utf-8"))


def _ran_to_the_end(run: dict) -> None:
    scored = pd.read_parquet(run["segments"] / "scored_customers.parquet")
    assert len(scored) > 0 and scored["churn_probability"].between(0, 1).all()
    assert (run["reports"] / "model_card.md").is_file()
    metrics = json.loads((run["reports"] / "metrics.json").read_text())
    assert metrics["champion"] in ("logreg", "tree", "lgbm")


# --- an online shop's invoice lines ------------------------------------------------------------


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory, make_pipeline_params, run_stages) -> dict:
    root = tmp_path_factory.mktemp("shop")
    source = online_retail(root / "export")
    params = make_pipeline_params()
    params["data"]["as_of"] = str(SHOP_END.date())
    params["features"].update(churn_definition="inactivity", first_cutoff="2024-01-01")
    return _run(root, source, params, run_stages)


def test_shop_mapping_derives_the_amount_and_leaves_returns_out(shop_run):
    (guess,) = shop_run["guesses"]
    assert (guess.kind, guess.table) == ("event", "transactions")
    spec = yaml.safe_load(shop_run["mapping"].read_text(encoding="utf-8"))["tables"]
    assert spec["transactions"]["columns"] == {
        "customer_id": "CustomerID",
        "ts": "InvoiceDate",
        "amount": {"multiply": ["Quantity", "UnitPrice"]},
    }
    assert spec["transactions"]["drop_negative"] == ["amount"]
    assert spec["transactions"]["drop_missing"] == ["customer_id"]
    source = pd.read_csv(shop_run["root"] / "export" / "invoices.csv", dtype=str)
    left_out = _report(shop_run)["mapping"]["tables"]["transactions"]["rows_left_out"]
    assert left_out["missing customer_id"] == source["CustomerID"].isna().sum() > 0
    kept = source.dropna(subset=["CustomerID"])
    assert left_out["negative amount"] == (kept["Quantity"].astype(int) < 0).sum() > 0
    tx = pd.read_parquet(shop_run["interim"] / "transactions.parquet")
    assert len(tx) == len(kept) - left_out["negative amount"]
    line = kept.iloc[0]
    assert tx["amount"].iloc[0] == pytest.approx(
        int(line["Quantity"]) * float(line["UnitPrice"]), abs=1e-6
    )
    assert list(tx.columns) == ["customer_id", "ts", "amount"]


def test_shop_runs_end_to_end(shop_run):
    assert _report(shop_run)["mode"] == "events"
    _ran_to_the_end(shop_run)


def test_score_reads_a_new_export_through_the_same_mapping(shop_run, tmp_path):
    """`churnlight score --mapping`: the weekly export in the shop's own format, scored with the
    champion of the mapped run, gives the segment stage's table on the same data."""
    out = tmp_path / "out"
    typed = load_params(shop_run["params"])
    source, as_of = shop_run["root"] / "export", str(SHOP_END.date())
    score_folder(source, out, typed, str(shop_run["models"]), as_of, tmp_path, shop_run["mapping"])
    expected = pd.read_parquet(shop_run["segments"] / "scored_customers.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(out / "scored_customers.parquet"), expected)


# --- a telecom customer table ------------------------------------------------------------------


@pytest.fixture(scope="module")
def telco_run(tmp_path_factory, make_pipeline_params, run_stages) -> dict:
    root = tmp_path_factory.mktemp("telco")
    source = telco(root / "export")
    params = make_pipeline_params()
    import mlflow.sklearn  # noqa: F401  (its import configures its loggers, dropping handlers)

    handler, mlflow_log = _Records(), logging.getLogger("mlflow")
    level = mlflow_log.level
    logging.getLogger().addHandler(handler)
    mlflow_log.addHandler(handler)  # MLflow's logger does not propagate to the root
    mlflow_log.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = _run(root, source, params, run_stages)
        logging.getLogger("mlflow.sklearn").warning("probe")  # the recorder hears MLflow
    finally:
        logging.getLogger().removeHandler(handler)
        mlflow_log.removeHandler(handler)
        mlflow_log.setLevel(level)
    return {**run, "records": handler.records, "warnings": caught}


def test_telco_mapping_reads_the_label_and_blank_charges(telco_run):
    spec = yaml.safe_load(telco_run["mapping"].read_text(encoding="utf-8"))["tables"]
    customers = spec["customers"]
    assert customers["columns"]["churn"] == "Churn"
    assert customers["values"]["churn"] == {"No": 0, "Yes": 1}
    assert customers["types"]["total_charges"] == "number"
    assert customers["columns"]["senior_citizen"] == "SeniorCitizen"  # a 0/1 flag, no label


def test_telco_runs_end_to_end_in_flat_mode(telco_run):
    report = _report(telco_run)
    assert report["mode"] == "flat"
    source = pd.read_csv(next((telco_run["root"] / "export").glob("*.csv")), dtype=str)
    feats = pd.read_parquet(telco_run["processed"] / "features.parquet")
    assert int(feats["label"].sum()) == (source["Churn"] == "Yes").sum()
    # blank TotalCharges are missing numbers, not a category
    reg = pd.read_csv(telco_run["processed"] / "feature_registry.csv").set_index("name")
    assert reg.loc["total_charges", "unit"] == "number"
    assert feats["total_charges"].isna().sum() == (source["TotalCharges"].str.strip() == "").sum()
    _ran_to_the_end(telco_run)


def test_no_pickle_notice_when_models_are_saved(telco_run):
    """MLflow says its pickle notice on every model saved; the README says it once."""
    saved = json.loads((telco_run["reports"] / "metrics.json").read_text())
    assert saved["champion"]  # models were trained and logged
    logged = [r.getMessage() for r in telco_run["records"] if r.name.startswith("mlflow")]
    assert "probe" in logged, "the recorder does not hear MLflow's logger"
    assert not [m for m in logged if PICKLE_NOTICE in m]


def test_only_the_pickle_notice_is_dropped():
    from churnlight.models.tracking import _without_pickle_notice

    handler, logger = _Records(), logging.getLogger("mlflow.sklearn")
    logger.addHandler(handler)
    try:
        with _without_pickle_notice():
            logger.warning(PICKLE_NOTICE + " requires exercising caution ...")
            logger.warning("Model logged without a signature")
        logger.warning(PICKLE_NOTICE + " (outside: not ours to drop)")
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in handler.records] == [
        "Model logged without a signature",
        PICKLE_NOTICE + " (outside: not ours to drop)",
    ]


# hidden by Python's default filters outside __main__: a `churnlight stage` run never shows them
HIDDEN = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def test_no_warning_the_user_cannot_act_on(telco_run):
    """Every warning a `dvc repro` would print (recorded with the filter at "always")."""
    shown = [
        f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
        for w in telco_run["warnings"]
        if not issubclass(w.category, HIDDEN)
    ]
    assert not shown


VALIDATE_ONE = """
import pandas as pd
from churnlight.features.contract import validate_tables
tx = pd.DataFrame({"customer_id": ["a"], "ts": ["2025-01-01"], "amount": ["1.5"]})
validate_tables({"transactions": tx}, label_column="churn", max_examples=1, score_ranges={})
"""


def test_pandera_does_not_warn_about_pyspark():
    """pandera imports pyspark.pandas when pyspark is installed (on import and on the first
    validation), which then warns about pandas 3 on every run: a fresh process shows it."""
    out = subprocess.run(
        [sys.executable, "-W", "always", "-c", VALIDATE_ONE],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "PySpark does not yet fully support" not in out.stderr


# --- a Chinese CRM export in GB18030 -----------------------------------------------------------


@pytest.fixture(scope="module")
def crm_run(tmp_path_factory, make_pipeline_params, run_stages) -> dict:
    root = tmp_path_factory.mktemp("crm")
    source = crm_gb18030(root / "export")
    params = make_pipeline_params()
    params["features"]["first_cutoff"] = "2025-07-01"
    return _run(root, source, params, run_stages)


def test_crm_mapping_recognises_chinese_names(crm_run):
    tables = {g.file: g.table for g in crm_run["guesses"]}
    assert tables == {"客户.csv": "customers", "订单.csv": "transactions", "回访.csv": "feedback"}
    text = crm_run["mapping"].read_text(encoding="utf-8")
    spec = yaml.safe_load(text)["tables"]
    assert spec["transactions"]["columns"] == {
        "customer_id": "客户编号",
        "ts": "交易时间",
        "amount": "金额",
    }
    assert spec["customers"]["columns"]["cancel_date"] == "注销日期"
    assert spec["feedback"]["columns"]["kind"] == {"value": "csat"}
    # 是否流失 is recognised as the label, and left out beside event tables (it would leak)
    assert "是否流失" not in spec["customers"]["columns"].values()
    assert "# 是否流失: a churn label" in text


def test_crm_runs_end_to_end(crm_run):
    report = _report(crm_run)
    assert report["families"]["attitude"] is True
    assert report["rows"]["customers"] == 300
    customers = pd.read_parquet(crm_run["interim"] / "customers.parquet")
    assert customers["cancel_date"].notna().sum() > 0
    assert {"gender", "region", "industry"} <= set(customers.columns)
    _ran_to_the_end(crm_run)


# --- a mapping that does not fit ---------------------------------------------------------------


def _validate_with(tmp_path: Path, make_pipeline_params, edit) -> None:
    source = online_retail(tmp_path / "export", n=60)
    _, mapping = inspect_export(source, None, "auto", "churn", show=False)
    spec = yaml.safe_load(mapping.read_text(encoding="utf-8"))
    target = edit(spec, source)
    mapping.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    params = make_pipeline_params()
    params["data"].update(source=str(source), mapping=str(target or mapping))
    paths = Layout(tmp_path)
    paths.params.write_text(yaml.safe_dump(params), encoding="utf-8")
    validate_run(paths, load_params(paths.params))


def test_a_missing_source_column_is_named(tmp_path, make_pipeline_params):
    def edit(spec, _):
        spec["tables"]["transactions"]["columns"]["amount"] = {"multiply": ["Qty", "UnitPrice"]}

    with pytest.raises(InputError) as err:
        _validate_with(tmp_path, make_pipeline_params, edit)
    msg = str(err.value)
    assert "mapping.yaml" in msg and "table transactions (file invoices.csv)" in msg
    assert "column Qty: not in the file" in msg and "Quantity" in msg
    assert not (tmp_path / "data" / "interim").exists()


def test_a_value_that_is_no_number_is_named_with_its_rows(tmp_path, make_pipeline_params):
    def edit(spec, source):
        df = pd.read_csv(source / "invoices.csv", dtype=str, keep_default_na=False)
        df.loc[3, "UnitPrice"] = "free"
        df.to_csv(source / "invoices.csv", index=False)

    with pytest.raises(InputError) as err:
        _validate_with(tmp_path, make_pipeline_params, edit)
    msg = str(err.value)
    assert "table transactions (file invoices.csv), column UnitPrice" in msg
    assert "1 value(s) not a number" in msg and "free" in msg


def test_an_unknown_table_or_type_is_named(tmp_path, make_pipeline_params):
    def edit(spec, _):
        spec["tables"]["transactions"]["types"]["ts"] = "datetime"
        spec["tables"]["orders"] = spec["tables"]["transactions"]

    with pytest.raises(InputError) as err:
        _validate_with(tmp_path, make_pipeline_params, edit)
    msg = str(err.value)
    assert "table orders: not a contract table" in msg
    assert "table transactions, column ts: type 'datetime' unknown" in msg


def test_a_mapping_outside_the_source_folder_is_refused(tmp_path, make_pipeline_params):
    """dvc tracks data.source: a mapping elsewhere could be edited without a re-run."""

    def edit(spec, source):
        outside = source.parent / "elsewhere.yaml"
        outside.write_text(yaml.safe_dump(spec), encoding="utf-8")
        return outside

    with pytest.raises(InputError, match=r"outside data\.source"):
        _validate_with(tmp_path, make_pipeline_params, edit)
