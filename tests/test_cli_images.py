"""``al-loop simulate --images DIR`` / ``--texts FILE`` with encoders: end to end, the store, status, resume.

Every folder is written by the test (tiny PNGs of odd sizes, one RGBA, one
grey, nested folders); the encoders are the real ones (``pixels``, and the
offline EfficientNet-Lite0 / MiniLM weights).
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_cli import one_line_error, run_cli

CLI = [sys.executable, "-c", "from al_loop.cli import main; main()"]
COLOURS = {"apple": (200, 30, 30), "leaf": (30, 180, 40), "sky": (40, 60, 210)}
SMALL = ["--rounds", "2", "--batch", "3", "--init", "6"]


def write_folder(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    """3 classes x ``per_class`` PNGs: odd sizes, one RGBA, one grey, the later ones in a nested folder."""
    rng = np.random.default_rng(seed)
    for c, (name, colour) in enumerate(COLOURS.items()):
        for i in range(per_class):
            h, w = int(rng.integers(5, 19)), int(rng.integers(3, 23))  # odd sizes, never square on purpose
            pixels = np.clip(np.array(colour) + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
            folder = root / name / ("more/deeper" if i >= per_class - 3 else "")
            folder.mkdir(parents=True, exist_ok=True)
            img = Image.fromarray(pixels, mode="RGB")
            if c == 0 and i == 0:
                img = img.convert("RGBA")
            elif c == 1 and i == 1:
                img = img.convert("L")
            img.save(folder / f"{name}_{i:02d}.png")
    return root


def cli(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(CLI + args, capture_output=True, text=True, env=env, timeout=600)


def runs_of(db: Path) -> list[tuple[int, str, dict]]:
    con = sqlite3.connect(db)
    try:
        return [(i, s, json.loads(c)) for i, s, c in con.execute("SELECT id, status, config_json FROM runs")]
    finally:
        con.close()


def export(db: Path, what: str, capsys, monkeypatch) -> list[dict]:
    code, out, err = run_cli(["export", "--db", str(db), "--what", what, "--format", "jsonl"], capsys, monkeypatch)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# -- end to end -------------------------------------------------------------------------------------------------


def test_images_pixels_typiclust_and_margin_end_to_end(tmp_path, capsys, monkeypatch) -> None:
    photos = write_folder(tmp_path / "photos")
    db = tmp_path / "s.sqlite"
    code, out, err = run_cli(["simulate", "--images", str(photos), "--encoder", "pixels", "--strategy", "typiclust",
                              "--strategy", "margin", "--db", str(db), *SMALL], capsys, monkeypatch)
    assert code == 0, err
    assert "typiclust" in out and "margin" in out
    bar, = [ln for ln in err.splitlines() if ln.startswith("encoding")]  # the encode's bar, with its ETA
    assert "36/36" in bar and "eta" in bar
    runs = runs_of(db)
    assert [s for _, s, _ in runs] == ["finished", "finished"]
    for _, _, cfg in runs:
        assert cfg["dataset"] == "images"
        # only the options given (and the encoder, which a run must keep) are recorded
        assert cfg["dataset_params"] == {"root": str(photos.resolve()), "labeled": True, "encoder": "pixels"}
        assert isinstance(cfg["inputs_digest"], str) and len(cfg["inputs_digest"]) >= 8
    files = sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.png"))
    labels = export(db, "labels", capsys, monkeypatch)
    assert labels and all(r["path"] in files for r in labels)
    assert list(labels[0])[:6] == ["run_id", "strategy", "seed", "round", "pool_id", "item_id"]
    assert list(labels[0])[6] == "path"  # next to item_id
    for r in labels:  # the label is the class folder of the file the row names
        assert r["label"] == r["path"].split("/")[0]
    assert {r["path"] for r in export(db, "selections", capsys, monkeypatch)} <= set(files)
    code, out, _ = run_cli(["status", "--db", str(db)], capsys, monkeypatch)
    assert code == 0 and "encoder" in out and "pixels" in out and "skipped as unreadable" not in out


def test_images_efficientnet_lite0_at_32_px(tmp_path, capsys, monkeypatch) -> None:
    photos = write_folder(tmp_path / "photos", per_class=4)
    db = tmp_path / "s.sqlite"
    code, _, err = run_cli(["simulate", "--images", str(photos), "--encoder", "efficientnet-lite0", "--image-size",
                            "32", "--strategy", "margin", "--rounds", "1", "--batch", "2", "--init", "3",
                            "--db", str(db)], capsys, monkeypatch)
    assert code == 0, err
    (_, status, cfg), = runs_of(db)
    assert status == "finished"
    assert cfg["dataset_params"] == {"root": str(photos.resolve()), "labeled": True,
                                     "encoder": "efficientnet-lite0", "image_size": 32}


def test_texts_minilm_end_to_end(tmp_path, capsys, monkeypatch) -> None:
    words = {"sport": "ball goal team match score player", "food": "pasta bread cheese soup salad cook",
             "tech": "code laptop chip server cloud network"}
    rng = np.random.default_rng(1)
    path = tmp_path / "texts.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for i in range(30):
            label = list(words)[i % 3]
            writer.writerow([" ".join(rng.choice(words[label].split(), 5)), label])
    db = tmp_path / "s.sqlite"
    code, _, err = run_cli(["simulate", "--texts", str(path), "--encoder", "minilm", "--strategy", "margin",
                            "--db", str(db), "--rounds", "2", "--batch", "3", "--init", "6"], capsys, monkeypatch)
    assert code == 0, err
    (_, status, cfg), = runs_of(db)
    assert status == "finished" and cfg["dataset_params"]["encoder"] == "minilm"
    code, out, _ = run_cli(["status", "--db", str(db)], capsys, monkeypatch)
    assert code == 0 and "minilm" in out


def test_the_api_reports_the_encode_to_the_callback_and_prints_nothing(tmp_path, capsys) -> None:
    from al_loop import api
    from al_loop.encode_progress import reporting_progress

    photos = write_folder(tmp_path / "photos", per_class=4, seed=7)  # files of its own: never a cache hit
    calls: list[tuple[int, int]] = []
    with reporting_progress(lambda done, total: calls.append((done, total))):
        api.simulate(str(tmp_path / "s.sqlite"), dataset="images", strategies=["margin"], rounds=1, batch=2, init=3,
                     dataset_params={"root": str(photos), "encoder": "pixels", "image_size": 9, "chunk": 5})
    assert calls and calls[-1] == (12, 12) and all(t == 12 for _, t in calls)
    assert len(calls) >= 3  # once per chunk of 5
    out, err = capsys.readouterr()
    assert out == "" and err == ""


# -- unreadable files -------------------------------------------------------------------------------------------


def _with_a_corrupt_file(tmp_path: Path) -> Path:
    photos = write_folder(tmp_path / "photos", per_class=6)
    (photos / "leaf" / "broken.png").write_bytes(b"this is not a png at all")
    return photos


def test_an_unreadable_image_stops_simulate_in_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch) -> None:
    photos = _with_a_corrupt_file(tmp_path)
    db = tmp_path / "s.sqlite"
    code, _, err = run_cli(["simulate", "--images", str(photos), "--encoder", "pixels", "--strategy", "margin",
                            "--db", str(db), *SMALL], capsys, monkeypatch)
    line = one_line_error(err)
    assert code == 2 and "leaf/broken.png" in line and "--skip-bad" in line
    assert not db.exists()


def test_skip_bad_leaves_the_file_out_and_status_lists_it(tmp_path, capsys, monkeypatch) -> None:
    photos = _with_a_corrupt_file(tmp_path)
    db = tmp_path / "s.sqlite"
    code, _, err = run_cli(["simulate", "--images", str(photos), "--encoder", "pixels", "--skip-bad",
                            "--strategy", "margin", "--db", str(db), *SMALL], capsys, monkeypatch)
    assert code == 0, err
    (_, status, cfg), = runs_of(db)
    assert status == "finished" and cfg["dataset_params"]["skip_bad"] is True
    con = sqlite3.connect(db)
    skipped = con.execute("SELECT path FROM skipped_items").fetchall()
    paths = {r[0] for r in con.execute("SELECT path FROM items")}
    con.close()
    assert skipped == [("leaf/broken.png",)] and "leaf/broken.png" not in paths and len(paths) == 18
    code, out, _ = run_cli(["status", "--db", str(db)], capsys, monkeypatch)
    assert code == 0
    line, = [ln for ln in out.splitlines() if "skipped as unreadable" in ln]
    assert "1 file(s) skipped as unreadable: leaf/broken.png (" in line


# -- resume and changed files -----------------------------------------------------------------------------------


def test_resume_refuses_a_changed_image_and_goes_on_once_it_is_restored(tmp_path) -> None:
    photos = write_folder(tmp_path / "photos", per_class=6)
    db = tmp_path / "s.sqlite"
    args = ["simulate", "--images", str(photos), "--encoder", "pixels", "--strategy", "margin", "--db", str(db),
            "--rounds", "3", "--batch", "3", "--init", "6"]
    proc = cli(args, {"AL_LOOP_CRASH_AT": "after_labeled@2"})  # killed (-9) half way through round 1
    assert proc.returncode == -9, proc.stderr
    assert [s for _, s, _ in runs_of(db)] == ["running"]
    victim = photos / "sky" / "sky_01.png"
    original = victim.read_bytes()
    img = np.asarray(Image.open(victim)).copy()
    img[0, 0] = 255 - img[0, 0]
    Image.fromarray(img).save(victim)
    proc = cli(["resume", "--db", str(db)])
    assert proc.returncode == 2
    line = one_line_error(proc.stderr)
    assert "the inputs of run 1 changed since it started" in line and str(photos.resolve()) in line
    assert "put the original files back" in line
    assert [s for _, s, _ in runs_of(db)] == ["running"]  # not failed: putting the file back fixes it
    victim.write_bytes(original)
    proc = cli(["resume", "--db", str(db)])
    assert proc.returncode == 0, proc.stderr
    assert [s for _, s, _ in runs_of(db)] == ["finished"]


# -- bad input: one line, rc 2, nothing written -----------------------------------------------------------------


def _refused(args: list[str], db: Path, capsys, monkeypatch) -> str:
    code, _, err = run_cli(["simulate", *args, "--strategy", "margin", "--db", str(db), *SMALL], capsys, monkeypatch)
    assert code == 2
    assert not db.exists()
    return one_line_error(err)


def test_a_folder_without_images_is_refused(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "photos" / "a").mkdir(parents=True)
    (tmp_path / "photos" / "a" / "notes.txt").write_text("no images here")
    line = _refused(["--images", str(tmp_path / "photos"), "--encoder", "pixels"], tmp_path / "s.sqlite",
                    capsys, monkeypatch)
    assert "no .jpg/.jpeg/.png/.webp/.bmp files under" in line


def test_an_empty_class_folder_is_refused(tmp_path, capsys, monkeypatch) -> None:
    photos = write_folder(tmp_path / "photos", per_class=4)
    (photos / "empty").mkdir()
    line = _refused(["--images", str(photos), "--encoder", "pixels"], tmp_path / "s.sqlite", capsys, monkeypatch)
    assert "empty" in line


def test_a_missing_encoder_weights_file_is_refused(tmp_path, capsys, monkeypatch) -> None:
    photos = write_folder(tmp_path / "photos", per_class=4)
    line = _refused(["--images", str(photos), "--encoder", "timm:resnet18", "--encoder-weights",
                     str(tmp_path / "nope.pth")], tmp_path / "s.sqlite", capsys, monkeypatch)
    assert "--encoder-weights" in line and "nope.pth" in line and "does not exist" in line


def test_encoder_without_images_or_texts_is_refused(tmp_path, capsys, monkeypatch) -> None:
    line = _refused(["--encoder", "pixels"], tmp_path / "s.sqlite", capsys, monkeypatch)
    assert "--encoder" in line and "--images DIR or --texts FILE" in line and "'digits'" in line
    features = tmp_path / "x.npy"
    np.save(features, np.zeros((20, 3)))
    line = _refused(["--features", str(features), "--encoder", "pixels"], tmp_path / "s.sqlite", capsys, monkeypatch)
    assert "--features tables" in line


def test_images_with_features_or_texts_or_another_dataset_is_refused(tmp_path, capsys, monkeypatch) -> None:
    photos = write_folder(tmp_path / "photos", per_class=4)
    features = tmp_path / "x.npy"
    np.save(features, np.zeros((20, 3)))
    db = tmp_path / "s.sqlite"
    line = _refused(["--images", str(photos), "--features", str(features)], db, capsys, monkeypatch)
    assert "--images and --features are two data sources" in line
    texts = tmp_path / "t.csv"
    texts.write_text("text,label\na,b\n")
    line = _refused(["--images", str(photos), "--texts", str(texts)], db, capsys, monkeypatch)
    assert "--images and --texts are two data sources" in line
    line = _refused(["--images", str(photos), "--dataset", "iris"], db, capsys, monkeypatch)
    assert "not 'iris'" in line


def test_image_options_with_texts_are_refused(tmp_path, capsys, monkeypatch) -> None:
    texts = tmp_path / "t.csv"
    texts.write_text("text,label\na,b\n")
    line = _refused(["--texts", str(texts), "--image-size", "32"], tmp_path / "s.sqlite", capsys, monkeypatch)
    assert "--image-size go(es) with --images folders" in line
    line = _refused(["--texts", str(texts), "--skip-bad"], tmp_path / "s.sqlite", capsys, monkeypatch)
    assert "--skip-bad go(es) with --images folders" in line


@pytest.mark.parametrize("size", ["0", "4"])
def test_a_tiny_image_size_is_refused(size: str, tmp_path, capsys, monkeypatch) -> None:
    photos = write_folder(tmp_path / "photos", per_class=4)
    line = _refused(["--images", str(photos), "--encoder", "pixels", "--image-size", size], tmp_path / "s.sqlite",
                    capsys, monkeypatch)
    assert f"--image-size {size} is too small" in line
