"""Stage `generate`: write the synthetic world to data/raw (truth apart, in data/raw/_truth).

With `data.source` pointing at the user's own folder the world is not generated: the stage
writes an empty marker instead, so the DAG stays the same whatever the data.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from churnlight.features.params import Params
from churnlight.features.synthetic import World, WorldConfig, generate_world
from churnlight.pipelines.common import Layout, atomic_dir, is_synthetic

log = logging.getLogger("churnlight.generate")


def write_world(world: World, out: Path) -> None:
    """The world's files in `out`, all or nothing."""
    with atomic_dir(out) as tmp:
        world.write(tmp)


def run(paths: Layout, params: Params) -> World | None:
    if not is_synthetic(params.data):
        log.info("data.source=%s: synthetic generation skipped", params.data.source)
        with atomic_dir(paths.raw) as tmp:
            (tmp / "SKIPPED").write_text(f"data.source={params.data.source}\n")
        return None
    cfg = WorldConfig.from_params(params.generate.model_dump())
    t0 = time.perf_counter()
    world = generate_world(cfg, seed=params.base.seed)
    log.info("generated %d customers in %.1f s", cfg.n_customers, time.perf_counter() - t0)
    write_world(world, paths.raw)
    log.info("wrote %s (data end as_of=%s)", paths.raw, world.as_of.date())
    return world
