"""From probabilities to action lists: tiers, the playbook, the value arithmetic, drift, ids, and
the files the segment stage writes for marketing.

The library functions are checked on hand-made inputs. The file contract is checked on a real
run of the stages on the tiny synthetic world (generate -> validate -> features -> explain ->
segment, through the one stage entry point as DVC runs them); instead of the train stage (tuning
and MLflow take most of a minute) a small LightGBM champion is fitted here and saved the way train
saves it.
"""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction
from pathlib import Path

import joblib
import numpy as np
import openpyxl
import pandas as pd
import pytest
import yaml

from churnlight.features.params import parse_params
from churnlight.features.registry import FAMILIES, build_registry, registry_frame
from churnlight.models.artifacts import read_snapshots
from churnlight.models.calibration import Calibrator
from churnlight.models.control import CONTROL_ACTION, CONTROL_COLUMNS
from churnlight.models.segment import (
    COLUMN_DOCS,
    REASON_FEATURES,
    apply_playbook,
    build_segments,
    expected_retained_value,
    feature_drift,
    hash_ids,
    population_stability,
    risk_tiers,
    summarise,
)
from churnlight.models.train import fit_candidate, time_split
from churnlight.models.tune import CalibratedModel
from churnlight.pipelines.common import InputError, Layout, run_stage

ROOT = Path(__file__).resolve().parents[2]
PARAMS: dict = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
SEGMENT = parse_params(PARAMS).segment
TIERS = ("high", "medium", "low")
VALUE_TIERS = ("platinum", "gold", "silver", "regular")
CARE_LAYERS = ("core", "active", "dormant")
BOM = b"\xef\xbb\xbf"
CJK = re.compile(r"[\u4e00-\u9fff]")
REQUIRED_COLUMNS = [
    "customer_id",
    "churn_probability",
    "risk_tier",
    "value_tier",
    "care_layer",
    "churn_kind",
    "reason_1",
    "reason_2",
    "reason_3",
    "action",
    "owner",
    "due_within_hours",
    "expected_retained_value",
]
SECRET_ENV = PARAMS["export"]["hash_secret_env"]


# --- 4. risk tiers ------------------------------------------------------------------------------

CAPACITY = {"high_share": 0.1, "medium_share": 0.2}


def _counts(tiers: np.ndarray) -> tuple[int, int, int]:
    return tuple(int((tiers == t).sum()) for t in TIERS)


def test_capacity_policy_on_1000_rows():
    p = np.random.default_rng(0).permutation(1000) / 1000  # distinct, shuffled
    tiers = risk_tiers(p, "capacity", **CAPACITY)
    assert _counts(tiers) == (100, 200, 700)
    # the high tier holds the highest probabilities, medium the next ones
    assert p[tiers == "high"].min() > p[tiers == "medium"].max()
    assert p[tiers == "medium"].min() > p[tiers == "low"].max()


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 9, 11, 15, 99, 101, 137, 999, 1001, 20_001])
def test_capacity_policy_rounds_up(n):
    p = np.random.default_rng(n).random(n)
    high = min(n, math.ceil(Fraction(1, 10) * n))
    medium = min(n - high, math.ceil(Fraction(2, 10) * n))
    assert _counts(risk_tiers(p, "capacity", **CAPACITY)) == (high, medium, n - high - medium)


@pytest.mark.parametrize(("share", "n", "expected"), [(0.07, 100, 7), (0.14, 200, 28)])
def test_capacity_policy_is_exact_when_the_share_divides_evenly(share, n, expected):
    tiers = risk_tiers(np.linspace(0, 1, n), "capacity", **{"high_share": share, "medium_share": 0})
    assert _counts(tiers)[0] == expected


def test_capacity_policy_breaks_ties_stably():
    p = np.full(10, 0.3)
    assert list(risk_tiers(p, "capacity", **CAPACITY)) == ["high"] + ["medium"] * 2 + ["low"] * 7
    # ties across a boundary: the earlier row of equal probability goes to the higher tier
    p = np.array([0.1, 0.5, 0.9, 0.5, 0.5, 0.2, 0.5, 0.0, 0.3, 0.4])
    tiers = risk_tiers(p, "capacity", **{"high_share": 0.2, "medium_share": 0.2})
    assert list(tiers) == [
        "low",
        "high",
        "high",
        "medium",
        "medium",
        "low",
        "low",
        "low",
        "low",
        "low",
    ]
    # the same input twice gives the same answer
    assert list(risk_tiers(p, "capacity", **{"high_share": 0.2, "medium_share": 0.2})) == list(
        tiers
    )


def test_capacity_policy_with_no_rows():
    assert len(risk_tiers(np.array([]), "capacity", **CAPACITY)) == 0


def test_threshold_policy_at_the_cuts():
    params = {"high_threshold": 0.5, "medium_threshold": 0.2}
    p = np.array([0.5, np.nextafter(0.5, 0), 0.2, np.nextafter(0.2, 0), 1.0, 0.0, 0.35])
    assert list(risk_tiers(p, "threshold", **params)) == [
        "high",
        "medium",
        "medium",
        "low",
        "high",
        "low",
        "medium",
    ]


def test_threshold_policy_with_equal_cuts_has_no_medium_tier():
    params = {"high_threshold": 0.4, "medium_threshold": 0.4}
    assert list(risk_tiers(np.array([0.4, 0.39, 0.9]), "threshold", **params)) == [
        "high",
        "low",
        "high",
    ]


def test_threshold_policy_rejects_medium_above_high():
    with pytest.raises(ValueError, match="medium_threshold"):
        risk_tiers(np.array([0.3]), "threshold", **{"high_threshold": 0.2, "medium_threshold": 0.5})


def test_unknown_policy_is_rejected():
    with pytest.raises(ValueError, match="policy"):
        risk_tiers(np.array([0.3]), "quantile", **SEGMENT.tier_policy())


def test_params_policy_is_capacity_with_the_domain_shares():
    assert SEGMENT.policy == "capacity"
    assert (SEGMENT.high_share, SEGMENT.medium_share) == (0.1, 0.2)


# --- 5. the playbook, every cell ----------------------------------------------------------------


def _expected_play(risk: str, value: str, care: str) -> tuple[str, str, int, float]:
    """domain.md section 5: (words in the action, owner, hours, cost)."""
    if risk == "high":
        if value in ("platinum", "gold") or care == "core":
            return "account manager", "account_manager", 24, 150.0
        if care == "dormant":
            return "coupon", "marketing", 168, 20.0
        return "Retention pack", "customer_success", 48, 60.0
    if risk == "medium":
        return "Keep in touch", "marketing", 72, 5.0
    return "Business as usual", "none", 0, 0.0


CELLS = [(r, v, c) for r in TIERS for v in VALUE_TIERS for c in CARE_LAYERS]


@pytest.mark.parametrize(("risk", "value", "care"), CELLS)
def test_playbook_cell(risk, value, care):
    plan = apply_playbook(np.array([risk]), np.array([value]), np.array([care]), SEGMENT.playbook)
    words, owner, hours, cost = _expected_play(risk, value, care)
    row = plan.iloc[0]
    assert words in row["action"]
    assert row["owner"] == owner
    assert row["due_within_hours"] == hours
    assert row["action_cost"] == cost


def test_playbook_all_cells_at_once_keep_the_row_order():
    risk, value, care = (np.array(c) for c in zip(*CELLS, strict=True))
    plan = apply_playbook(risk, value, care, SEGMENT.playbook)
    assert list(plan.columns) == ["action", "owner", "due_within_hours", "action_cost"]
    assert len(plan) == len(CELLS)
    got = list(zip(plan["owner"], plan["due_within_hours"], plan["action_cost"], strict=True))
    assert got == [_expected_play(*c)[1:] for c in CELLS]
    assert (plan["action"].str.len() > 0).all()


def test_playbook_with_a_missing_cell_raises():
    no_low = [row for row in SEGMENT.playbook if row.risk != "low"]
    with pytest.raises(ValueError, match="low"):
        apply_playbook(
            np.array(["high", "low"]),
            np.array(["gold", "regular"]),
            np.array(["core", "active"]),
            no_low,
        )
    only_gold = [SEGMENT.playbook[0].model_copy(update={"care": ()})]  # high + platinum/gold only
    with pytest.raises(ValueError, match="playbook"):
        apply_playbook(np.array(["high"]), np.array(["silver"]), np.array(["active"]), only_gold)


# --- 6. value arithmetic, summary and drift -----------------------------------------------------


def test_expected_retained_value_by_hand():
    success = dict(SEGMENT.success_rate)
    got = expected_retained_value(
        np.array([0.5, 0.2, 0.9, 0.1, 0.4]),
        np.array([1000.0, 2000.0, np.nan, 500.0, 100.0]),
        np.array(["platinum", "gold", "silver", "unknown", "regular"]),
        success,
        np.array([150.0, 60.0, 20.0, 0.0, 5.0]),
    )
    # 0.5*1000*0.7-150, 0.2*2000*0.5-60, no value: -cost, unknown tier: no success, 0.4*100*0.2-5
    np.testing.assert_allclose(got, [200.0, 140.0, -20.0, 0.0, 3.0])


@pytest.fixture(scope="module")
def descriptions() -> pd.Series:
    reg = registry_frame(build_registry([30], dict.fromkeys(FAMILIES, True), {}))
    return reg.set_index("name")["description_en"]


def test_summarise_by_hand(descriptions):
    seg = pd.DataFrame(
        {
            "risk_tier": ["low", "high", "medium", "high", "low", "high"],
            "value_tier": ["silver", "gold", "platinum", "regular", "silver", "gold"],
            "churn_probability": [0.05, 0.8, 0.3, 0.5, 0.15, 0.6],
            "customer_value": [300.0, 1000.0, 2000.0, 100.0, 100.0, 500.0],
        },
        index=[5, 0, 3, 2, 4, 1],
    )
    reasons = pd.DataFrame(
        {
            "r1": ["", "recency_days", "complaints_open", "nps_last", "", "recency_days"],
            "r2": ["", "nps_last", "recency_days", "", "", ""],
            "r3": ["", "", "", "", "", ""],
        },
        index=seg.index,
    )
    seg["action"] = ["a", "a", "a", "skip", "a", "a"]
    out = summarise(seg, reasons, descriptions, "skip")
    assert list(out[["risk_tier", "value_tier"]].itertuples(index=False, name=None)) == [
        ("high", "gold"),
        ("high", "regular"),
        ("medium", "platinum"),
        ("low", "silver"),
    ]
    assert out["customers"].tolist() == [2, 1, 1, 2]
    np.testing.assert_allclose(out["mean_probability"], [0.7, 0.5, 0.3, 0.1])
    np.testing.assert_allclose(out["expected_churners"], [1.4, 0.5, 0.3, 0.2])
    # sum of p x value: 0.8*1000 + 0.6*500, 0.5*100, 0.3*2000, 0.05*300 + 0.15*100
    np.testing.assert_allclose(out["value_at_risk"], [1100.0, 50.0, 600.0, 30.0])
    assert out["no_contact"].tolist() == [0, 1, 0, 0]
    assert out.loc[0, "top_reasons"] == (
        f"{descriptions['recency_days']}; {descriptions['nps_last']}"
    )
    assert out.loc[1, "top_reasons"] == descriptions["nps_last"]
    assert set(out.loc[2, "top_reasons"].split("; ")) == {
        descriptions["complaints_open"],
        descriptions["recency_days"],
    }
    assert out.loc[3, "top_reasons"] == ""
    assert out["customers"].sum() == len(seg)


def _psi(expected: pd.DataFrame, actual: pd.DataFrame, bins: int = 10) -> dict[str, float]:
    out = population_stability(expected, actual, list(expected.columns), bins)
    assert list(out.columns) == ["name", "psi"]
    assert out["psi"].is_monotonic_decreasing
    return dict(zip(out["name"], out["psi"], strict=True))


def _mixed(n: int, seed: int, shift: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    num = rng.normal(1.5 if shift else 0.0, 1.0, n)
    gappy = rng.exponential(1.0, n)
    gappy[rng.random(n) < (0.5 if shift else 0.05)] = np.nan
    shares = [0.1, 0.3, 0.6] if shift else [0.6, 0.3, 0.1]
    cat = rng.choice(["basic", "standard", "premium"], n, p=shares).astype(object)
    cat[rng.random(n) < 0.05] = None
    return pd.DataFrame(
        {
            "num": num,
            "gappy": gappy,
            "cat": pd.Series(cat, dtype="str"),
            "catd": pd.Series(cat, dtype="category"),
            "const": np.ones(n),
            "count": rng.poisson(5 if shift else 1, n),
        }
    )


def test_psi_is_zero_for_identical_samples():
    df = _mixed(2000, seed=0)
    assert all(abs(v) < 1e-9 for v in _psi(df, df.copy()).values())


def test_psi_is_small_for_two_samples_of_the_same_world():
    psi = _psi(_mixed(5000, seed=0), _mixed(5000, seed=1))
    assert max(psi.values()) < 0.05, psi


def test_psi_flags_a_clear_shift():
    psi = _psi(_mixed(3000, seed=0), _mixed(3000, seed=1, shift=True))
    assert psi["const"] < 1e-9
    for name in ("num", "gappy", "cat", "catd", "count"):
        assert psi[name] > 0.2, (name, psi)
    assert psi["cat"] == pytest.approx(psi["catd"])


@pytest.mark.parametrize("dtype", ["int64", "float64", "bool"])
def test_psi_flags_a_shift_in_a_binary_feature(dtype):
    e = pd.DataFrame({"flag": (np.arange(1000) % 100 < 18).astype(dtype)})  # 18% ones
    a = pd.DataFrame({"flag": (np.arange(1000) % 100 < 60).astype(dtype)})  # 60% ones
    assert _psi(e, a)["flag"] > 0.2


def test_psi_counts_missing_values_and_new_levels():
    e = pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, 4.0] * 50, "c": pd.Series(["a", "b"] * 100, dtype="str")}
    )
    a = e.copy()
    a.loc[:99, "x"] = np.nan  # half the scoring rows lose the value
    a.loc[:99, "c"] = "z"  # a level training never saw
    psi = _psi(e, a, bins=4)
    assert np.isfinite(list(psi.values())).all()
    assert psi["x"] > 0.2
    assert psi["c"] > 0.2


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")
def test_psi_of_an_all_missing_column_is_finite():
    e = pd.DataFrame({"x": [np.nan] * 20})
    psi = _psi(e, e.copy())
    assert psi["x"] == pytest.approx(0.0, abs=1e-9)


# --- 7. pseudonymous ids ------------------------------------------------------------------------


def test_hash_ids_are_stable_keyed_and_opaque():
    ids = pd.Series([f"C{i:07d}" for i in range(200)], index=range(100, 300))
    a = hash_ids(ids, "secret-one")
    assert a.equals(hash_ids(ids.copy(), "secret-one"))
    assert a.index.equals(ids.index)
    b = hash_ids(ids, "secret-two")
    assert (a != b).all()
    assert a.is_unique
    assert a.str.fullmatch(r"[0-9a-f]{20}").all()
    for raw, hashed in zip(ids, a, strict=True):
        assert raw not in hashed
        assert raw[1:] not in hashed  # not even the digits


# --- 8. the segment stage's files ---------------------------------------------------------------


def _params() -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["base"]["log_level"] = "WARNING"
    params["generate"].update(n_customers=400, months=18, start="2025-01-01")
    params["features"]["first_cutoff"] = "2025-10-01"
    params["explain"]["global_sample"] = 200
    params["explain"]["dependence_plots"] = 1
    return params


def _fit_champion(processed: Path, models: Path, params: dict) -> None:
    """What the train stage leaves behind, without its tuning: a calibrated LightGBM."""
    df = read_snapshots(processed / "features.parquet")
    names = pd.read_csv(processed / "feature_registry.csv")["name"].tolist()
    seed = params["base"]["seed"]
    split = time_split(df, int(params["features"]["label_window_days"]), 1, seed=seed)
    lgbm = {**params["train"]["lgbm"], "n_estimators": 40, "n_jobs": 1}
    pipe = fit_candidate("lgbm", split.train, names, lgbm, seed)
    p = pipe.predict_proba(split.train[names])[:, 1]
    calibrator = Calibrator("sigmoid").fit(p, split.train["label"].to_numpy(int))
    models.mkdir(parents=True)
    joblib.dump(CalibratedModel(pipe, calibrator), models / "lgbm.joblib")
    report = {
        "champion": "lgbm",
        "models": {"lgbm": {}},
        "features": names,
        "train_cutoffs": sorted(str(c.date()) for c in split.train["cutoff"].unique()),
    }
    (models / "train_report.json").write_text(json.dumps(report), encoding="utf-8")


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("segment_stage")
    paths = Layout(root)
    params = _params()
    paths.params.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    typed = parse_params(params)
    for stage in ("generate", "validate", "features"):
        run_stage(stage, paths, typed)
    _fit_champion(paths.processed, paths.models, params)
    for stage in ("explain", "segment"):
        run_stage(stage, paths, typed)
    p = {
        name: getattr(paths, name)
        for name in ("params", "raw", "interim", "processed", "models", "explanations")
    }
    return {**p, "reports": paths.reports, "segments": paths.segments, "root": root}


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


@pytest.fixture(scope="module")
def scored(stage_run) -> pd.DataFrame:
    return _read_csv(stage_run["segments"] / "scored_customers.csv")


def test_csv_files_start_with_the_utf8_bom(stage_run):
    for name in ("scored_customers", *TIERS, "control", "summary"):
        head = (stage_run["segments"] / f"{name}.csv").read_bytes()[:3]
        assert head == BOM, f"{name}.csv has no UTF-8 BOM"


def test_scored_customers_has_the_documented_columns(stage_run, scored):
    assert set(REQUIRED_COLUMNS) <= set(scored.columns)
    assert list(scored.columns) == list(COLUMN_DOCS)
    scoring = pd.read_parquet(stage_run["processed"] / "scoring.parquet", columns=["customer_id"])
    assert len(scored) == len(scoring) > 50
    assert set(scored["customer_id"]) == set(scoring["customer_id"])
    assert set(scored["risk_tier"]) == set(TIERS)
    assert set(scored["value_tier"]) <= set(VALUE_TIERS)
    assert set(scored["care_layer"]) <= set(CARE_LAYERS)
    assert set(scored["churn_kind"]) <= {"active", "silent", "passive"}
    assert (scored["action"] != "").all()
    assert (scored["owner"] != "").all()


def test_chinese_reasons_round_trip_through_the_csv(stage_run, scored):
    parquet = pd.read_parquet(stage_run["segments"] / "scored_customers.parquet")
    assert parquet["customer_id"].tolist() == scored["customer_id"].tolist()
    for j in (1, 2, 3):
        for col in (f"reason_{j}", f"reason_{j}_zh"):
            assert parquet[col].fillna("").tolist() == scored[col].tolist(), col
    zh = scored["reason_1_zh"][scored["reason_1_zh"] != ""]
    assert len(zh) > 0
    assert zh.map(lambda s: bool(CJK.search(s))).all()


def test_tier_files_split_the_scored_list_but_the_control_group(stage_run, scored):
    files = {t: _read_csv(stage_run["segments"] / f"{t}.csv") for t in TIERS}
    control = _read_csv(stage_run["segments"] / "control.csv")
    acted = scored[scored["group"] != "control"]
    for t in TIERS:
        assert (
            files[t]["customer_id"].tolist()
            == acted.loc[acted["risk_tier"] == t, "customer_id"].tolist()
        )
        assert files[t].equals(acted[acted["risk_tier"] == t].reset_index(drop=True))
    assert set(control["customer_id"]) == set(
        scored.loc[scored["group"] == "control", "customer_id"]
    )
    assert len(control) > 0
    n = len(scored)
    held = control["risk_tier"].value_counts()
    assert len(files["high"]) + held.get("high", 0) == math.ceil(Fraction(1, 10) * n)
    assert len(files["medium"]) + held.get("medium", 0) == math.ceil(Fraction(2, 10) * n)


def test_rows_are_ranked_by_expected_retained_value_within_each_tier(scored):
    assert list(dict.fromkeys(scored["risk_tier"])) == list(TIERS)  # tiers in order
    for tier in TIERS:
        erv = scored.loc[scored["risk_tier"] == tier, "expected_retained_value"].astype(float)
        assert erv.is_monotonic_decreasing, tier


def test_reasons_only_for_tiers_someone_acts_on(scored):
    low = scored[scored["risk_tier"] == "low"]
    for j in (1, 2, 3):
        assert (low[f"reason_{j}"] == "").all()
        assert (low[f"reason_{j}_zh"] == "").all()
    assert (low["angle"] == "").all()
    acted = scored[scored["risk_tier"] != "low"]
    assert (acted["reason_1"] != "").all()
    assert (acted["reason_1_zh"] != "").all()
    # a later reason never without an earlier one
    for j in (2, 3):
        assert not ((scored[f"reason_{j}"] != "") & (scored[f"reason_{j - 1}"] == "")).any()


def test_playbook_and_value_columns_are_consistent(scored):
    for row in scored.itertuples(index=False):
        action, owner, hours, cost = _expected_play(row.risk_tier, row.value_tier, row.care_layer)
        if float(row.expected_retained_value) < 0:  # costs more than it keeps: no contact
            action, owner, hours = SEGMENT.no_contact_action, "none", 0
        elif row.group == "control":  # held out: nobody contacts them
            action, owner, hours = CONTROL_ACTION, "none", 0
        assert action in row.action
        assert (row.owner, int(row.due_within_hours), float(row.action_cost)) == (
            owner,
            hours,
            cost,
        )
    erv = expected_retained_value(
        scored["churn_probability"].astype(float).to_numpy(),
        scored["customer_value"].astype(float).to_numpy(),
        scored["value_tier"].to_numpy(),
        dict(SEGMENT.success_rate),
        scored["action_cost"].astype(float).to_numpy(),
    )
    # the file holds probabilities rounded to 4 decimals, so allow for that
    tol = 1e-4 * scored["customer_value"].astype(float).to_numpy() + 0.01
    assert (np.abs(erv - scored["expected_retained_value"].astype(float)) <= tol).all()


def test_xlsx_has_tier_summary_and_column_sheets(stage_run, scored):
    wb = openpyxl.load_workbook(stage_run["segments"] / "segments.xlsx", read_only=True)
    try:
        assert wb.sheetnames == ["high", "medium", "low", "control", "summary", "columns"]
        acted = scored[scored["group"] != "control"]
        for tier in TIERS:
            rows = list(wb[tier].values)
            assert list(rows[0]) == list(scored.columns)
            ids = {r[0] for r in rows[1:]}
            assert ids == set(acted.loc[acted["risk_tier"] == tier, "customer_id"])
        rows = list(wb["control"].values)
        assert list(rows[0]) == CONTROL_COLUMNS
        assert {r[1] for r in rows[1:]} == set(
            scored.loc[scored["group"] == "control", "customer_id"]
        )
        assert {r[4] for r in rows[1:]} == {"control"}
        cols = list(wb["columns"].values)
        assert list(cols[0]) == ["column", "meaning"]
        documented = {r[0]: r[1] for r in cols[1:]}
        for c in scored.columns:
            assert documented.get(c), f"column {c} is not documented in the columns sheet"
        summary = list(wb["summary"].values)
        assert "risk_tier" in summary[0]
    finally:
        wb.close()


def test_summary_files(stage_run, scored):
    seg_dir = stage_run["segments"]
    csv = pd.read_csv(seg_dir / "summary.csv", encoding="utf-8-sig")
    records = json.loads((seg_dir / "summary.json").read_text(encoding="utf-8"))
    assert len(records) == len(csv) > 0
    assert [r["customers"] for r in records] == csv["customers"].tolist()
    assert csv["customers"].sum() == len(scored)
    by_tier = csv.groupby("risk_tier")["customers"].sum()
    assert by_tier.to_dict() == scored["risk_tier"].value_counts().to_dict()
    assert {"value_at_risk", "expected_churners", "top_reasons"} <= set(csv.columns)


def test_drift_report(stage_run):
    drift = pd.read_csv(stage_run["reports"] / "drift.csv")
    assert {"name", "psi", "drifted"} <= set(drift.columns)
    names = json.loads((stage_run["models"] / "train_report.json").read_text())["features"]
    assert sorted(drift["name"]) == sorted(names)
    assert (drift["psi"] >= 0).all()
    threshold = SEGMENT.psi_threshold
    assert (drift["drifted"] == (drift["psi"] > threshold)).all()


def test_drift_read_in_column_chunks_is_the_whole_tables(stage_run):
    # the stage reads a few columns at a time and only the training cutoffs (issue 17): the
    # same table, rows and order, as feature_drift on the whole snapshot file
    from churnlight.pipelines.drift import window_drift

    report = json.loads((stage_run["models"] / "train_report.json").read_text())
    names, cutoffs = report["features"], report["train_cutoffs"]
    path = stage_run["processed"] / "features.parquet"
    scoring = pd.read_parquet(stage_run["processed"] / "scoring.parquet")
    bins, threshold = SEGMENT.psi_bins, SEGMENT.psi_threshold
    whole = feature_drift(pd.read_parquet(path), cutoffs, scoring, names, bins, threshold)
    got = window_drift(path, cutoffs, scoring, names, SEGMENT, chunk=7)
    pd.testing.assert_frame_equal(got, whole)
    written = pd.read_csv(stage_run["reports"] / "drift.csv")
    assert written["name"].tolist() == whole["name"].tolist()


def test_no_temporary_folders_left_behind(stage_run):
    assert [p for p in stage_run["reports"].rglob(".*")] == []


def _hashed_run(stage_run, root: Path) -> Path:
    """The segment stage with export.hash_ids on, in a project at `root` that shares the
    stage run's data; its segments folder."""
    raw = {**_params(), "export": {**PARAMS["export"], "hash_ids": True}}
    root.mkdir()
    (root / "data").symlink_to(stage_run["root"] / "data")
    run_stage("segment", Layout(root), parse_params(raw))
    return Layout(root).segments


def test_segment_stage_writes_hashed_ids(stage_run, scored, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "test-secret")
    out = _hashed_run(stage_run, tmp_path / "hashed")
    hashed = _read_csv(out / "scored_customers.csv")
    raw_ids = scored["customer_id"]
    assert sorted(hashed["customer_id"]) == sorted(hash_ids(raw_ids, "test-secret"))
    assert hashed["customer_id"].str.fullmatch(r"[0-9a-f]{20}").all()
    # nothing else changed, and no raw id is left in any file marketing receives
    assert hashed.drop(columns="customer_id").equals(scored.drop(columns="customer_id"))
    for f in out.iterdir():
        if f.suffix in (".csv", ".json"):
            text = f.read_text(encoding="utf-8-sig")
            assert not any(i in text for i in raw_ids), f.name
    assert set(pd.read_parquet(out / "scored_customers.parquet")["customer_id"]) == set(
        hashed["customer_id"]
    )
    # the control group is drawn on the raw ids: the same customers, under their pseudonyms
    control = pd.read_parquet(out / "control.parquet")["customer_id"]
    held = hashed.loc[hashed["group"] == "control", "customer_id"]
    assert len(control) > 0 and set(control) == set(held)


def test_segment_stage_without_the_secret_stops_clearly(stage_run, tmp_path, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    out = Layout(tmp_path / "hashed").segments
    with pytest.raises(InputError) as exc:
        _hashed_run(stage_run, tmp_path / "hashed")
    assert SECRET_ENV in str(exc.value)
    assert "hash_ids" in str(exc.value)
    assert not out.exists()  # nothing half-written, no raw ids exported


def _tiny_segments(value: np.ndarray | None) -> pd.DataFrame:
    n = 20
    scoring = pd.DataFrame(
        {"customer_id": [f"C{i:02d}" for i in range(n)], "rule_colour": ["green"] * n}
    )
    reasons = pd.DataFrame({"customer_id": scoring["customer_id"]})
    p = np.linspace(0.9, 0.05, n)
    tiers = np.array(["gold"] * n, dtype=object)
    return build_segments(scoring, p, reasons, SEGMENT, value, tiers, campaign="c", seed=0)


def test_negative_expected_value_is_no_contact_and_sorts_after_every_positive_row():
    """Low-value customers at high risk: the account manager's call costs more than the value
    it is expected to keep, so they are not contacted and come after every row worth acting on."""
    value = np.r_[np.full(6, 1.0), np.full(14, 5000.0)]  # the high and medium tiers: worth little
    seg = _tiny_segments(value)
    skip = seg["action"] == SEGMENT.no_contact_action
    assert skip.sum() == 6
    assert (seg.loc[skip, "expected_retained_value"] < 0).all()
    assert (seg.loc[~skip, "expected_retained_value"] >= 0).all()
    assert skip.to_numpy().tolist() == [False] * 14 + [True] * 6  # after all positive rows
    assert (seg.loc[skip, "owner"] == "none").all()
    assert (seg.loc[skip, "due_within_hours"] == 0).all()
    assert (seg.loc[skip, "action_cost"] > 0).all()  # the cost that made it not worth it
    summary = summarise(seg, seg[REASON_FEATURES].fillna(""), pd.Series(dtype=str), "x")
    assert summary["no_contact"].sum() == 0  # counted by the action it is given


def test_without_any_customer_value_nothing_is_ranked_as_a_loss():
    seg = _tiny_segments(None)
    assert seg["customer_value"].isna().all()
    assert seg["expected_retained_value"].isna().all()
    assert not (seg["action"] == SEGMENT.no_contact_action).any()


def test_the_lake_copy_is_partitioned_by_folder_and_refuses_unknown_columns(tmp_path):
    """write_partitioned: Hive folders per value, every row back (Chinese text intact), the
    partition column only in the folder names; a column the table lacks is named, and nothing
    is written."""
    from churnlight.models.export import write_partitioned

    seg = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "risk_tier": ["high", "low", "high"],
            "reason_1_zh": ["最近投诉未解决", "无", "价格上涨"],
        }
    )
    with pytest.raises(ValueError, match=r"\['tier'\]"):
        write_partitioned(seg, tmp_path / "bad", ["tier"])
    assert not (tmp_path / "bad").exists()
    lake = tmp_path / "lake"
    write_partitioned(seg, lake, ["risk_tier"])
    files = sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*"))
    assert files == [
        "risk_tier=high",
        "risk_tier=high/part-0.parquet",
        "risk_tier=low",
        "risk_tier=low/part-0.parquet",
    ]
    high = pd.read_parquet(lake / "risk_tier=high" / "part-0.parquet")
    assert list(high.columns) == ["customer_id", "reason_1_zh"]
    assert high["reason_1_zh"].tolist() == ["最近投诉未解决", "价格上涨"]
    back = pd.read_parquet(lake).astype({"risk_tier": str})
    back = back[list(seg.columns)].sort_values("customer_id", ignore_index=True)
    pd.testing.assert_frame_equal(back, seg, check_dtype=False)


def test_a_missing_partition_value_is_hives_null_folder(tmp_path):
    """A row without a value in a partition column (a flat table's care layer, say) lands in
    Hive's NULL folder, which a lake engine (here DuckDB) reads back as NULL; a column named
    twice is one level."""
    import duckdb

    from churnlight.models.export import write_partitioned

    seg = pd.DataFrame({"customer_id": ["a", "b"], "care_layer": ["core", None]})
    write_partitioned(seg, tmp_path / "lake", ["care_layer", "care_layer"])
    folders = sorted(p.name for p in (tmp_path / "lake").iterdir())
    assert folders == ["care_layer=__HIVE_DEFAULT_PARTITION__", "care_layer=core"]
    files = sorted(str(p) for p in (tmp_path / "lake").rglob("*.parquet"))
    sql = f"SELECT customer_id, care_layer FROM read_parquet({files}, hive_partitioning = true)"
    assert sorted(duckdb.sql(sql).fetchall(), key=lambda r: r[0]) == [("a", "core"), ("b", None)]
