"""Stage `report`: the model card a manager reads, as reports/model_card.md and model_card.html.

Thin: read the pipeline's outputs, hand them to `churnlight.models.report` (context, charts,
rendering: one template for both files) and write both files atomically. With
`report.screenshot: true` (the default) it also saves a PNG of the HTML card, taken with headless
Chromium (`churnlight.models.report.browser`), as reports/figures/card/model_card.png. Without
Chromium the cards are still written, the folder stays empty (DVC accepts an empty folder out)
and a warning says how to get Chromium.

The SHAP figures come from the explain stage in reports/figures/shap/; a Chinese card uses
shap/zh/<name>.png where explain wrote one (it does when a CJK font is installed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import subprocess
from pathlib import Path

import pandas as pd

from churnlight.features.params import Params
from churnlight.models.report.browser import write_screenshot
from churnlight.models.report.context import (
    CardInputs,
    build_context,
    card_language,
    figure_sources,
)
from churnlight.models.report.format import content_hash
from churnlight.models.report.render import render_card
from churnlight.models.report.winback import read_winback_list
from churnlight.pipelines.common import Layout, atomic_dir, is_synthetic, write_text

log = logging.getLogger("churnlight.report")

# inside the reports folder: the explain stage's figures, and the report stage's own (DVC outs)
SHAP_DIR = Path("figures", "shap")
CARD_DIR = Path("figures", "card")
SCREENSHOT = "model_card.png"


# --- reading -----------------------------------------------------------------------------------


def _git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
            cwd=cwd,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _file_digest(path: Path) -> bytes:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").digest()


def _json(path: Path, default: dict | None = None) -> dict:
    if default is not None and not path.is_file():
        log.warning("model card: %s not found, its section stays short", path)
        return default
    return json.loads(path.read_text(encoding="utf-8"))


def _csv(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.is_file():
        log.warning("model card: %s not found, its section stays short", path)
        return pd.DataFrame(columns=columns)
    try:
        return pd.read_csv(path, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:  # e.g. no slice large enough to evaluate
        return pd.DataFrame(columns=columns)


def read_figures(reports: Path, lang: str) -> tuple[dict[str, bytes], dict[str, str]]:
    """The explain stage's figures by name: their bytes, and their files as seen from the
    Markdown card (for a Chinese card the zh/ version where there is one: `figure_sources`)."""
    shap_dir = reports / SHAP_DIR
    names = [p.stem for p in sorted(shap_dir.glob("*.png"))]
    chinese = [p.stem for p in (shap_dir / "zh").glob("*.png")] if lang == "zh" else []
    files = figure_sources(names, chinese, lang, SHAP_DIR.as_posix())
    return {n: (reports / f).read_bytes() for n, f in files.items()}, files


def read_inputs(paths: Layout, params: Params) -> CardInputs:
    """Everything the card needs, read from the pipeline's files."""
    interim, processed, models, reports = (
        paths.interim,
        paths.processed,
        paths.models,
        paths.reports,
    )
    figures, figure_files = read_figures(reports, card_language(params))
    tree_path = models / "tree_rules.txt"
    data_files = [
        interim / "contract_report.json",
        *sorted(p for p in processed.iterdir() if p.is_file()),
    ]
    return CardInputs(
        params=params,
        contract=_json(interim / "contract_report.json"),
        features_report=_json(processed / "features_report.json"),
        metrics=_json(reports / "metrics.json"),
        train_report=_json(models / "train_report.json", default={}),
        registry=pd.read_csv(processed / "feature_registry.csv"),
        importance=pd.read_csv(reports / "importance.csv"),
        importance_by_family=pd.read_csv(reports / "importance_by_family.csv"),
        summary=pd.read_csv(paths.segments / "summary.csv", encoding="utf-8-sig"),
        scored=pd.read_parquet(paths.segments / "scored_customers.parquet"),
        slices=_csv(reports / "metrics_by_slice.csv", ["slice", "value", "rows", "churn_rate"]),
        drift=_csv(reports / "drift.csv", ["name", "psi", "drifted"]),
        calibration=_csv(reports / "plots" / "calibration.csv", ["predicted", "observed"]),
        gains=_csv(reports / "plots" / "gains.csv", ["share_contacted", "share_of_churners"]),
        campaigns=_json(reports / "campaigns.json", default={}),
        campaign_table=_csv(reports / "campaigns.csv", ["campaign_id", "risk_tier", "value_tier"]),
        winback_list=read_winback_list(models.parent / "winback" / "list.parquet"),
        tree_rules=tree_path.read_text(encoding="utf-8") if tree_path.is_file() else None,
        figures=figures,
        version={
            "commit": _git_commit(paths.params.resolve().parent),
            "params_hash": content_hash([paths.params.read_bytes()]),
            "data_hash": content_hash(_file_digest(p) for p in data_files),
        },
        generated=str(dt.date.today()),
        synthetic=is_synthetic(params.data),
        source=params.data.source,
        figure_files=figure_files,
    )


# --- the stage ---------------------------------------------------------------------------------


def run(paths: Layout, params: Params) -> str:
    """Write reports/model_card.md, model_card.html and (report.screenshot) the card's PNG in
    reports/figures/card; returns the Markdown card."""
    reports = paths.reports
    context = build_context(read_inputs(paths, params))
    card_md, card_html = render_card(context, "md"), render_card(context, "html")
    write_text(card_md, reports / "model_card.md")
    write_text(card_html, reports / "model_card.html")
    log.info("model card: %s, %s", reports / "model_card.md", reports / "model_card.html")
    # a DVC out: always written, empty without a screenshot
    with atomic_dir(reports / CARD_DIR) as tmp:
        shot = write_screenshot(
            reports / "model_card.html", tmp / SCREENSHOT, params.report.screenshot
        )
    if shot is None:
        log.info("model card screenshot: none, %s left empty", reports / CARD_DIR)
    else:
        log.info("model card screenshot: %s", reports / CARD_DIR / SCREENSHOT)
    return card_md
