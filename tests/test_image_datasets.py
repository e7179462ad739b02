"""The `images` dataset (folders of real files through an encoder) and texts through encoders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.feature_extraction.text import TfidfVectorizer

from al_loop.datasets import load_dataset, make_pool
from al_loop.encoders import EncoderOptions, get_encoder
from al_loop.errors import ConfigError, DataError

COLOURS = {"cat": (220, 30, 30), "dog": (30, 30, 220)}


def _photos(root: Path) -> Path:
    """Six files of every kind: RGBA PNG, grey, palette, WebP, BMP, odd sizes, a nested folder."""
    rgba = np.zeros((5, 5, 4), dtype=np.uint8)
    rgba[..., :3], rgba[..., 3] = COLOURS["cat"], 255
    pal = Image.new("P", (3, 11), 1)
    pal.putpalette([0, 0, 0, 30, 30, 220] + [0] * (256 * 3 - 6))
    files = {
        "cat/1.png": Image.fromarray(rgba, mode="RGBA"),
        "cat/2.jpg": Image.new("RGB", (7, 300), COLOURS["cat"]),
        "cat/nested/deeper/3.webp": Image.new("RGB", (9, 4), COLOURS["cat"]),
        "dog/1.bmp": Image.new("RGB", (300, 7), COLOURS["dog"]),
        "dog/2.png": pal,
        "dog/3.png": Image.new("L", (8, 8), 40),
    }
    for rel, img in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        img.save(root / rel, **({"lossless": True} if rel.endswith(".webp") else {}))
    (root / "dog" / "labels.csv").write_text("not an image")
    return root


def test_a_labeled_folder_through_pixels(tmp_path: Path) -> None:
    ds = load_dataset("images", root=str(_photos(tmp_path / "photos")), encoder="pixels", image_size=4)
    assert ds.paths == ["cat/1.png", "cat/2.jpg", "cat/nested/deeper/3.webp", "dog/1.bmp", "dog/2.png", "dog/3.png"]
    assert ds.classes == ("cat", "dog") and ds.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.X.shape == (6, 48) and ds.X.dtype == np.float32
    np.testing.assert_allclose(ds.X[0][:3], np.array(COLOURS["cat"]) / 255, atol=1e-6)
    np.testing.assert_allclose(ds.X[4][:3], np.array(COLOURS["dog"]) / 255, atol=1e-6)
    assert ds.kind == "image" and ds.name == "photos" and ds.encoder == "pixels"
    assert ds.media_root == str((tmp_path / "photos").resolve()) and ds.ids is None and ds.skipped == []
    inputs, version = ds.digest.split(":")
    assert len(inputs) == 32 and version == get_encoder("pixels", EncoderOptions(image_size=4)).version()
    assert any("1 hidden or non-image file(s)" in n for n in ds.notes)
    pool = make_pool(ds, test_fraction=0.34, split_seed=0)
    assert [ds.paths[int(i)] for i in pool.ids] == pool.paths
    assert pool.media_root == ds.media_root and pool.encoder == "pixels" and pool.digest == ds.digest


def test_a_corrupt_file_is_one_line_naming_it(tmp_path: Path) -> None:
    root = _photos(tmp_path / "photos")
    (root / "cat" / "0.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError) as err:
        load_dataset("images", root=str(root), encoder="pixels", image_size=4)
    assert str(err.value) == ("cannot read image cat/0.jpg (cannot identify image file); fix or remove it, or pass "
                              "--skip-bad")


def test_skip_bad_keeps_the_listing_ids_and_fixing_the_file_renumbers_nothing(tmp_path: Path) -> None:
    root = _photos(tmp_path / "photos")
    (root / "cat" / "2.jpg").write_bytes(b"broken")
    ds = load_dataset("images", root=str(root), encoder="pixels", image_size=4, skip_bad=True)
    assert ds.ids.tolist() == [0, 2, 3, 4, 5]
    assert ds.skipped == [("cat/2.jpg", "cannot identify image file")]
    assert "cat/2.jpg" not in ds.paths and len(ds.paths) == len(ds.X) == len(ds.y) == 5
    assert any("1 unreadable image(s) skipped (--skip-bad)" in n for n in ds.notes)
    pool = make_pool(ds, test_fraction=0.4, split_seed=0)
    assert pool.catalogue is not None and pool.catalogue.skipped == ds.skipped
    Image.new("RGB", (7, 300), COLOURS["cat"]).save(root / "cat" / "2.jpg")
    fixed = load_dataset("images", root=str(root), encoder="pixels", image_size=4)
    assert fixed.ids is None and fixed.paths[1] == "cat/2.jpg"
    for gid, rel in zip(ds.ids.tolist(), ds.paths, strict=True):
        assert fixed.paths[gid] == rel


def test_an_unlabeled_folder_needs_class_names(tmp_path: Path) -> None:
    root = _photos(tmp_path / "photos")
    Image.new("RGB", (3, 3)).save(root / "loose.png")
    ds = load_dataset("images", root=str(root), encoder="pixels", labeled=False, classes=["cat", "dog"])
    assert ds.y is None and ds.classes == ("cat", "dog") and len(ds.paths) == 7 and ds.X.shape == (7, 3072)
    with pytest.raises(ConfigError, match=r"unlabeled images need the class names; pass --labels"):
        load_dataset("images", root=str(root), encoder="pixels", labeled=False)


def test_a_text_encoder_on_images_and_an_image_encoder_on_texts_are_refused(tmp_path: Path) -> None:
    root = _photos(tmp_path / "photos")
    with pytest.raises(ConfigError, match=r"encoder 'tfidf' reads texts, not images; pick an image encoder \(--encoder efficientnet-lite0 or pixels\)"):
        load_dataset("images", root=str(root), encoder="tfidf")
    texts = tmp_path / "t.csv"
    texts.write_text("text,label\ngood film,pos\nbad film,neg\n")
    with pytest.raises(ConfigError, match=r"encoder 'pixels' reads images, not texts; pick a text encoder"):
        load_dataset("text", path=str(texts), encoder="pixels")
    with pytest.raises(ConfigError, match=r"dataset 'images' needs a folder: pass --images DIR"):
        load_dataset("images")


def _reviews(path: Path) -> Path:
    rows = [("a warm and funny film", "pos"), ("dull and far too long", "neg"), ("funny, warm, a joy", "pos"),
            ("long, dull, a chore", "neg"), ("the best film this year", "pos"), ("the worst film this year", "neg")]
    path.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in rows))
    return path


def test_text_default_is_todays_tfidf_and_the_tfidf_encoder_gives_the_same(tmp_path: Path) -> None:
    path = _reviews(tmp_path / "reviews.csv")
    ds = load_dataset("text", path=str(path))
    texts = [line.rsplit(",", 1)[0].strip('"') for line in path.read_text().splitlines()[1:]]
    today = np.asarray(TfidfVectorizer(max_features=5000, sublinear_tf=True).fit_transform(texts).todense(),
                       dtype=np.float32)
    np.testing.assert_array_equal(ds.X, today)
    assert ds.encoder is None and ds.digest is None
    np.testing.assert_array_equal(get_encoder("tfidf").encode(texts), today)
    assert get_encoder("tfidf").corpus_fitted
    wordless = tmp_path / "wordless.csv"
    wordless.write_text("text,label\na b,pos\n? !,neg\n")
    with pytest.raises(DataError, match=r"^TF-IDF found no words in the 2 texts .*another --encoder \(minilm\)$"):
        load_dataset("text", path=str(wordless))


@pytest.fixture(scope="module")
def minilm_reviews(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    path = _reviews(tmp_path_factory.mktemp("texts") / "reviews.csv")
    return path, load_dataset("text", path=str(path), encoder="minilm")


def test_texts_through_minilm_are_cached_under_the_files_digest(minilm_reviews, tmp_path: Path) -> None:
    path, ds = minilm_reviews
    assert ds.X.shape == (6, 384) and ds.X.dtype == np.float32 and ds.encoder == "minilm"
    assert ds.y.tolist() == [1, 0, 1, 0, 1, 0] and ds.texts[0] == "a warm and funny film"
    again = load_dataset("text", path=str(path), encoder="minilm")
    np.testing.assert_array_equal(again.X, ds.X)
    assert isinstance(again.X, np.memmap)  # read from the cache
    lines: list[str] = []
    path.write_text(path.read_text().replace("the best film", "the finest film"))
    changed = load_dataset("text", path=str(path), encoder="minilm", log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("reviews.csv changed since its embeddings were cached")
    assert not np.allclose(changed.X[4], ds.X[4]) and np.allclose(changed.X[0], ds.X[0], atol=1e-5)


def test_empty_text_rows_are_named_before_any_encoding(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,label\ngood,pos\n  ,neg\nbad,neg\n")
    with pytest.raises(DataError) as err:
        load_dataset("text", path=str(path), encoder="minilm")
    assert str(err.value) == (f"1 row(s) of {path} have no text in 'text' (first: data row 1); fill them or remove "
                              "those rows")


def test_a_folder_through_efficientnet_lite0_at_32_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AL_LOOP_CACHE_DIR", str(tmp_path / "cache"))
    root = _photos(tmp_path / "photos")
    ds = load_dataset("images", root=str(root), encoder="efficientnet-lite0", image_size=32, chunk=4)
    assert ds.X.shape == (6, 1280) and ds.X.dtype == np.float32 and np.isfinite(ds.X).all()
    assert ds.encoder == "efficientnet-lite0" and ds.y.tolist() == [0, 0, 0, 1, 1, 1]
    entries = [p for p in (tmp_path / "cache").iterdir() if p.name != "sources"]
    state = json.loads((entries[0] / "progress.json").read_text())
    assert len(entries) == 1 and state["complete"] and state["d"] == 1280 and state["n"] == 6
    # a hit in a new process reads the cache without importing torch (the model is never built)
    code = ("import sys; from al_loop.datasets import load_dataset; "
            f"ds = load_dataset('images', root={str(root)!r}, encoder='efficientnet-lite0', image_size=32); "
            "print(ds.X.shape, 'torch' in sys.modules)")
    env = {**os.environ, "AL_LOOP_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["(6,", "1280)", "False"]
