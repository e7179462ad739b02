"""Every strategy that reads a space runs a round on an image folder embedded by EfficientNet-Lite0.

With ``logreg`` on the cached embeddings (the space is the encoder's 1280-d
features) and with ``finetune`` (the fine-tuned network's features and
gradient embeddings; TypiClust and ProbCover read them through ``space="embed"``).
"""

from __future__ import annotations

import numpy as np
import pytest

from al_loop.api import build_learner, build_strategy
from al_loop.learners.finetune import FinetuneConfig, FinetuneLearner
from al_loop.view import ModelView
from tests.contracts.strategy_contract import make_context
from tests.learners.test_finetune import image_pool, write_folder

STRATEGIES = ["kcenter", "cal", "badge", "typiclust", "probcover", "similar", "prism", "switch"]
#: what a strategy reads from the fine-tuned network instead of the pool's features
ON_FINETUNE = {"typiclust": {"space": "embed"}, "probcover": {"space": "embed"}}
BUDGET = 3


@pytest.fixture(scope="module")
def rounds(tmp_path_factory):
    """(pool, labeled ids, {learner name: fitted learner}) on 2 x 12 images."""
    root = tmp_path_factory.mktemp("embedded") / "shapes"
    pool = image_pool(root, write_folder(root, 12))
    labeled = pool.ids[[0, 1, 2, 12, 13, 14]]
    labels = pool.hidden_labels(labeled)
    logreg = build_learner("logreg", pool)
    finetune = FinetuneLearner(FinetuneConfig(epochs=2))
    for learner in (logreg, finetune):
        learner.check_pool(pool)
        learner.fit(pool, labeled, labels, seed=0)
    return pool, labeled, {"logreg": logreg, "finetune": finetune}


@pytest.mark.parametrize("learner_name", ["logreg", "finetune"])
@pytest.mark.parametrize("name", STRATEGIES)
def test_one_round_on_encoder_embeddings(rounds, name: str, learner_name: str) -> None:
    pool, labeled, learners = rounds
    learner = learners[learner_name]
    assert pool.X.shape == (24, 1280)
    strategy = build_strategy(name, ON_FINETUNE.get(name, {}) if learner_name == "finetune" else {})
    strategy.check_learner(learner.capabilities)
    extra = {"query_ids": pool.ids[[3, 4]]} if name == "prism" else {}
    ctx = make_context(pool, labeled, **extra)
    view = ModelView(pool, learner)
    sel = strategy.select(view, ctx, BUDGET)
    assert len(sel.ids) == BUDGET == len(set(sel.ids.tolist()))
    assert set(sel.ids.tolist()) <= set(ctx.unlabeled_ids.tolist())
    assert np.isfinite(np.asarray(sel.scores, dtype=np.float64)).all()
