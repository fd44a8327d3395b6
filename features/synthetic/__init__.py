"""A seeded synthetic customer world with known ground truth.

The world is a monthly simulation over customers. Each customer carries a latent engagement,
satisfaction, price sensitivity and value; regions and industries receive shocks (competitor
launches, downturns, policy changes). Healthy customers may decide to leave (``intent``:
active churn, with warning traces for weeks before), start fading silently (``fading``: silent
churn) or leave with no warning at all (passive churn). Only the observable traces reach the
raw tables; the latent state and the true risk at each monthly cutoff go to the truth tables,
which feature code never reads.

Modules: `config` (the knobs and the result), `market` (shocks), `simulation` (customers and
their monthly latent states), `events` (trace rates, activity and transactions), `feedback`
(surveys, complaints, messages), `texts` (message templates) and `world` (`generate_world`,
which runs them in order).
"""

from churnlight.features.synthetic.config import World, WorldConfig
from churnlight.features.synthetic.texts import TEXTS
from churnlight.features.synthetic.world import generate_world

__all__ = ["TEXTS", "World", "WorldConfig", "generate_world"]
