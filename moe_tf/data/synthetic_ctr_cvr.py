"""Impressions → clicks → conversions with sample-selection bias, for entire-space multi-task models (ESMM, Ma et al.
SIGIR 2018).

Every impression has a user and an item (categorical ids) and a context vector x. Users and items have latent
vectors; an impression is clicked with probability σ(a·⟨u, v⟩ + wᵀx + b_click), and it would convert with
probability σ(c·⟨u, v'⟩ + ⟨u, v⟩ + w'ᵀx + b_conv) — conversion shares the click's user-item affinity and adds its
own. A conversion is observed only after a click, so a CVR model trained on clicked impressions learns from a
biased, small sample, while it is used on every impression. The generator knows the conversion outcome of every
impression (as if it had been clicked), so CVR can be judged over the whole space.

Inputs: `user`, `item` (categorical int64 ids), `context` (numeric [context_dim]).
Labels: `click` (0/1); `conversion` (0/1 on clicked impressions, -1 elsewhere: what a log shows); `purchase`
(click and conversion, every impression: the CTCVR label); `conversion_all` (the outcome had it been clicked,
every impression: for judging, never for training a real model). Seeded by `seed` (default `experiment.seed`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.data.base import DataSource, FeatureSpec, LabelInfo, from_arrays, split_arrays
from moe_tf.registry import DATASETS


def generate(size, users, items, latent_dim, context_dim, click_bias, conversion_bias, seed):
    """Returns ({user, item, context}, {click, conversion, purchase, conversion_all}) as numpy arrays."""
    rng = np.random.default_rng(seed)
    world = _world(rng, users, items, latent_dim, context_dim)
    return impressions(rng, world, size, click_bias, conversion_bias)


def generate_chunks(size, chunk, users, items, latent_dim, context_dim, click_bias, conversion_bias, seed):
    """The impressions of one world in chunks of at most `chunk` (a log larger than memory, written piece by piece):
    yields (features, labels) as `generate` returns them."""
    rng = np.random.default_rng(seed)
    world = _world(rng, users, items, latent_dim, context_dim)
    for start in range(0, size, chunk):
        yield impressions(rng, world, min(chunk, size - start), click_bias, conversion_bias)


def _world(rng, users, items, latent_dim, context_dim):
    """The latent user and item vectors and the context weights."""
    u = rng.normal(0, 1 / np.sqrt(latent_dim), (users, latent_dim)) * np.sqrt(2)
    v = rng.normal(0, 1 / np.sqrt(latent_dim), (items, latent_dim)) * np.sqrt(2)
    v_conversion = rng.normal(0, 1 / np.sqrt(latent_dim), (items, latent_dim)) * np.sqrt(2)
    w_click, w_conversion = rng.normal(0, 0.5, context_dim), rng.normal(0, 0.5, context_dim)
    return u, v, v_conversion, w_click, w_conversion


def impressions(rng, world, size, click_bias, conversion_bias):
    u, v, v_conversion, w_click, w_conversion = world
    user = rng.zipf(1.3, size) % len(u)  # a long tail of users and items, as in logs
    item = rng.zipf(1.2, size) % len(v)
    context = rng.normal(size=(size, len(w_click))).astype(np.float32)
    affinity = np.sum(u[user] * v[item], axis=1)
    click_logit = 2.0 * affinity + context @ w_click + click_bias
    conversion_logit = 1.5 * np.sum(u[user] * v_conversion[item], axis=1) + affinity + context @ w_conversion
    click = (rng.random(size) < 1 / (1 + np.exp(-click_logit))).astype(np.int64)
    conversion_all = (rng.random(size) < 1 / (1 + np.exp(-(conversion_logit + conversion_bias)))).astype(np.int64)
    features = {"user": user.astype(np.int64), "item": item.astype(np.int64), "context": context}
    labels = {
        "click": click,
        "conversion": np.where(click == 1, conversion_all, -1),
        "purchase": click * conversion_all,
        "conversion_all": conversion_all,
    }
    return features, labels


@DATASETS.register("synthetic_ctr_cvr")
class SyntheticCtrCvrSource(DataSource):
    """See the module docstring."""

    class Config(StrictModel):
        type: Literal["synthetic_ctr_cvr"] = Field(
            "synthetic_ctr_cvr",
            description="impressions → clicks → conversions with sample-selection bias (inputs `user`, `item` "
            "categorical, `context` numeric; labels `click`, `conversion` (-1 where not clicked), "
            "`purchase` and `conversion_all`, every impression's outcome as if clicked)",
        )
        size: int = Field(200_000, ge=100, description="impressions")
        users: int = Field(2000, ge=2, description="distinct user ids")
        items: int = Field(1000, ge=2, description="distinct item ids")
        latent_dim: int = Field(8, ge=1, description="width of the hidden user and item factors")
        context_dim: int = Field(8, ge=1, description="width of the numeric `context` input")
        click_bias: float = Field(-3.0, description="sets the click rate (-3: about 10 %)")
        conversion_bias: float = Field(-1.0, description="sets the conversion rate of clicks")
        seed: int | None = Field(None, description="default: experiment.seed")
        eval_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of the impressions in the eval split")
        test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share of the impressions in the test split")

    def load(self):
        cfg = self.config
        seed = self.seed if cfg.seed is None else cfg.seed
        features, labels = generate(
            cfg.size, cfg.users, cfg.items, cfg.latent_dim, cfg.context_dim, cfg.click_bias, cfg.conversion_bias, seed
        )
        fractions = {"eval": cfg.eval_fraction, "test": cfg.test_fraction, "train": 0.0}
        arrays = split_arrays(features, labels, fractions, seed)
        binary = LabelInfo(2, ["0", "1"])
        specs = {
            "user": FeatureSpec("int64", (), "categorical", {"missing": []}),
            "item": FeatureSpec("int64", (), "categorical", {"missing": []}),
            "context": FeatureSpec("float32", (cfg.context_dim,), "numeric"),
        }
        return from_arrays(arrays, {name: binary for name in labels}, specs)
