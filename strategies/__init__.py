"""Query strategies. Importing this package registers every bundled strategy."""

from strategies import uncertainty  # noqa: F401
