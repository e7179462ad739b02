"""Stopping without validation labels: per-round signals and the rules that read them (pure).

A run that tracks stopping keeps a fixed *stop set*: a sample of pool items
drawn once from the run's seed (Bloodgood and Vijay-Shanker 2009 call it so;
it needs no labels). After each training the model predicts the stop set and
the round records four signals (:class:`Signals`):

- ``kappa``: Cohen's kappa between this model's and the previous model's
  predicted classes on the stop set (None for the first model);
- ``changed``: the share of stop-set items whose predicted class changed since
  the previous model (None for the first model);
- ``max_uncertainty`` / ``mean_uncertainty``: the largest and the mean
  normalised entropy ``H(p) / log C`` (in [0, 1]) over the stop-set items that
  are still unlabeled (None when none is left).

Rules (``--stop NAME[:key=value,...]``, any number; the first to fire ends
the run, its reason recorded with the run):

``stable-predictions`` (``window=3``, ``kappa=0.99``)
    Bloodgood and Vijay-Shanker (2009), "A method for stopping active learning
    based on stabilizing predictions and the need for user-adjustable
    stopping", CoNLL: stop once the mean kappa between successive models over
    the last ``window`` rounds reaches ``kappa``. The paper's defaults.
``max-uncertainty`` (``threshold=0.5``)
    Zhu, Wang and Hovy (2008), "Multi-criteria-based strategy to stop active
    learning for data annotation", COLING; Zhu et al. (2010), ACM TSLP 6(3):
    stop once the most uncertain unlabeled item's uncertainty is at most
    ``threshold``.
``overall-uncertainty`` (``threshold=0.1``)
    Same papers: stop once the mean uncertainty of the unlabeled items is at
    most ``threshold``.
``classification-change`` (``threshold=0.0``)
    Zhu, Wang and Hovy (2008): stop once no unlabeled item's predicted class
    changed between two successive models (``threshold``: the share of the
    stop set allowed to change, 0 = none, the paper's rule).

Deliberate differences from the papers, for runs at 10^6 items and for
thresholds that mean the same for any number of classes: every signal is
measured on the stop set (default 2,000 items, the whole pool when smaller)
rather than on the whole unlabeled pool; uncertainty is entropy divided by
``log C`` (the papers use entropy in nats); kappa and change are measured on
the whole stop set, labeled items included, as Bloodgood and Vijay-Shanker do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from al_loop.errors import ConfigError


@dataclass(frozen=True)
class Signals:
    """The stopping signals of one evaluated round (see the module docstring)."""

    round: int
    n_labels: int
    kappa: float | None = None
    changed: float | None = None
    max_uncertainty: float | None = None
    mean_uncertainty: float | None = None

    @classmethod
    def of(cls, row: Any) -> Signals:
        """From any object with the same attributes (a ``stop_signals`` row of the store)."""
        return cls(int(row.round), int(row.n_labels), row.kappa, row.changed, row.max_uncertainty,
                   row.mean_uncertainty)


def stop_set_ids(pool_ids: np.ndarray, size: int, seed: int) -> np.ndarray:
    """The run's stop set: ``size`` pool ids drawn once from ``seed`` (sorted), or the whole pool.

    Parameters
    ----------
    pool_ids : ndarray of int, shape (N,)
        Global pool ids.
    size : int
        0, or at least N: every pool id.
    """
    ids = np.sort(np.asarray(pool_ids, dtype=np.int64))
    if size == 0 or size >= len(ids):
        return ids
    rng = np.random.default_rng([int(seed), 0x5709])  # its own stream: the selections do not change
    return np.sort(rng.choice(ids, size=size, replace=False))


RULES: dict[str, dict[str, float]] = {
    "stable-predictions": {"window": 3, "kappa": 0.99},
    "max-uncertainty": {"threshold": 0.5},
    "overall-uncertainty": {"threshold": 0.1},
    "classification-change": {"threshold": 0.0},
}


@dataclass(frozen=True)
class StopRule:
    """A parsed ``--stop`` rule: its name and every parameter (defaults filled in)."""

    name: str
    params: dict[str, float] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        """The canonical text of the rule, e.g. ``stable-predictions:kappa=0.99,window=3``."""
        return self.name + ":" + ",".join(f"{k}={_num(v)}" for k, v in sorted(self.params.items()))


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def parse_rule(spec: str) -> StopRule:
    """Check one ``--stop`` text and return the rule with its defaults filled in.

    Raises
    ------
    ConfigError
        Unknown rule or parameter, a value that is not a number or out of range.
    """
    name, _, rest = spec.strip().partition(":")
    if name not in RULES:
        raise ConfigError(f"unknown stopping rule {name!r}; use one of {', '.join(RULES)} "
                          "(e.g. --stop stable-predictions:window=3,kappa=0.99)")
    params = dict(RULES[name])
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or key.strip() not in params:
            raise ConfigError(f"stopping rule {name} takes {', '.join(f'{k}=' for k in params)}, got {part!r}")
        try:
            params[key.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"stopping rule {name}: {key.strip()} must be a number, got {value!r}") from None
    if name == "stable-predictions":
        if params["window"] < 1 or not float(params["window"]).is_integer():
            raise ConfigError(f"stable-predictions: window must be a whole number >= 1, got {_num(params['window'])}")
        if not -1.0 <= params["kappa"] <= 1.0:
            raise ConfigError(f"stable-predictions: kappa must be in [-1, 1], got {_num(params['kappa'])}")
    elif not 0.0 <= params["threshold"] <= 1.0:
        raise ConfigError(f"{name}: threshold must be in [0, 1], got {_num(params['threshold'])}")
    return StopRule(name, params)


def cohen_kappa(a: np.ndarray, b: np.ndarray, n_classes: int) -> float:
    """Cohen's kappa between two label vectors of the same items.

    Parameters
    ----------
    a, b : ndarray of int, shape (n,)
        Class indices in ``[0, n_classes)``.

    Returns
    -------
    float
        ``(p_o - p_e) / (1 - p_e)``; 1.0 when both give one and the same class
        to every item (``p_e = 1``, complete agreement), where the ratio is 0/0.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"kappa needs two non-empty label vectors of one length, got {a.shape} and {b.shape}")
    n = len(a)
    p_o = float((a == b).mean())
    p_e = float(np.dot(np.bincount(a, minlength=n_classes), np.bincount(b, minlength=n_classes))) / (n * n)
    if p_e >= 1.0:
        return 1.0 if p_o >= 1.0 else 0.0
    return (p_o - p_e) / (1.0 - p_e)


def normalised_entropy(proba: np.ndarray) -> np.ndarray:
    """``H(p) / log C`` per row, shape (n,), in [0, 1] (0 for a single class)."""
    p = np.asarray(proba, dtype=np.float64)
    if p.shape[1] < 2:
        return np.zeros(len(p))
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return np.clip(h / np.log(p.shape[1]), 0.0, 1.0)


def round_signals(round_: int, n_labels: int, proba: np.ndarray, unlabeled: np.ndarray,
                  previous: np.ndarray | None) -> tuple[Signals, np.ndarray]:
    """The signals of one round from the model's probabilities on the stop set.

    Parameters
    ----------
    proba : ndarray, shape (s, C)
        Probabilities of the stop set's items (stop-set order).
    unlabeled : ndarray of bool, shape (s,)
        Which stop-set items are unlabeled at this round.
    previous : ndarray of int, shape (s,), or None
        The previous model's predicted classes on the stop set.

    Returns
    -------
    (Signals, ndarray of int, shape (s,))
        The signals and this model's predicted classes (the next round's ``previous``).
    """
    proba = np.asarray(proba, dtype=np.float64)
    pred = proba.argmax(axis=1).astype(np.int64)
    kappa = changed = None
    if previous is not None:
        kappa = cohen_kappa(previous, pred, proba.shape[1])
        changed = float((np.asarray(previous) != pred).mean())
    unc = normalised_entropy(proba[np.asarray(unlabeled, dtype=bool)])
    top = float(unc.max()) if len(unc) else None
    mean = float(unc.mean()) if len(unc) else None
    return Signals(round_, n_labels, kappa, changed, top, mean), pred


def rule_reason(rule: StopRule, history: Sequence[Signals]) -> str | None:
    """Why ``rule`` fires after the last round of ``history`` (oldest first), or None."""
    if not history:
        return None
    last = history[-1]
    p = rule.params
    if rule.name == "stable-predictions":
        window = int(p["window"])
        kappas = [s.kappa for s in history[-window:]]
        if len(kappas) < window or any(k is None for k in kappas):
            return None
        mean = float(np.mean([float(k) for k in kappas if k is not None]))
        if mean >= p["kappa"]:
            return f"predictions stable for {window} round(s): mean kappa {mean:.4f} >= {_num(p['kappa'])}"
        return None
    if rule.name == "max-uncertainty":
        v = last.max_uncertainty
        if v is not None and v <= p["threshold"]:
            return f"max uncertainty {v:.4f} <= {_num(p['threshold'])}"
        return None
    if rule.name == "overall-uncertainty":
        v = last.mean_uncertainty
        if v is not None and v <= p["threshold"]:
            return f"overall uncertainty {v:.4f} <= {_num(p['threshold'])}"
        return None
    v = last.changed
    if v is not None and v <= p["threshold"]:
        return f"classification change {v:.2%} of the stop set <= {p['threshold']:.2%}"
    return None


def first_reason(rules: Sequence[StopRule], history: Sequence[Signals]) -> str | None:
    """The reason of the first rule (in the given order) that fires after the last round, or None."""
    for rule in rules:
        reason = rule_reason(rule, history)
        if reason is not None:
            return f"{rule.name}: {reason}"
    return None


def firing_round(rule: StopRule, history: Sequence[Signals]) -> Signals | None:
    """The first round of a whole run at which ``rule`` would have fired, or None (what-if analysis)."""
    for i in range(len(history)):
        if rule_reason(rule, history[:i + 1]) is not None:
            return history[i]
    return None


def describe(rules: Sequence[StopRule], history: Sequence[Signals]) -> list[str]:
    """Lines for ``campaign status``: the latest signals, then each rule's state."""
    if not history:
        return ["stopping signals: none yet (the first model has not been trained)"]
    last = history[-1]
    parts = []
    if last.kappa is not None:
        parts.append(f"kappa {last.kappa:.4f} vs the previous model")
    if last.changed is not None:
        parts.append(f"{last.changed:.2%} of predictions changed")
    if last.max_uncertainty is not None:
        parts.append(f"max uncertainty {last.max_uncertainty:.3f}")
        parts.append(f"overall uncertainty {last.mean_uncertainty:.3f}")
    lines = [f"stopping signals (round {last.round}, {last.n_labels} labels): " + (", ".join(parts) or "-")]
    stable = next((r for r in rules if r.name == "stable-predictions"), None)
    kappa = stable.params["kappa"] if stable is not None else RULES["stable-predictions"]["kappa"]
    run = 0
    for s in reversed(history):
        if s.kappa is None or s.kappa < kappa:
            break
        run += 1
    if run:
        lines.append(f"predictions stable for {run} round(s): kappa >= {_num(kappa)} each round")
    for rule in rules:
        reason = rule_reason(rule, history)
        lines.append(f"rule {rule.spec}: " + (f"fires: {reason}" if reason else "not met"))
    return lines
