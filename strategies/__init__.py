"""Query strategies. Importing this package registers every bundled strategy."""

from strategies import uncertainty  # noqa: F401
from strategies import probcover, switch, typiclust  # noqa: F401
from strategies import fass, prism, similar  # noqa: F401
from strategies import badge, cal, kcenter  # noqa: F401
