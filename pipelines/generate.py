"""Stage `generate`: write the synthetic world to data/raw (truth apart, in data/raw/_truth)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from churnlight.features.synthetic import World, WorldConfig, generate_world
from churnlight.pipelines.common import atomic_dir, is_synthetic, load_params, setup_logging

log = logging.getLogger("churnlight.generate")


def write_world(world: World, out: Path) -> None:
    """Raw tables as Parquet in `out`, truth tables in `out/_truth`; all or nothing."""
    with atomic_dir(out) as tmp:
        for name, df in world.raw_tables().items():
            df.to_parquet(tmp / f"{name}.parquet", index=False)
        (tmp / "_truth").mkdir()
        for name, df in world.truth_tables().items():
            df.to_parquet(tmp / "_truth" / f"{name}.parquet", index=False)
        (tmp / "_truth" / "as_of.txt").write_text(str(world.as_of.date()) + "\n")


def run(out: Path, gen_params: dict, seed: int) -> World:
    cfg = WorldConfig.from_params(gen_params)
    t0 = time.perf_counter()
    world = generate_world(cfg, seed=seed)
    log.info("generated %d customers in %.1f s", cfg.n_customers, time.perf_counter() - t0)
    write_world(world, out)
    log.info("wrote %s (data end as_of=%s)", out, world.as_of.date())
    return world


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="data/raw")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    setup_logging(params["base"].get("log_level", "INFO"))
    if not is_synthetic(params["data"]):
        # user data: keep the stage's output present but empty so the DAG stays the same
        log.info("data.source=%s: synthetic generation skipped", params["data"]["source"])
        with atomic_dir(args.out) as tmp:
            (tmp / "SKIPPED").write_text(f"data.source={params['data']['source']}\n")
        return
    run(Path(args.out), params["generate"], seed=params["base"]["seed"])


if __name__ == "__main__":
    main()
