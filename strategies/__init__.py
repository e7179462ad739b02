"""Query strategies. Importing this package registers every bundled strategy."""

from strategies import (  # noqa: F401  (imported for their registration side effect)
    badge,
    bayesian,
    cal,
    fass,
    kcenter,
    multilabel,
    prism,
    probcover,
    similar,
    switch,
    typiclust,
    uncertainty,
)
