"""The one-page scoring summary `churnlight score` writes beside the segment files, in
Markdown and HTML: who is in which tier, which actions fall due by when, which features drifted
since training, and which model scored (its version and age), so that a weekly list can be
trusted or questioned at a glance.
"""

from __future__ import annotations

import html

import pandas as pd

from churnlight.models.control import CONTROL, action_list
from churnlight.models.segment import TIERS


def tier_counts(seg: pd.DataFrame) -> pd.DataFrame:
    """Per risk tier: customers, those to act on, those held out, mean probability."""
    rows = []
    for tier in TIERS:
        g = seg[seg["risk_tier"] == tier]
        rows.append(
            {
                "risk_tier": tier,
                "customers": len(g),
                "to_contact": int((g["group"] != CONTROL).sum()),
                "control": int((g["group"] == CONTROL).sum()),
                "mean_probability": round(float(g["churn_probability"].mean()), 4) if len(g) else 0,
            }
        )
    return pd.DataFrame(rows)


def actions_due(seg: pd.DataFrame, no_contact: str, run_at: pd.Timestamp) -> pd.DataFrame:
    """The actions on the lists (not the control group, not `no_contact`), with their owner and
    the time they are due by, counted; soonest first, those without a deadline last."""
    acted = action_list(seg)
    acted = acted[acted["action"] != no_contact]
    cols = ["action", "owner", "due_within_hours"]
    if acted.empty:
        return pd.DataFrame(columns=[*cols, "due_by", "customers"])
    out = acted.groupby(cols, sort=False).size().rename("customers").reset_index()
    due = pd.to_timedelta(out["due_within_hours"], unit="h")
    out.insert(3, "due_by", (run_at + due).dt.strftime("%Y-%m-%d %H:%M"))
    undated = out["due_within_hours"] == 0
    out.loc[undated, "due_by"] = ""
    out = out.assign(_undated=undated).sort_values(
        ["_undated", "due_within_hours", "customers"], ascending=[True, True, False]
    )
    return out.drop(columns="_undated").reset_index(drop=True)


def model_facts(info: dict, run_at: pd.Timestamp) -> dict[str, str]:
    """Source, name, version, when it was trained and its age in days."""
    trained = info.get("trained_at")
    age = f"{(run_at - trained).total_seconds() / 86400:.1f} days" if trained is not None else "?"
    return {
        "source": str(info.get("source", "")),
        "name": str(info.get("name", "")),
        "version": str(info.get("version", "")),
        "trained": "" if trained is None else trained.strftime("%Y-%m-%d %H:%M UTC"),
        "age": age,
    }


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_none_\n"
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


def scoring_page(
    seg: pd.DataFrame,
    drift: pd.DataFrame | None,
    info: dict,
    facts: dict,
    no_contact: str,
    run_at: pd.Timestamp,
) -> tuple[str, str]:
    """(Markdown, HTML) of the page. `drift`: the PSI table (`feature_drift`), None when no
    training window was found; `facts`: scoring date, campaign, customers and the like."""
    due = actions_due(seg, no_contact, run_at)
    sections = [("Risk tiers", tier_counts(seg)), ("Actions due", due)]
    if drift is None:
        drifted, note = pd.DataFrame(), "No training window found: drift not checked."
    else:
        drifted = drift[drift["drifted"]].drop(columns="drifted").round(4)
        note = f"{len(drifted)} of {len(drift)} features drifted (PSI above the threshold)."
    model = model_facts(info, run_at)
    head = {**facts, **{f"model {k}": v for k, v in model.items()}}
    md = ["# Scoring summary", ""]
    md += [f"- **{k}**: {v}" for k, v in head.items()] + [""]
    for title, table in sections:
        md += [f"## {title}", "", _md_table(table)]
    md += ["## Drift since training", "", note, "", _md_table(drifted)]
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Scoring summary</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}</style>",
        "</head><body><h1>Scoring summary</h1><ul>",
        *(f"<li><b>{e(k)}</b>: {e(str(v))}</li>" for k, v in head.items()),
        "</ul>",
    ]
    for title, table in [*sections, ("Drift since training", drifted)]:
        parts.append(f"<h2>{e(title)}</h2>")
        if title.startswith("Drift"):
            parts.append(f"<p>{e(note)}</p>")
        parts.append(table.to_html(index=False) if not table.empty else "<p>none</p>")
    parts.append("</body></html>")
    return "\n".join(md), "\n".join(parts) + "\n"
