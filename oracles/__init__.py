"""Oracles. Importing this package registers every bundled oracle."""

from oracles import label_studio, labels_file, simulated  # noqa: F401  (label_studio imports its SDK only on first connect)
