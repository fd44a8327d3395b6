"""`churnlight score`: the weekly lists from new data with the champion, without retraining.

Validate the folder against the contract (the validate stage's `validate_folder`), build only
the scoring snapshot with the training features' definitions (`build_snapshots(...,
scoring_only=True)`), check the features are the model's, score, explain the tiers acted on
and segment through the same functions as the explain and segment stages
(`churnlight.models.scoring`), compare with the training window (PSI, as the segment stage
does) and write the segment files and a one-page summary into one folder, atomically.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from churnlight.features.build import build_snapshots
from churnlight.features.params import Params
from churnlight.models.artifacts import load_champion, load_train_report
from churnlight.models.explain.workflow import acted_reasons, background_sample
from churnlight.models.export import write_segment_files
from churnlight.models.scoring import check_features, feature_kinds, trained_features
from churnlight.models.scoring_page import scoring_page
from churnlight.pipelines.common import InputError, Layout, atomic_dir, peak_rss_gb
from churnlight.pipelines.drift import window_drift
from churnlight.pipelines.progress import progress
from churnlight.pipelines.segment import log_segments, score
from churnlight.pipelines.validate import resolve_as_of, validate_folder

log = logging.getLogger("churnlight.score")

DEFAULT_MODEL = "models:/churnlight@champion"
STEPS = ("validate", "features", "score", "reasons", "segment", "write")


@dataclass(frozen=True)
class ScoringModel:
    """The model to score with, its features (name -> numeric/categorical, model order), what
    the summary says of it, and the models folder of its training run (None: unknown)."""

    model: object
    kinds: dict[str, str]
    info: dict
    models_dir: Path | None


def load_scoring_model(ref: str, root: Path) -> ScoringModel:
    """`models:/<name>@<alias>` from the MLflow store the stages use (MLFLOW_TRACKING_URI, else
    `root`/mlflow.db), or a path: a models folder (its champion) or one `<name>.joblib`."""
    from churnlight.models import tracking

    if ref.startswith("models:/"):
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root / 'mlflow.db').resolve()}"
        try:
            model, info = tracking.load_registered(ref, uri)
        except Exception as err:  # MLflow raises its own exception types for a missing model
            raise InputError(f"cannot load {ref} from {uri}: {err}") from err
        return ScoringModel(model, trained_features(model), info, Layout(root).models)
    path = Path(ref)
    if path.is_dir() and (path / "train_report.json").is_file():
        name, model, _ = load_champion(path)
        file, folder = path / f"{name}.joblib", path
    elif path.is_file():
        import joblib

        model, file, folder, name = joblib.load(path), path, path.parent, path.stem
    else:
        raise InputError(f"--model {ref}: neither a models:/ URI, a models folder nor a file")
    trained = pd.Timestamp(file.stat().st_mtime, unit="s", tz="UTC")
    report = folder / "train_report.json"
    version = ""
    if report.is_file():
        version = str(load_train_report(folder).get("registered_model", {}).get("version", ""))
    info = {"source": str(path), "name": name, "version": version, "trained_at": trained}
    return ScoringModel(model, trained_features(model), info, folder)


@contextmanager
def _timed(seconds: dict[str, float], step: str, advance) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    seconds[step] = seconds.get(step, 0.0) + time.perf_counter() - t0
    # the peak so far after each step: where the memory goes on a large export
    log.info("%s: %.1f s; peak RSS so far %.2f GiB", step, seconds[step], peak_rss_gb())
    advance(1)


def build_scoring(
    data_dir: Path,
    scratch: Path,
    params: Params,
    as_of: str | None,
    t,
    advance,
    mapping: Path | None = None,
):
    """Validate `data_dir` (through `mapping`, a `churnlight inspect` mapping file, when the
    export needs one) and build its scoring snapshot in `scratch`: (snapshot, registry)."""
    dp = params.data
    with _timed(t, "validate", advance):
        interim = scratch / "interim"
        stated = resolve_as_of(as_of, data_dir)
        # only the report: the typed tables are on disk, and held they would double the memory
        report = validate_folder(
            data_dir, interim, stated, dp.label_column, dp.encoding, params.validate_, mapping
        ).report
    with _timed(t, "features", advance):
        processed = scratch / "processed"
        processed.mkdir()
        fp, label = params.features, dp.label_column
        _, registry = build_snapshots(interim, processed, report, fp, label, scoring_only=True)
        # through CSV, as the stages read it: the same registry values to the last NaN
        registry.to_csv(processed / "feature_registry.csv", index=False, encoding="utf-8")
        registry = pd.read_csv(processed / "feature_registry.csv")
        scoring = pd.read_parquet(processed / "scoring.parquet")
    return scoring, registry


def training_drift(sm: ScoringModel, scoring: pd.DataFrame, params: Params):
    """PSI of each feature, the model's training window against `scoring` (the segment
    stage's `feature_drift`); None when the training run's files are not there."""
    folder = sm.models_dir
    snapshots = None if folder is None else folder.parent.parent / "processed" / "features.parquet"
    if snapshots is None or not snapshots.is_file() or not (folder / "train_report.json").is_file():
        log.warning("no training window found beside %s: drift not checked", folder)
        return None
    report = load_train_report(folder)
    trained_version = str(report.get("registered_model", {}).get("version", ""))
    if sm.info.get("version") and trained_version and trained_version != sm.info["version"]:
        log.warning(
            "drift is against the training window of version %s in %s, not of version %s",
            trained_version,
            folder,
            sm.info["version"],
        )
    features, sp = list(sm.kinds), params.segment
    psi = window_drift(snapshots, report["train_cutoffs"], scoring, features, sp)
    drifted = psi[psi["drifted"]]
    if len(drifted):
        log.warning(
            "%d feature(s) drifted since training (PSI > %.2f):\n%s",
            len(drifted),
            sp.psi_threshold,
            drifted.to_string(index=False),
        )
    return psi


def score_folder(
    data_dir: Path,
    out: Path,
    params: Params,
    model_ref: str,
    as_of: str | None,
    root: Path,
    mapping: Path | None = None,
) -> dict[str, float]:
    """Score the raw folder `data_dir` into `out` (replaced whole, or left as it was on an
    error); returns the seconds per step (`STEPS`), `total` and `customers`. `mapping`: the
    mapping file the export needs (`churnlight inspect`), None for contract tables."""
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    sm = load_scoring_model(model_ref, root)
    features, ep, sp = list(sm.kinds), params.explain, params.segment
    with (
        progress("churnlight score", len(STEPS), unit="steps") as advance,
        tempfile.TemporaryDirectory(prefix="churnlight-score-") as scratch,
    ):
        scoring, registry = build_scoring(
            data_dir, Path(scratch), params, as_of, t, advance, mapping
        )
        check_features(feature_kinds(scoring, registry["name"].tolist()), sm.kinds)
        with _timed(t, "score", advance):
            x = scoring[features]
            p = sm.model.predict_proba(x)[:, 1]
        with _timed(t, "reasons", advance):
            sample = background_sample(x, ep.global_sample, params.base.seed)
            tiers, k, threads = list(ep.reason_tiers), ep.top_reasons, ep.threads
            found = acted_reasons(
                sm.model, x, scoring["customer_id"], p, registry, sp, tiers, k, threads, sample
            )
        with _timed(t, "segment", advance):
            descriptions = registry.set_index("name")["description_en"]
            scored = score(sm.model, scoring, features, found.reasons, descriptions, params, p)
        psi = training_drift(sm, scoring, params)
        with _timed(t, "write", advance):
            write_outputs(out, scored, psi, sm, scoring, params)
    drifted = 0 if psi is None else int(psi["drifted"].sum())
    log_segments(scored, params, drifted)
    t.update(total=time.perf_counter() - t0, customers=float(len(scoring)))
    log.info(
        "scored %d customers into %s in %.1f s (%s); peak RSS %.2f GiB",
        len(scoring),
        out,
        t["total"],
        ", ".join(f"{s} {t.get(s, 0):.1f} s" for s in STEPS),
        peak_rss_gb(),
    )
    return t


def write_outputs(out: Path, scored, psi, sm: ScoringModel, scoring: pd.DataFrame, params):
    """The segment files, drift.csv and scoring_summary.md/.html into `out`, atomically."""
    run_at = pd.Timestamp.now(tz="UTC")
    cutoff = scoring["cutoff"].max() if "cutoff" in scoring and len(scoring) else None
    facts = {
        "scored at": run_at.strftime("%Y-%m-%d %H:%M UTC"),
        "snapshot": "" if cutoff is None or pd.isna(cutoff) else str(pd.Timestamp(cutoff).date()),
        "customers": f"{len(scoring):,}",
        "campaign": scored.campaign,
    }
    md, page = scoring_page(
        scored.segments, psi, sm.info, facts, params.segment.no_contact_action, run_at
    )
    with atomic_dir(out) as tmp:
        write_segment_files(
            scored.segments, scored.summary, tmp, partitions=params.export.lake_partitions
        )
        if psi is not None:
            psi.to_csv(tmp / "drift.csv", index=False)
        (tmp / "scoring_summary.md").write_text(md, encoding="utf-8")
        (tmp / "scoring_summary.html").write_text(page, encoding="utf-8")
