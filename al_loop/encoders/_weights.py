"""Weights files: their sha256 (cached per file state), pinned-digest checks, state_dict loading with one-line errors.

Every torch encoder's :meth:`~al_loop.encoders.base.Encoder.version` digests
the sha256 of the weights it runs, so a fine-tuned or swapped file never reuses
embeddings cached for another. Hashing a 90 MB file takes a fraction of a
second; the result is cached in this process per (real path, size, mtime), so
a file rewritten in place is hashed again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from al_loop.errors import ConfigError

_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file, computed once per (real path, size, mtime) in this process."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    digest = _HASHES.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(real, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        digest = _HASHES[key] = h.hexdigest()
    return digest


def verify_pinned(path: str | os.PathLike[str], expected: str, fix: str) -> str:
    """Check a packaged weights file against its pinned sha256; return the digest.

    Raises
    ------
    ConfigError
        One line naming the file, the expected and the found digest, and ``fix``.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"weights file {path} is missing; {fix}")
    found = file_sha256(path)
    if found != expected:
        raise ConfigError(f"weights file {path} has sha256 {found}, expected {expected} (corrupted or replaced); "
                          f"{fix}")
    return found


def user_weights(encoder: str, path: str | None) -> Path:
    """The user's ``--encoder-weights`` file as a Path, or a one-line ConfigError when it is absent."""
    if path is None:
        raise ConfigError(f"encoder {encoder!r} needs a weights file of yours (a state_dict saved with torch.save); "
                          "pass --encoder-weights PATH (nothing can be downloaded here)")
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"encoder {encoder!r}: weights file {path} does not exist; pass --encoder-weights PATH "
                          "to a state_dict file")
    return p


def read_state_dict(encoder: str, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a state_dict from ``.safetensors`` or a torch file (``weights_only``: no code runs).

    A checkpoint dict holding the state_dict under ``"state_dict"`` or ``"model"`` is unwrapped.
    """
    import torch

    try:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and safetensors errors have no common base
        raise ConfigError(f"encoder {encoder!r}: weights file {path} cannot be read as a state_dict "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); save it with "
                          "torch.save(model.state_dict(), PATH)") from None
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"encoder {encoder!r}: weights file {path} holds no state_dict (a mapping of names to "
                          "tensors); save it with torch.save(model.state_dict(), PATH)")
    return dict(obj)


def _first(keys: Iterable[str], n: int = 3) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_into(module: Any, state: Mapping[str, Any], encoder: str, path: str | os.PathLike[str],
              optional: Iterable[str] = ()) -> None:
    """``module.load_state_dict(state)`` strictly, or one line naming the file and the first bad keys.

    ``optional`` names parameters of ``module`` the file may lack (they keep their values).
    """
    own = module.state_dict()
    optional = set(optional)
    missing = [k for k in own if k not in state and k not in optional]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {_first(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_first(unexpected)}")
        if wrong:
            k = sorted(wrong)[0]
            parts.append(f"wrong shapes {_first(wrong)} ({k}: file {tuple(state[k].shape)}, model "
                         f"{tuple(own[k].shape)})")
        raise ConfigError(f"encoder {encoder!r}: weights file {path} does not fit the architecture: "
                          f"{'; '.join(parts)}; pass a state_dict saved from the same model")
    module.load_state_dict(state, strict=not optional)
