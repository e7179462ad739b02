"""Encoders: images and texts into embeddings (the interface in :mod:`al_loop.encoders.base`).

``get_encoder(spec, options)`` resolves a name from the ``ENCODERS`` registry
(``efficientnet-lite0``, ``minilm``, ``pixels``, ``tfidf`` and plugins), or a
prefixed spec for a model whose weights the user has: ``torchvision:NAME``,
``timm:NAME``, ``hf:NAME`` (with ``EncoderOptions.weights``). Importing this
package imports neither torch nor the model libraries: each encoder imports
what it needs when it is built, and a missing extra is one line naming the pip
command.
"""

from __future__ import annotations

from al_loop.encoders.base import MODALITIES, Encoder, EncoderOptions
from al_loop.errors import ConfigError
from al_loop.registry import ENCODERS

#: prefixes of specs that name a model of a library (``timm:resnet18``)
PREFIXES = ("torchvision", "timm", "hf")


def get_encoder(spec: str, options: EncoderOptions | None = None) -> Encoder:
    """Build the encoder named by ``spec`` (one-line ConfigError for an unknown one)."""
    options = options or EncoderOptions()
    prefix, sep, rest = spec.partition(":")
    if sep:
        if prefix not in PREFIXES:
            raise ConfigError(f"unknown encoder prefix {prefix!r} in {spec!r}; use torchvision:NAME, timm:NAME or "
                              "hf:NAME")
        if not rest:
            raise ConfigError(f"encoder {spec!r} names no model; e.g. {prefix}:resnet18")
        return ENCODERS.get(prefix + ":")(rest, options)
    return ENCODERS.get(spec)(options)


__all__ = ["MODALITIES", "PREFIXES", "Encoder", "EncoderOptions", "get_encoder"]

# the built-in encoders register themselves (no torch at import)
from al_loop.encoders import efficientnet_lite as _efficientnet_lite  # noqa: E402,F401
from al_loop.encoders import library_models as _library_models  # noqa: E402,F401
from al_loop.encoders import simple as _simple  # noqa: E402,F401
from al_loop.encoders import text_models as _text_models  # noqa: E402,F401
