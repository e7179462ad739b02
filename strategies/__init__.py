"""Query strategies. Importing this package registers every bundled strategy."""

from strategies import (  # noqa: F401  # noqa: F401  # noqa: F401
    badge,
    cal,
    fass,
    kcenter,
    prism,
    probcover,
    similar,
    switch,
    typiclust,
    uncertainty,  # noqa: F401
)
