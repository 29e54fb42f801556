"""Which source each training batch comes from when tasks read several sources.

Every batch comes from one source, drawn by a seeded rule: `proportional` to the sources' training sizes, `uniform`,
or `temperature` (p_s ∝ n_s^(1/τ): τ = 1 is proportional, τ → ∞ uniform). The draw for step k depends only on the
seed and k, so a run resumed at step k continues with exactly the batches it would have seen.
"""

from __future__ import annotations

import numpy as np


def source_probabilities(sizes: list[int], rule: str, temperature: float = 1.0) -> np.ndarray:
    """Args: training examples per source, the rule, τ for `temperature`. Returns probabilities [sources]."""
    n = np.asarray(sizes, dtype=np.float64)
    if rule == "uniform":
        weights = np.ones_like(n)
    elif rule == "proportional":
        weights = n
    else:
        weights = n ** (1.0 / temperature)
    return weights / weights.sum()


def source_schedule(probabilities: np.ndarray, total_steps: int, seed: int) -> np.ndarray:
    """The source index of every training step 0 … total_steps - 1 (uint8 for fewer than 256 sources)."""
    uniform = np.random.default_rng([seed, 0x5EED]).random(total_steps)  # a prefix does not depend on total_steps
    cdf = np.cumsum(probabilities)
    choices = np.minimum(np.searchsorted(cdf, uniform, side="right"), len(probabilities) - 1)
    return choices.astype(np.uint8 if len(probabilities) < 256 else np.int32)
