"""Benchmark scoring and per-customer reasons for a large customer base with the champion.

Why it exists: the explain stage gives the high and medium risk tiers (30% of customers by
default) their top reasons in English and Chinese. LightGBM's own exact TreeSHAP
(`pred_contrib`) costs a few ms of CPU a row for a large forest, so at a million customers it
alone takes minutes. This script times what the explain stage does at that size, on the
champion the pipeline trained (or, with `--model`, another candidate: `--model lgbm` measures
the hard case whatever won):

1. score: calibrated probabilities for every customer (`model.predict_proba`) and the risk
   tiers by the segment policy in params.yaml;
2. reasons, for the tiers in `explain.reason_tiers`, with the stage's own `customer_reasons`:
   contributions (for LightGBM exact TreeSHAP from per-leaf pattern tables built once per
   model, counted here: the same values as `pred_contrib`; the tree through
   shap.TreeExplainer; logistic regression linear, centred on a seeded sample of
   `explain.global_sample` customers as the stage does), then the top reasons as sentences in
   both languages (`top_reasons_fast`, which gives the same table as `top_reasons`).
   `--attribution lightgbm` times LightGBM's `pred_contrib` instead of the tables, for
   comparison.

Then, not timed, on a seeded sample of `--agreement-rows` customers with reasons, it compares
the timed contributions with exact SHAP from `contributions` (`pred_contrib` for LightGBM,
shap.TreeExplainer for the tree, the linear attribution for logistic regression): how often the
top reason is the same feature (`top1_agreement`; the goal is >= 0.9), the share of exact SHAP's
top-3 reasons found among the benchmark's top 3, the largest difference of a contribution, and
whether `top_reasons_fast` gives the same table as `top_reasons` on those rows.

The customer table is drawn with replacement (seeded) from the rows of
`data/processed/scoring.parquet` (and, with `--pool all`, the default, the labelled rows of
`features.parquet` too, for variety). Nothing is cached by row, so the cost depends on the number
of rows and on the model, not on which customers they are. The champion is the one
`load_champion` returns: run `dvc repro` (or `bash scripts/run.sh`) first.

    python bench/score.py --customers 100000
    python bench/score.py --customers 100000 --model lgbm

Progress and the split of the timings go to stderr through `logging`; stdout gets exactly one
line:

    customers=<n> score_s=<x> reasons_s=<y> top1_agreement=<z>

Timings are wall-clock seconds; `reasons_s` is contributions plus sentences. Other processes on
the machine slow every figure down, so the log reports the load average before and after.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from churnlight.features.params import parse_params
from churnlight.models.artifacts import (
    load_champion,
    load_model,
    load_train_report,
    read_snapshots,
)
from churnlight.models.explain.contributions import contributions
from churnlight.models.explain.reasons import top_reasons, top_reasons_fast
from churnlight.models.explain.workflow import customer_reasons
from churnlight.models.segment import risk_tiers
from churnlight.pipelines.common import peak_rss_gb

log = logging.getLogger("churnlight.bench.score")


def load_avg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def describe_model(model) -> str:
    """Size of the model behind the calibration: what the cost of its explanations depends on."""
    est = model.pipeline.named_steps["model"]
    kind = type(est).__name__
    if kind == "DecisionTreeClassifier":
        return f"decision tree: {est.get_n_leaves()} leaves, depth {est.get_depth()}"
    if kind != "LGBMClassifier":
        return kind
    dump = est.booster_.dump_model()
    leaves = [int(t["num_leaves"]) for t in dump["tree_info"]]

    def depths(node: dict, d: int = 0):
        if "split_index" not in node:
            yield d
        else:
            yield from depths(node["left_child"], d + 1)
            yield from depths(node["right_child"], d + 1)

    per_tree = [list(depths(t["tree_structure"])) for t in dump["tree_info"]]
    leaf_depths = [d for ds in per_tree for d in ds]
    return (
        f"LightGBM: {len(leaves)} trees, {sum(leaves)} leaves (max {max(leaves)} a tree), "
        f"leaf depth mean {np.mean(leaf_depths):.1f} max {max(leaf_depths)}, "
        f"tree depth mean {np.mean([max(ds) for ds in per_tree]):.1f}; "
        f"num_leaves={est.num_leaves} max_depth={est.max_depth} n_jobs={est.n_jobs}"
    )


def top_features(contrib: pd.DataFrame, k: int) -> np.ndarray:
    """Column index of the k largest contributions per row, as `top_reasons` ranks them;
    -1 where the contribution is not positive (no reason given)."""
    values = contrib.to_numpy()
    order = np.argsort(-values, axis=1)[:, :k]
    pos = np.take_along_axis(values, order, axis=1) > 0
    return np.where(pos, order, -1)


def agreement(fast: pd.DataFrame, exact: pd.DataFrame, k: int) -> dict[str, float]:
    """Top-1 agreement, share of exact SHAP's top-k reasons among the fast top k, same set."""
    tf, te = top_features(fast, k), top_features(exact, k)
    overlap, same = [], []
    for a, e in zip(tf, te, strict=True):
        sa, se = set(a[a >= 0]), set(e[e >= 0])
        overlap.append(len(sa & se) / len(se) if se else float(not sa))
        same.append(sa == se)
    return {
        "top1": float(np.mean(tf[:, 0] == te[:, 0])),
        f"top{k}_overlap": float(np.mean(overlap)),
        f"same_top{k}_set": float(np.mean(same)),
    }


def customer_table(processed: Path, features: list[str], pool: str, n: int, seed: int):
    frames = [pd.read_parquet(processed / "scoring.parquet", columns=features)]
    if pool == "all":
        frames.append(read_snapshots(processed / "features.parquet", columns=features))
    source = pd.concat(frames, ignore_index=True)
    x = source.sample(n=n, replace=True, random_state=seed).reset_index(drop=True)
    return x, len(source)


def bench(args: argparse.Namespace) -> str:
    models = Path(args.models)
    processed = Path(args.processed)
    if (
        not (models / "train_report.json").is_file()
        or not (processed / "scoring.parquet").is_file()
    ):
        raise SystemExit(
            f"no trained champion in {models} or no {processed / 'scoring.parquet'}: this "
            "benchmark needs the pipeline's outputs, run `dvc repro` (or `bash scripts/run.sh`) "
            "first"
        )
    params = parse_params(yaml.safe_load(Path(args.params).read_text(encoding="utf-8")))
    seg, ep = params.segment, params.explain
    k = ep.top_reasons
    seed = params.base.seed if args.seed is None else args.seed
    champion, model, features = load_champion(models)
    name = champion
    if args.model != "champion" and args.model != champion:
        if args.model not in load_train_report(models)["models"]:
            raise SystemExit(f"no {args.model} model in {models}")
        name, model = args.model, load_model(models, args.model)
    registry = pd.read_csv(processed / "feature_registry.csv")
    threads = int(args.threads)
    est = model.pipeline.named_steps["model"]
    log.info(
        "model %s (%s; champion %s): %s",
        name,
        "forced by --model" if args.model != "champion" else "the champion",
        champion,
        describe_model(model),
    )
    if "n_jobs" in est.get_params():
        est.set_params(n_jobs=threads)  # in memory only: prediction threads for this run
    log.info("load average before: %s (%d cores)", load_avg(), os.cpu_count() or 0)

    x, distinct = customer_table(processed, features, args.pool, args.customers, seed)
    log.info(
        "%d customers drawn from %d rows (%s, seed %d), %d features; peak RSS %.2f GiB",
        len(x),
        distinct,
        args.pool,
        seed,
        len(features),
        peak_rss_gb(),
    )

    # 1. score everyone (calibrated) and cut the risk tiers
    c0 = time.process_time()
    t0 = time.perf_counter()
    p = model.predict_proba(x)[:, 1]
    t1 = time.perf_counter()
    tiers = risk_tiers(p, seg.policy, **seg.tier_policy())
    act = np.isin(tiers, list(ep.reason_tiers))
    t2 = time.perf_counter()
    score_cpu = time.process_time() - c0
    predict_s, tiers_s = t1 - t0, t2 - t1
    score_s = predict_s + tiers_s
    log.info(
        "scored %d customers in %.2f s (predict_proba %.2f s, tiers %.2f s; %d threads, "
        "%.1f CPU-s); %d get reasons (%s)",
        len(x),
        score_s,
        predict_s,
        tiers_s,
        threads,
        score_cpu,
        int(act.sum()),
        "+".join(ep.reason_tiers),
    )

    # 2. reasons for the tiers someone acts on, as the stage gives them (customer_reasons);
    # logistic regression is centred on a sample of everyone, as in the stage (its attribution
    # depends on the reference, the trees' do not)
    background = x.sample(n=min(ep.global_sample, len(x)), random_state=seed)
    xa = x[act]
    found = customer_reasons(
        model.pipeline,
        xa,
        registry,
        k,
        num_threads=threads,
        background=background,
        tables=args.attribution == "tables",
    )
    reasons, contrib, base = found.reasons, found.contributions, found.base
    how = found.method
    if found.method == "exact TreeSHAP tables":
        how += f", of which tables {found.wall_s['tables']:.2f} s"
    contrib_s, sentences_s = found.wall_s["contributions"], found.wall_s["sentences"]
    reasons_s = contrib_s + sentences_s
    log.info(
        "reasons for %d customers in %.2f s: contributions %.2f s (%s; %.1f CPU-s), "
        "sentences %.2f s (%.1f CPU-s); base value %.3f log-odds; peak RSS %.2f GiB",
        len(reasons),
        reasons_s,
        contrib_s,
        how,
        found.cpu_s["contributions"],
        sentences_s,
        found.cpu_s["sentences"],
        base,
        peak_rss_gb(),
    )
    log.info("load average after the timed part: %s", load_avg())

    # 3. against exact SHAP on a sample (not timed)
    n_sample = min(int(args.agreement_rows), len(xa))
    if n_sample:
        sample = xa.sample(n=n_sample, random_state=seed).index
        exact, exact_base = contributions(model.pipeline, xa.loc[sample], background)
        agree = agreement(contrib.loc[sample], exact, k)
        same_table = top_reasons_fast(contrib.loc[sample], xa.loc[sample], registry, k).equals(
            top_reasons(contrib.loc[sample], xa.loc[sample], registry, k)
        )
        log.info(
            "against exact SHAP on %d rows: top-1 agreement %.4f, top-%d overlap %.4f, "
            "same top-%d set %.4f; largest contribution difference %.2g, base value %.2g; "
            "top_reasons_fast table identical to top_reasons: %s",
            n_sample,
            agree["top1"],
            k,
            agree[f"top{k}_overlap"],
            k,
            agree[f"same_top{k}_set"],
            float(np.abs(contrib.loc[sample].to_numpy() - exact.to_numpy()).max()),
            abs(base - exact_base),
            same_table,
        )
        if not same_table:
            log.warning("top_reasons_fast differs from top_reasons on the sample")
        top1 = agree["top1"]
    else:
        top1 = float("nan")

    return (
        f"customers={len(x)} score_s={score_s:.2f} reasons_s={reasons_s:.2f} "
        f"top1_agreement={top1:.4f}"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument(
        "--seed", type=int, default=None, help="draws the customers; default: base.seed in --params"
    )
    ap.add_argument(
        "--model",
        choices=["champion", "logreg", "tree", "lgbm"],
        default="champion",
        help="model to time: the champion (default) or a candidate; lgbm is the costly case",
    )
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", default="data/processed")
    ap.add_argument("--models", default="data/artifacts/models")
    ap.add_argument(
        "--pool",
        choices=["all", "scoring"],
        default="all",
        help="rows to draw customers from: scoring.parquet and features.parquet, or scoring only",
    )
    ap.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="LightGBM prediction threads"
    )
    ap.add_argument(
        "--attribution",
        choices=["tables", "lightgbm"],
        default="tables",
        help="tables: as the explain stage (exact TreeSHAP from per-leaf tables for LightGBM); "
        "lightgbm: LightGBM's pred_contrib (contributions)",
    )
    ap.add_argument("--agreement-rows", type=int, default=2000)
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sys.stdout.write(bench(args) + "\n")


if __name__ == "__main__":
    main()
