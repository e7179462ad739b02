"""Oracles. Importing this package registers every bundled oracle."""

from oracles import simulated  # noqa: F401
