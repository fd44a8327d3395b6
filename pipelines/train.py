"""Stage `train`: tune, calibrate and pick the champion among logistic regression, a decision tree
and LightGBM, tracking everything in MLflow.

Per candidate: an Optuna study on rolling-origin folds inside the training period (stored in
SQLite under data/artifacts/tuning and resumed if interrupted), out-of-fold scores for the
calibrator and for choosing the champion, then a final fit on the whole training period. The
test cutoff is never touched here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from churnlight.models import tracking
from churnlight.models.evaluate import rule_probability, score_metrics
from churnlight.models.train import time_split, tree_rules
from churnlight.models.tune import (
    CalibratedModel,
    Calibrator,
    fit_fold,
    random_folds,
    rolling_folds,
    tune,
)
from churnlight.pipelines.common import (
    atomic_dir,
    load_params,
    read_snapshots,
    setup_logging,
    write_json,
)

log = logging.getLogger("churnlight.train")
LOWER_IS_BETTER = {"log_loss", "brier", "ece"}


def _fingerprint(df: pd.DataFrame, extra: dict) -> str:
    """Names the Optuna study after the data and the search, so a rerun on the same inputs
    resumes it and anything new starts a fresh one."""
    h = hashlib.sha256(pd.util.hash_pandas_object(df[["customer_id", "cutoff", "label"]]).values)
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()[:12]


def run(processed: Path, out: Path, tuning_dir: Path, params: dict) -> dict:
    import mlflow

    seed = params["base"]["seed"]
    tp, fp, ep = params["train"], params["features"], params["evaluate"]
    window = int(fp["label_window_days"])
    capacity, primary = float(ep["capacity"]), ep["primary_metric"]
    df = read_snapshots(processed / "features.parquet")
    features = pd.read_csv(processed / "feature_registry.csv")["name"].tolist()
    split = time_split(df, window, int(tp["test_months"]), seed=seed)
    train = split.train.reset_index(drop=True)
    timed = train["cutoff"].nunique() > 1
    folds = (
        rolling_folds(train, window, int(tp["folds"]))
        if timed
        else random_folds(train, int(tp["folds"]), seed)
    )
    tuning_dir.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(tuning_dir / 'optuna.db').as_posix()}"
    uri = tracking.configure(tp["mlflow_experiment"])
    log.info(
        "training on %d rows (%d cutoffs), %d folds; MLflow at %s",
        len(train),
        train["cutoff"].nunique(),
        len(folds),
        uri,
    )

    # the rules, scored on the same folds, so the champion is compared on equal terms
    rules_oof = pd.concat(
        pd.DataFrame(
            {
                "p": rule_probability(train.iloc[f.train_idx], train.iloc[f.valid_idx]),
                "label": train["label"].to_numpy(int)[f.valid_idx],
            }
        )
        for f in folds
    )
    cv = {"rules": score_metrics(rules_oof["label"], rules_oof["p"], capacity)}
    fitted, summary_models = {}, {}
    for kind in tp["models"]:
        t0 = time.perf_counter()
        space = tp["search_space"].get(kind, {})
        base = dict(tp.get(kind, {}))
        search = {"space": space, "base": base, "seed": seed, "folds": len(folds)}
        name = f"{kind}-{_fingerprint(train, search)}"
        with mlflow.start_run(run_name=kind) as run_:
            res = tune(
                kind,
                train,
                folds,
                features,
                base,
                space,
                int(tp["n_trials"][kind]),
                float(tp["timeout_s"]),
                seed,
                storage=storage,
                study_name=name,
                callbacks=[tracking.trial_logger(kind)],
            )
            calibrator = Calibrator(tp["calibration"]).fit(res.oof["p"], res.oof["label"])
            p_cal = calibrator.transform(res.oof["p"].to_numpy())
            cv[kind] = score_metrics(res.oof["label"], p_cal, capacity)
            cv[kind]["ece_uncalibrated"] = score_metrics(res.oof["label"], res.oof["p"], capacity)[
                "ece"
            ]
            pipe, _ = fit_fold(kind, res.best_params, train, None, features, seed)
            model = CalibratedModel(pipe, calibrator)
            mlflow.log_params({k: v for k, v in res.best_params.items()})
            mlflow.log_params(
                {
                    "calibration": tp["calibration"],
                    "folds": len(folds),
                    "n_trials": res.n_trials,
                    "study": name,
                }
            )
            mlflow.log_metrics({f"cv_{k}": float(v) for k, v in cv[kind].items()})
            mlflow.log_metric("cv_log_loss_tuned", res.best_value)
            model_uri = tracking.log_candidate(model, kind, train[features])
            fitted[kind] = model
            summary_models[kind] = {
                "best_params": res.best_params,
                "cv_log_loss": res.best_value,
                "n_trials": res.n_trials,
                "study": name,
                "run_id": run_.info.run_id,
                "model_uri": model_uri,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        log.info(
            "%-6s cv log loss %.4f, cv %s %.4f (%d trials, %.0f s)",
            kind,
            res.best_value,
            primary,
            cv[kind][primary],
            res.n_trials,
            summary_models[kind]["seconds"],
        )

    reverse = primary not in LOWER_IS_BETTER
    champion = sorted(tp["models"], key=lambda k: cv[k][primary], reverse=reverse)[0]
    version = tracking.register_champion(
        summary_models[champion]["model_uri"], tp["registered_model"]
    )
    beats = (
        (cv[champion][primary] > cv["rules"][primary])
        if reverse
        else (cv[champion][primary] < cv["rules"][primary])
    )
    if not beats:
        log.warning(
            "THE CHAMPION (%s) DOES NOT BEAT THE THREE-COLOUR RULES on the folds (%s %.4f vs %.4f)",
            champion,
            primary,
            cv[champion][primary],
            cv["rules"][primary],
        )
    summary = {
        "champion": champion,
        "primary_metric": primary,
        "champion_beats_rules_cv": bool(beats),
        "cv": cv,
        "models": summary_models,
        "registered_model": {
            "name": tp["registered_model"],
            "version": version,
            "alias": "champion",
            "tracking_uri": uri,
        },
        "folds": [str(f.valid_cutoff.date()) for f in folds],
        "test_cutoffs": [str(c.date()) for c in split.test_cutoffs],
        "train_cutoffs": sorted(str(c.date()) for c in train["cutoff"].unique()),
        "train_rows": len(train),
        "test_rows": len(split.test),
        "features": features,
    }
    with atomic_dir(out) as tmp:
        for kind, model in fitted.items():
            joblib.dump(model, tmp / f"{kind}.joblib")
        if "tree" in fitted:
            (tmp / "tree_rules.txt").write_text(tree_rules(fitted["tree"].pipeline), "utf-8")
        write_json(
            {k: v["best_params"] for k, v in summary_models.items()}, tmp / "best_params.json"
        )
        write_json(summary, tmp / "train_report.json")
    log.info(
        "champion: %s (cv %s %.4f; rules %.4f); registered %s v%s @champion",
        champion,
        primary,
        cv[champion][primary],
        cv["rules"][primary],
        tp["registered_model"],
        version,
    )
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", default="data/processed")
    ap.add_argument("--out", default="data/artifacts/models")
    ap.add_argument("--tuning", default="data/artifacts/tuning")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    setup_logging(params["base"].get("log_level", "INFO"))
    np.seterr(all="ignore")
    run(Path(args.processed), Path(args.out), Path(args.tuning), params)


if __name__ == "__main__":
    main()
