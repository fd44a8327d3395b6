"""The feature registry against the features stage's real output.

The stage helper `churnlight.pipelines.features.run` is called on Parquet files written from a
small seeded synthetic world (validated by the data contract, which also writes the
`contract_report.json` the stage reads).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from churnlight.features.contract import validate_tables
from churnlight.features.params import parse_params
from churnlight.features.registry import (
    FAMILIES,
    FAMILY_NAMES,
    PROFILE_PREFIX,
    build_registry,
    family_name,
    profile_spec,
    registry_frame,
)
from churnlight.features.synthetic import WorldConfig, generate_world
from churnlight.pipelines import features as stage
from churnlight.pipelines.common import Layout

from .helpers import PARAMS

WORLD = WorldConfig.from_params(PARAMS["generate"], n_customers=150, months=18, start="2025-01-01")
REGISTRY_COLUMNS = ["name", "family", "unit", "description_en", "description_zh"]
UNITS = {
    "count",
    "days",
    "ratio",
    "share",
    "currency",
    "score",
    "flag",
    "category",
    "months",
    "number",
}
CJK = re.compile(r"[\u4e00-\u9fff]")
TRANSACTION_FEATURES = {
    *(f"{k}_{w}d" for k in ("purchases", "spend") for w in (30, 90, 180, 365)),
    "recency_days",
    "frequency_per_year",
    "monetary_per_year",
    "months_without_purchase",
    "mean_gap_days",
    "gap_ratio",
    "spend_90d_vs_baseline",
    "promo_share_365d",
    "r_score",
    "f_score",
    "m_score",
    "rfm_sum",
    "value_tier",
}
ACTIVITY_FEATURES = {
    "login_30d",
    "other_365d",
    "activity_recency_days",
    "activity_30d_vs_baseline",
    "reply_rate_90d",
    "reply_rate_before",
    "reply_rate_change",
    "service_overdue_days",
}

# the contract's settings from params.yaml
CONTRACT = {
    "label_column": PARAMS["data"]["label_column"],
    "max_examples": PARAMS["validate"]["max_examples"],
    "score_ranges": {
        "nps": tuple(PARAMS["validate"]["nps_range"]),
        "csat": tuple(PARAMS["validate"]["csat_range"]),
    },
}


@pytest.fixture(scope="module")
def world_tables() -> dict[str, pd.DataFrame]:
    return generate_world(WORLD, seed=3).raw_tables()


@pytest.fixture(scope="module")
def run_stage(tmp_path_factory, world_tables):
    """run_stage(drop=(...), customers=fn, churn=...) -> (processed folder, summary), cached."""
    cache: dict = {}

    def _run(drop=(), customers=None, churn="cancellation") -> tuple[Path, dict]:
        key = (drop, customers, churn)
        if key not in cache:
            params = copy.deepcopy(PARAMS)
            # 5 cutoffs: 2026-03-01 ... 2026-07-01 (the scoring snapshot)
            params["features"].update(first_cutoff="2026-03-01", churn_definition=churn)
            root = tmp_path_factory.mktemp("stage")
            tables = {k: v.copy() for k, v in world_tables.items() if k not in drop}
            if customers is not None:
                tables["customers"] = customers(tables["customers"])
            data = validate_tables(tables, as_of=str(WORLD.as_of.date()), **CONTRACT)
            interim = root / "data" / "interim"
            interim.mkdir(parents=True)
            for name, df in data.tables.items():
                df.to_parquet(interim / f"{name}.parquet", index=False)
            (interim / "contract_report.json").write_text(json.dumps(data.report), "utf-8")
            summary = stage.run(Layout(root), parse_params(params))
            cache[key] = (root / "data" / "processed", summary)
        return cache[key]

    return _run


def outputs(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    registry = pd.read_csv(folder / "feature_registry.csv", dtype=str, keep_default_na=False)
    return registry, pd.read_parquet(folder / "features.parquet")


def test_registry_csv_has_exactly_the_documented_columns(run_stage):
    registry, _ = outputs(run_stage()[0])
    assert list(registry.columns) == REGISTRY_COLUMNS


def test_every_registered_feature_is_in_the_output_with_a_dtype_fitting_its_unit(run_stage):
    folder, summary = run_stage()
    registry, feats = outputs(folder)
    assert len(feats) > 0 and summary["n_features"] == len(registry)
    missing = set(registry["name"]) - set(feats.columns)
    assert not missing
    bad = []
    for name, unit in zip(registry["name"], registry["unit"], strict=True):
        s = feats[name]
        if unit == "category":
            ok = pd.api.types.is_string_dtype(s) and not pd.api.types.is_numeric_dtype(s)
        elif unit == "flag":
            ok = pd.api.types.is_integer_dtype(s) and set(s.dropna().unique()) <= {0, 1}
        else:
            ok = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        if not ok:
            bad.append((name, unit, str(s.dtype)))
    assert bad == []
    assert set(feats["value_tier"]) <= {"platinum", "gold", "silver", "regular"}
    assert set(feats["care_layer"]) <= {"core", "active", "dormant"}
    # the default world switches every family on, profile columns included
    assert set(registry["family"]) == set(FAMILIES)


def test_families_units_names_and_descriptions(run_stage):
    registry, _ = outputs(run_stage()[0])
    assert set(registry["family"]) <= set(FAMILIES)
    assert set(registry["unit"]) <= UNITS
    assert registry["name"].is_unique
    assert (registry["description_en"].str.strip() != "").all()
    assert (registry["description_zh"].str.strip() != "").all()
    assert registry["description_en"].str.contains("[A-Za-z]").all()
    assert registry["description_zh"].map(lambda t: bool(CJK.search(t))).all()


def test_the_full_static_registry_is_consistent():
    # every feature any run can register, independent of the data
    specs = build_registry(
        [30, 90, 180, 365],
        dict.fromkeys(FAMILIES, True),
        {"plan": False, "age": True},
    )
    frame = registry_frame(specs)
    assert list(frame.columns) == REGISTRY_COLUMNS
    assert frame["name"].is_unique
    assert set(frame["family"]) == set(FAMILIES)
    assert set(frame["unit"]) <= UNITS
    assert frame[frame["name"] == "plan"]["unit"].tolist() == ["category"]
    assert frame[frame["name"] == "age"]["unit"].tolist() == ["number"]


@pytest.mark.parametrize(
    ("drop", "gone", "family_off"),
    [
        (("transactions",), TRANSACTION_FEATURES, None),
        (("activity",), ACTIVITY_FEATURES, None),
        (
            ("feedback",),
            {"nps_last", "csat_last", "complaints_open", "vague_replies_90d"},
            "attitude",
        ),
        (("market",), {"industry_index_change_6m", "competitor_launch_90d"}, "external"),
    ],
)
def test_a_missing_table_drops_its_features(run_stage, drop, gone, family_off):
    folder, summary = run_stage(drop)
    registry, feats = outputs(folder)
    names = set(registry["name"])
    assert not gone & names
    assert not gone & set(feats.columns)
    # whatever is still registered is still computed
    assert names <= set(feats.columns)
    if family_off:
        assert family_off not in set(registry["family"])
        assert summary["families"][family_off] is False
    # behaviour stays on with one of its two tables; the care layer needs either of them
    assert "care_layer" in names and "tenure_days" in names


def test_without_transactions_the_activity_features_remain(run_stage):
    registry, _ = outputs(run_stage(("transactions",))[0])
    assert set(registry["name"]) >= ACTIVITY_FEATURES


def _no_geo(customers: pd.DataFrame) -> pd.DataFrame:
    return customers.drop(columns=["region", "industry"])


@pytest.mark.parametrize("case", ["customers_without_region_industry", "no_customers_table"])
def test_market_without_customer_geography_does_not_crash(run_stage, case):
    if case == "customers_without_region_industry":
        folder, _ = run_stage(customers=_no_geo)
    else:  # customers derived from the events: no cancel_date, so churn by inactivity
        folder, _ = run_stage(("customers",), churn="inactivity")
    registry, feats = outputs(folder)
    assert set(registry["name"]) <= set(feats.columns)


def test_profile_attributes_get_chinese_words_when_known():
    """Marketing reads the Chinese files: a known attribute is named in Chinese, an unknown one
    keeps the user's own column name rather than a guess."""
    assert profile_spec("customer_type", False).description_zh == "客户属性：客户类型"
    assert profile_spec("PaymentMethod", False).description_zh == "客户属性：付款方式"
    assert profile_spec("loyalty_band", True).description_zh == "客户属性：loyalty band"


@pytest.mark.parametrize(
    ("column", "zh"),
    [
        ("Partner", "是否有伴侣"),
        ("Dependents", "是否有家属"),
        ("SeniorCitizen", "是否老年用户"),
        ("PaperlessBilling", "是否电子账单"),
        ("tenure", "在网时长（月）"),
    ],
)
def test_yes_no_attributes_are_named_as_questions_and_tenure_has_its_unit(column, zh):
    """ "有伴侣：否" contradicts itself; "是否有伴侣：否" does not. Telecom tenure is in months."""
    spec = profile_spec(column, column in ("SeniorCitizen", "tenure"))
    assert spec.description_zh == PROFILE_PREFIX["zh"] + zh
    assert spec.description_en.startswith(PROFILE_PREFIX["en"])


def test_one_table_names_the_families_in_both_languages():
    for lang in ("en", "zh"):
        assert set(FAMILY_NAMES[lang]) == set(FAMILIES)
    assert FAMILY_NAMES["en"] == {f: f for f in FAMILIES}
    assert all(CJK.search(w) for w in FAMILY_NAMES["zh"].values())
    assert len(set(FAMILY_NAMES["zh"].values())) == len(FAMILIES)
    assert family_name("external", "zh") == "外部风险"
    assert family_name("external", "en") == "external"
    assert family_name("unheard_of", "zh") == "unheard_of"
