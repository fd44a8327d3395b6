"""From probabilities to action lists: risk tiers, the likely kind of churn, the playbook,
expected retained value, the summary marketing reads first, drift, pseudonymous ids.

`segment_customers` puts them together into the table marketing works from (one row per
customer, the columns in `COLUMN_DOCS`) and its summary; `models.export` writes them out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from churnlight.features.params import PlaybookRow, SegmentParams
from churnlight.models.control import CONTROL, hold_out

TIERS = ("high", "medium", "low")
# the features behind the three reasons: for the summary, never exported
REASON_FEATURES = [f"_reason_{j}_feature" for j in (1, 2, 3)]


def share_count(share: float, n: int) -> int:
    """ceil(share x n) without float noise (0.07 x 100 is 7, not 8)."""
    return int(np.ceil(round(share * n, 9)))


def risk_tiers(
    p: np.ndarray,
    policy: str,
    *,
    high_share: float | None = None,
    medium_share: float | None = None,
    high_threshold: float | None = None,
    medium_threshold: float | None = None,
) -> np.ndarray:
    """high/medium/low by capacity (top shares of the ranking) or by probability thresholds;
    the policy's own two numbers are required (`SegmentParams.tier_policy()` gives all four)."""
    p = np.asarray(p, dtype=float)
    if policy == "capacity":
        if high_share is None or medium_share is None:
            raise ValueError("the capacity policy needs high_share and medium_share")
        order = np.argsort(-p, kind="stable")
        rank = np.empty(len(p), dtype=np.int64)
        rank[order] = np.arange(len(p))
        n_high = share_count(float(high_share), len(p))
        n_med = share_count(float(medium_share), len(p))
        return np.where(rank < n_high, "high", np.where(rank < n_high + n_med, "medium", "low"))
    if policy == "threshold":
        if high_threshold is None or medium_threshold is None:
            raise ValueError("the threshold policy needs high_threshold and medium_threshold")
        hi, med = float(high_threshold), float(medium_threshold)
        if med > hi:
            raise ValueError("segment.medium_threshold must not exceed segment.high_threshold")
        return np.where(p >= hi, "high", np.where(p >= med, "medium", "low"))
    raise ValueError(f"unknown segment.policy {policy!r}: use 'capacity' or 'threshold'")


def churn_kind(reason_families: pd.DataFrame, complaints_open: pd.Series | None) -> np.ndarray:
    """Likely kind of churn (domain.md section 4) from the families of the top reasons:
    attitude or external reasons point to an active decision; behaviour alone with no open
    complaint to silent fading; profile alone to circumstances (passive)."""
    fams = reason_families.fillna("").to_numpy(dtype=object)
    has = {f: (fams == f).any(axis=1) for f in ("attitude", "external", "behaviour", "profile")}
    quiet = (
        np.ones(len(fams), dtype=bool)
        if complaints_open is None
        else (complaints_open.fillna(0).to_numpy() == 0)
    )
    return np.select(
        [has["attitude"] | has["external"], has["behaviour"] & quiet, has["behaviour"]],
        ["active", "silent", "active"],
        "passive",
    )


def apply_playbook(
    risk: np.ndarray, value: np.ndarray, care: np.ndarray, playbook: Sequence[PlaybookRow]
) -> pd.DataFrame:
    """First matching playbook row per customer: action, owner, deadline in hours and cost."""
    n = len(risk)
    action = np.full(n, "", dtype=object)
    owner = np.full(n, "", dtype=object)
    hours = np.zeros(n, dtype=np.int64)
    cost = np.zeros(n, dtype=float)
    done = np.zeros(n, dtype=bool)
    for row in playbook:
        m = ~done & (risk == row.risk)
        vals, cares = list(row.value), list(row.care)
        if vals or cares:
            m &= np.isin(value, vals) | np.isin(care, cares)
        action[m], owner[m], hours[m] = row.action, row.owner, row.due_within_hours
        cost[m] = row.cost
        done |= m
    if not done.all():
        missing = sorted(
            {(r, v, c) for r, v, c, d in zip(risk, value, care, done, strict=True) if not d}
        )
        raise ValueError(f"segment.playbook has no row for (risk, value, care) = {missing[:5]}")
    return pd.DataFrame(
        {"action": action, "owner": owner, "due_within_hours": hours, "action_cost": cost}
    )


def expected_retained_value(
    p: np.ndarray, value: np.ndarray, value_tier: np.ndarray, success: dict, cost: np.ndarray
) -> np.ndarray:
    """p(churn) x customer value x the action's success rate - the action's cost."""
    rate = pd.Series(value_tier).map(success).fillna(0.0).to_numpy(dtype=float)
    return np.asarray(p) * np.nan_to_num(np.asarray(value, dtype=float)) * rate - cost


def summarise(
    seg: pd.DataFrame, reason_features: pd.DataFrame, descriptions: pd.Series, no_contact: str
) -> pd.DataFrame:
    """Per risk tier x value tier: count, mean probability, expected churners, value at risk,
    how many are not worth contacting (action `no_contact`), how many are held out as the
    control group (`group`, when the table has it) and the most common reasons (named by
    their description, counted by feature)."""
    rows = []
    for (risk, tier), g in seg.groupby(["risk_tier", "value_tier"], sort=False):
        feats = reason_features.loc[g.index].stack()
        top = feats[feats.astype(bool)].value_counts().head(3).index
        rows.append(
            {
                "risk_tier": risk,
                "value_tier": tier,
                "customers": len(g),
                "mean_probability": round(float(g["churn_probability"].mean()), 4),
                "expected_churners": round(float(g["churn_probability"].sum()), 1),
                "value_at_risk": round(
                    float((g["churn_probability"] * g["customer_value"]).sum()), 2
                ),
                "no_contact": int(g["action"].eq(no_contact).sum()),
                "control": int(g["group"].eq(CONTROL).sum()) if "group" in g else 0,
                "top_reasons": "; ".join(descriptions.get(f, f) for f in top),
            }
        )
    order = {"high": 0, "medium": 1, "low": 2, "platinum": 0, "gold": 1, "silver": 2, "regular": 3}
    out = pd.DataFrame(rows)
    return out.sort_values(["risk_tier", "value_tier"], key=lambda s: s.map(order)).reset_index(
        drop=True
    )


def population_stability(
    expected: pd.DataFrame, actual: pd.DataFrame, columns: list[str], bins: int
) -> pd.DataFrame:
    """Population stability index of each feature, training window against scoring snapshot.

    Numbers are cut at the training quantiles (missing values get a bin of their own);
    categories are compared level by level."""
    eps = 1e-4
    rows = []
    for c in columns:
        e, a = expected[c], actual[c]
        if pd.api.types.is_numeric_dtype(e):
            values = e.to_numpy(dtype=float)
            levels = np.unique(values[~np.isnan(values)])
            if len(levels) <= bins:  # flags and small counts: compare level by level
                inner = (levels[:-1] + levels[1:]) / 2
            else:
                q = np.unique(np.nanquantile(values, np.linspace(0, 1, bins + 1)))
                inner = q[1:-1]
            edges = np.r_[-np.inf, inner, np.inf]

            def dist(s: pd.Series, edges=edges) -> pd.Series:
                v = s.to_numpy(dtype=float)
                idx = np.where(np.isnan(v), -1, np.searchsorted(edges, v, side="right") - 1)
                return pd.Series(idx).value_counts(normalize=True)
        else:

            def dist(s: pd.Series) -> pd.Series:
                return s.astype("string").fillna("<missing>").value_counts(normalize=True)

        de, da = dist(e), dist(a)
        keys = de.index.union(da.index)
        pe = de.reindex(keys, fill_value=0).to_numpy() + eps
        pa = da.reindex(keys, fill_value=0).to_numpy() + eps
        rows.append({"name": c, "psi": float(np.sum((pa - pe) * np.log(pa / pe)))})
    return pd.DataFrame(rows).sort_values("psi", ascending=False, ignore_index=True)


def hash_ids(ids: pd.Series, secret: str) -> pd.Series:
    """Pseudonymous ids: HMAC-SHA256 of the id under a secret key, stable across runs."""
    import hashlib
    import hmac

    key = secret.encode("utf-8")
    return ids.astype(str).map(
        lambda v: hmac.new(key, v.encode("utf-8"), hashlib.sha256).hexdigest()[:20]
    )


COLUMN_DOCS = {
    "customer_id": "Customer identifier (pseudonymised when export.hash_ids is on)",
    "churn_probability": "Calibrated chance of churning within the label window (0-1)",
    "risk_tier": "high / medium / low, by the segment policy in params.yaml",
    "value_tier": "platinum / gold / silver / regular, from the RFM score (segment.rfm_scoring)",
    "care_layer": "core / active / dormant care programme layer",
    "churn_kind": "Likely kind of churn from the top reasons: active, silent or passive",
    "reason_1": "Strongest reason pushing this customer's risk up (plain English)",
    "reason_2": "Second reason",
    "reason_3": "Third reason",
    "action": "Recommended action from the playbook; no contact where it costs more than the "
    "value it is expected to keep",
    "angle": "How to approach the customer, from the family of the main reason",
    "owner": "Role responsible for the action",
    "due_within_hours": "Deadline for the action, in hours (0: no deadline)",
    "expected_retained_value": "p(churn) x customer value x action success rate - action cost",
    "customer_value": "Yearly customer value (data.value_column x data.value_multiplier, "
    "or the spend in the last 12 months)",
    "action_cost": "Cost of the recommended action",
    "rule_colour": "What the old three-colour rule says (green / yellow / red)",
    "campaign_id": "The retention campaign this list belongs to (empty: not in the campaign); "
    "log it with every contact",
    "group": "treatment: contact as the action says; control: held out at random, do not "
    "contact (control.csv), so that comparing the two shows whether acting works; empty: "
    "not in the campaign",
    "reason_1_zh": "第一原因（中文）",
    "reason_2_zh": "第二原因（中文）",
    "reason_3_zh": "第三原因（中文）",
}

COLUMNS = list(COLUMN_DOCS)


def build_segments(
    scoring: pd.DataFrame,
    p: np.ndarray,
    reasons: pd.DataFrame,
    sp: SegmentParams,
    value: np.ndarray | None,
    value_tier: np.ndarray,
    *,
    campaign: str,
    seed: int,
) -> pd.DataFrame:
    """One row per scored customer with every documented column (plus `REASON_FEATURES`):
    the customers worth contacting by risk tier, then expected retained value, then
    probability; after all of them, those whose action costs more than it is expected to keep.

    `reasons` holds the explain stage's top reasons per customer_id; `sp` is the segment
    policy (params.yaml `segment`); `value` the yearly customer value (None: the data has
    none) and `value_tier` the tiers (`churnlight.models.value`). The campaign's control
    group (`churnlight.models.control`, drawn under `campaign` and `seed`) keeps its place in
    the ranking, with the control action."""
    df = scoring[["customer_id"]].copy()
    df["churn_probability"] = np.round(p, 4)
    df["risk_tier"] = risk_tiers(p, sp.policy, **sp.tier_policy())
    df["value_tier"] = np.asarray(value_tier, dtype=object)
    df["care_layer"] = scoring["care_layer"].to_numpy() if "care_layer" in scoring else "active"
    r = reasons.set_index("customer_id").reindex(df["customer_id"])
    r.index = df.index
    fams = r[[c for c in r.columns if c.endswith("_family")]]
    df["churn_kind"] = churn_kind(fams, scoring.get("complaints_open"))
    for j in (1, 2, 3):
        df[f"_reason_{j}_feature"] = r.get(f"reason_{j}_feature", pd.Series(None, index=df.index))
        df[f"reason_{j}"] = r.get(f"reason_{j}_en", pd.Series("", index=df.index)).fillna("")
        df[f"reason_{j}_zh"] = r.get(f"reason_{j}_zh", pd.Series("", index=df.index)).fillna("")
    plan = apply_playbook(
        df["risk_tier"].to_numpy(),
        df["value_tier"].to_numpy(),
        df["care_layer"].to_numpy(),
        sp.playbook,
    )
    for c in plan.columns:
        df[c] = plan[c].to_numpy()
    family = r.get("reason_1_family", pd.Series(None, index=df.index))
    df["angle"] = family.map(dict(sp.angles)).fillna("").to_numpy()
    df.loc[df["risk_tier"] == "low", "angle"] = ""
    _add_value(df, p, sp, value)
    df["rule_colour"] = scoring["rule_colour"].to_numpy()
    tier = pd.Categorical(df["risk_tier"], list(TIERS), ordered=True)
    skip = df["action"].eq(sp.no_contact_action)
    df = df.assign(_skip=skip, _t=tier).sort_values(
        ["_skip", "_t", "expected_retained_value", "churn_probability"],
        ascending=[True, True, False, False],
        kind="stable",
    )
    df = df.drop(columns=["_skip", "_t"]).reset_index(drop=True)
    df = hold_out(df, sp.control_share, campaign, seed, sp.no_contact_action)
    return df[COLUMNS + REASON_FEATURES]


def _add_value(
    df: pd.DataFrame, p: np.ndarray, sp: SegmentParams, value: np.ndarray | None
) -> None:
    """customer_value and expected_retained_value; where the action costs more than it is
    expected to keep, no contact. Without any customer value both stay empty: a value of 0
    would make every action look like a loss."""
    if value is None:
        df["customer_value"] = np.nan
        df["expected_retained_value"] = np.nan
        return
    df["customer_value"] = np.round(np.nan_to_num(value), 2)
    erv = expected_retained_value(
        p, value, df["value_tier"].to_numpy(), dict(sp.success_rate), df["action_cost"].to_numpy()
    )
    df["expected_retained_value"] = np.round(erv, 2)
    negative = erv < 0  # action_cost stays: it is why these are not contacted
    df.loc[negative, "action"] = sp.no_contact_action
    df.loc[negative, "owner"] = "none"
    df.loc[negative, "due_within_hours"] = 0
    df.loc[negative, "angle"] = ""


def segment_customers(
    scoring: pd.DataFrame,
    p: np.ndarray,
    reasons: pd.DataFrame,
    descriptions: pd.Series,
    sp: SegmentParams,
    value: np.ndarray | None,
    value_tier: np.ndarray,
    *,
    campaign: str,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The segment table (the columns in `COLUMN_DOCS`) and its summary by risk and value tier,
    whose top reasons are named by `descriptions` (feature name -> plain text); `campaign` and
    `seed` draw the control group."""
    seg = build_segments(scoring, p, reasons, sp, value, value_tier, campaign=campaign, seed=seed)
    summary = summarise(seg, seg[REASON_FEATURES].fillna(""), descriptions, sp.no_contact_action)
    return seg.drop(columns=REASON_FEATURES), summary


def pseudonymise(seg: pd.DataFrame, secret: str) -> pd.DataFrame:
    """The same table with customer_id replaced by its HMAC under `secret` (see `hash_ids`)."""
    return seg.assign(customer_id=hash_ids(seg["customer_id"], secret))


def feature_drift(
    snapshots: pd.DataFrame,
    train_cutoffs: list[str],
    scoring: pd.DataFrame,
    features: list[str],
    bins: int,
    threshold: float,
) -> pd.DataFrame:
    """PSI of each feature, the training window's rows (`snapshots` at `train_cutoffs`)
    against the scoring snapshot, with `drifted` where it exceeds `threshold`. Without
    training cutoffs (a flat table without dates) every labelled row is the training window."""
    dated = snapshots["cutoff"].isin(pd.to_datetime(train_cutoffs))
    train = snapshots[dated] if train_cutoffs else snapshots
    psi = population_stability(train, scoring, features, bins)
    psi["drifted"] = psi["psi"] > threshold
    return psi
