"""The finetune learner on a tiny image folder written by the test (real EfficientNet-Lite0 weights, 32 px)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from al_loop.encoders import EncoderOptions, get_encoder
from al_loop.errors import ConfigError
from al_loop.learners.finetune import FinetuneConfig, FinetuneLearner, random_resized_crop
from al_loop.media import open_rgb
from al_loop.pool import Pool
from al_loop.registry import LEARNERS

IMAGE_SIZE = 32
CLASSES = ("blue_square", "red_disc")


def draw(kind: str, k: int) -> Image.Image:
    """A red disc or a blue square of varying size and place on a grey background; odd image sizes."""
    rng = np.random.default_rng([k, len(kind)])
    w, h = int(rng.integers(40, 70)), int(rng.integers(40, 70))
    img = Image.new("RGB", (w, h), (int(rng.integers(110, 150)),) * 3)
    s = int(min(w, h) * rng.uniform(0.45, 0.7))
    x0, y0 = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
    d = ImageDraw.Draw(img)
    if kind == "red_disc":
        d.ellipse((x0, y0, x0 + s, y0 + s), fill=(220, int(rng.integers(0, 60)), 30))
    else:
        d.rectangle((x0, y0, x0 + s, y0 + s), fill=(30, int(rng.integers(0, 60)), 220))
    return img


def write_folder(root: Path, per_class: int, offset: int = 0) -> list[str]:
    paths = []
    for c in CLASSES:
        (root / c).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            rel = f"{c}/{k:02d}.png"
            draw(c, offset + k).save(root / rel)
            paths.append(rel)
    return paths


def image_pool(root: Path, paths: list[str], encoder: str = "efficientnet-lite0") -> Pool:
    options = EncoderOptions(image_size=IMAGE_SIZE)
    X = get_encoder(encoder, options).encode([open_rgb(root / p) for p in paths])
    y = np.asarray([CLASSES.index(p.split("/")[0]) for p in paths], dtype=np.int64)
    return Pool(X=X, ids=np.arange(len(paths), dtype=np.int64), classes=CLASSES, y=y, kind="image",
                name=root.name, paths=paths, media_root=str(root), encoder=encoder, encoder_options=options)


@pytest.fixture(scope="module")
def pools(tmp_path_factory) -> tuple[Pool, Pool]:
    """(pool of 8 images per class, held-out pool of 4 other images per class)."""
    base = tmp_path_factory.mktemp("shapes")
    train = image_pool(base / "pool", write_folder(base / "pool", 8))
    held = image_pool(base / "held", write_folder(base / "held", 4, offset=100))
    return train, held


def fitted(pool: Pool, seed: int = 0, **cfg: object) -> FinetuneLearner:
    learner = FinetuneLearner(FinetuneConfig(**cfg))  # type: ignore[arg-type]
    learner.fit(pool, pool.ids, pool.hidden_labels(pool.ids), seed=seed)
    return learner


def test_registered_and_checks_the_pool(pools) -> None:
    pool, _ = pools
    learner = LEARNERS.get("finetune")(pool)
    assert isinstance(learner, FinetuneLearner)
    assert learner.capabilities == {"proba", "embed", "grad"}
    learner.check_pool(pool)


def test_beats_chance_on_held_out_images(pools) -> None:
    pool, held = pools
    proba = fitted(pool).predict_proba(held, held.ids)
    assert proba.shape == (len(held), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert (proba.argmax(axis=1) == held.hidden_labels(held.ids)).mean() >= 0.75


def test_frozen_part_unchanged_last_block_trained(pools) -> None:
    pool, _ = pools
    learner = FinetuneLearner(FinetuneConfig(epochs=2))
    learner._setup(pool)
    assert learner.frozen_ is not None and learner.pretrained_ is not None
    frozen_before = {k: v.clone() for k, v in learner.frozen_.state_dict().items()}
    pretrained = {k: v.clone() for k, v in learner.pretrained_.state_dict().items()}
    learner.fit(pool, pool.ids, pool.hidden_labels(pool.ids), seed=0)
    for k, v in learner.frozen_.state_dict().items():
        assert torch.equal(v, frozen_before[k]), k
    assert learner.model_ is not None
    trained = learner.model_.state_dict()
    changed = [k for k, v in pretrained.items() if v.is_floating_point() and not torch.equal(trained[k], v)]
    assert any(k.startswith("blocks.") for k in changed)  # the last MBConv block
    assert any(k.startswith("conv_head") for k in changed)
    # the untouched copy (the next fit's start) and the encoder's own network are not trained
    for k, v in learner.pretrained_.state_dict().items():
        assert torch.equal(v, pretrained[k]), k
    again = image_pool(Path(pool.media_root or ""), list(pool.paths or []))
    np.testing.assert_allclose(again.X, pool.X, atol=1e-6)


def test_same_seed_same_proba_other_seed_differs(pools) -> None:
    pool, held = pools
    a = fitted(pool, seed=3).predict_proba(held, held.ids)
    b = fitted(pool, seed=3).predict_proba(held, held.ids)
    c = fitted(pool, seed=4).predict_proba(held, held.ids)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_fit_leaves_the_global_rng_alone(pools) -> None:
    pool, _ = pools
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fitted(pool, epochs=1)
    assert torch.equal(torch.rand(3), expected)


def test_second_predict_does_not_run_the_trunk(pools) -> None:
    pool, held = pools
    learner = fitted(pool, epochs=1)
    assert learner.frozen_ is not None
    seen: list[int] = []
    hook = learner.frozen_.register_forward_hook(lambda m, inp, out: seen.append(len(inp[0])))
    try:
        first = learner.predict_proba(pool, pool.ids)
        assert sum(seen) == len(pool)
        seen.clear()
        second = learner.predict_proba(pool, pool.ids)
        learner.embed(pool, pool.ids[:5])
        learner.grad_embed(pool, pool.ids)
        assert seen == []
        np.testing.assert_array_equal(first, second)
        learner.fit(pool, pool.ids[:10], pool.hidden_labels(pool.ids[:10]), seed=1)  # a new round
        seen.clear()
        learner.predict_proba(pool, pool.ids)
        assert seen == []  # the trunk's outputs outlive a fit
        learner.predict_proba(held, held.ids)
        assert sum(seen) == len(held)
    finally:
        hook.remove()


def test_labeled_images_decoded_once_at_a_margin_above_the_image_size(pools, monkeypatch) -> None:
    pool, _ = pools
    import al_loop.media as media

    opened: list[str] = []
    real = media.open_rgb
    monkeypatch.setattr(media, "open_rgb", lambda p: opened.append(str(p)) or real(p))
    learner = fitted(pool, epochs=1)
    learner.fit(pool, pool.ids, pool.hidden_labels(pool.ids), seed=1)
    assert len(opened) == len(pool)  # the second fit decodes nothing
    sides = {tuple(t.shape) for t in learner._images.values()}
    assert sides == {(3, 37, 37)} and all(t.dtype == torch.uint8 for t in learner._images.values())


def test_embed_and_grad_embed_shapes_and_formula(pools) -> None:
    pool, held = pools
    learner = fitted(pool, epochs=2)
    h = learner.embed(held, held.ids)
    p = learner.predict_proba(held, held.ids)
    g = learner.grad_embed(held, held.ids)
    assert h.shape == (len(held), 1280) and g.shape == (len(held), 2 * 1280)
    assert not np.allclose(h, held.X, atol=1e-3)  # fine-tuned, not the pretrained embedding
    resid = p.copy()
    resid[np.arange(len(p)), p.argmax(axis=1)] -= 1.0
    np.testing.assert_allclose(g, (resid[:, :, None] * h[:, None, :]).reshape(len(p), -1), atol=1e-9)


def test_a_class_without_labels_gets_probability_zero(tmp_path) -> None:
    root = tmp_path / "three"
    paths = write_folder(root, 3)
    pool = image_pool(root, paths)
    pool = Pool(X=pool.X, ids=pool.ids, classes=(*CLASSES, "green"), y=pool.y, kind="image", paths=pool.paths,
                media_root=pool.media_root, encoder=pool.encoder, encoder_options=pool.encoder_options)
    learner = fitted(pool, epochs=1)
    proba = learner.predict_proba(pool, pool.ids)
    assert proba.shape == (6, 3)
    np.testing.assert_array_equal(proba[:, 2], 0.0)


def test_pool_without_files_refused(pools) -> None:
    pool, _ = pools
    bare = Pool(X=pool.X, ids=pool.ids, classes=pool.classes, y=pool.y)
    with pytest.raises(ConfigError, match=r"learner finetune needs image files.*--images DIR.*--encoder efficientnet"):
        FinetuneLearner().check_pool(bare)


def test_pool_without_encoder_refused(pools) -> None:
    pool, _ = pools
    raw = Pool(X=pool.X, ids=pool.ids, classes=pool.classes, y=pool.y, paths=pool.paths, media_root=pool.media_root)
    with pytest.raises(ConfigError, match=r"needs the image encoder.*--images DIR.*--encoder efficientnet-lite0"):
        FinetuneLearner().check_pool(raw)


def test_pool_of_a_non_network_encoder_refused(pools) -> None:
    pool, _ = pools
    pixels = Pool(X=pool.X, ids=pool.ids, classes=pool.classes, y=pool.y, paths=pool.paths,
                  media_root=pool.media_root, encoder="pixels")
    with pytest.raises(ConfigError, match=r"encoder 'pixels' has none.*--encoder efficientnet-lite0"):
        FinetuneLearner().check_pool(pixels)


def test_bad_config_refused() -> None:
    with pytest.raises(ConfigError, match="epochs >= 1"):
        FinetuneConfig(epochs=0)
    with pytest.raises(ConfigError, match="crop_scale"):
        FinetuneConfig(crop_scale=(0.8, 0.5))


def test_random_resized_crop_is_seeded_and_keeps_the_range() -> None:
    img = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    a = random_resized_crop(img, 32, (0.6, 1.0), torch.Generator().manual_seed(0))
    b = random_resized_crop(img, 32, (0.6, 1.0), torch.Generator().manual_seed(0))
    c = random_resized_crop(img, 32, (0.6, 1.0), torch.Generator().manual_seed(1))
    assert a.shape == (3, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_missing_file_at_predict_is_one_line(pools, tmp_path) -> None:
    pool, _ = pools
    learner = fitted(pool, epochs=1)
    gone = Pool(X=pool.X[:1], ids=np.array([0]), classes=pool.classes, paths=["nope.png"],
                media_root=str(tmp_path), encoder=pool.encoder, encoder_options=pool.encoder_options)
    with pytest.raises(Exception, match=r"cannot read image .*nope.png.*replace or remove the file") as info:
        learner.predict_proba(gone, gone.ids)
    assert "\n" not in str(info.value)
    assert os.path.basename(str(tmp_path)) in str(info.value)


def test_image_folder_pool_carries_options_and_split_files(tmp_path) -> None:
    from al_loop.datasets import load_dataset, make_pool

    root = tmp_path / "folder"
    write_folder(root, 6)
    pool = make_pool(load_dataset("images", root=str(root), image_size=IMAGE_SIZE), test_fraction=0.25,
                     val_fraction=0.25)
    assert pool.encoder_options is not None and pool.encoder_options.image_size == IMAGE_SIZE
    assert pool.test_paths is not None and pool.val_paths is not None and pool.X_test is not None
    assert len(pool.test_paths) == len(pool.X_test) and len(pool.val_paths) == len(pool.X_val)
    assert not set(pool.test_paths) & set(pool.paths or []) and not set(pool.val_paths) & set(pool.paths or [])
    enc = get_encoder("efficientnet-lite0", EncoderOptions(image_size=IMAGE_SIZE))
    np.testing.assert_allclose(enc.encode([open_rgb(root / p) for p in pool.test_paths]), pool.X_test, atol=1e-5)
    assert [CLASSES[int(c)] for c in pool.y_test] == [p.split("/")[0] for p in pool.test_paths]


def test_simulate_images_with_finetune_end_to_end(tmp_path, capsys, monkeypatch) -> None:
    from al_loop.store import Store
    from tests.test_cli import run_cli

    root = tmp_path / "shapes"
    write_folder(root, 10)
    db = tmp_path / "ft.sqlite"
    code, out, err = run_cli(["simulate", "--images", str(root), "--encoder", "efficientnet-lite0", "--image-size",
                              str(IMAGE_SIZE), "--learner", "finetune", "--strategy", "margin", "--rounds", "1",
                              "--init", "4", "--batch", "4", "--db", str(db)], capsys, monkeypatch)
    assert code == 0, err
    store = Store(db, readonly=True)
    metrics = store.metrics(1)
    # rounds 1 and 2 trained the fine-tuned network and scored it on the test split's image files
    assert [m.round for m in metrics] == [1, 2] and [m.n_labels for m in metrics] == [4, 8]
    assert all(m.accuracy is not None for m in metrics)
    assert store.config(1).learner == "finetune"


def test_simulate_finetune_on_a_table_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch) -> None:
    from tests.test_cli import one_line_error, run_cli

    db = tmp_path / "no.sqlite"
    code, _, err = run_cli(["simulate", "--dataset", "digits", "--learner", "finetune", "--strategy", "margin",
                            "--rounds", "1", "--db", str(db)], capsys, monkeypatch)
    line = one_line_error(err)
    assert code == 2 and "learner finetune needs image files" in line and "--images DIR" in line
    assert not db.exists()
