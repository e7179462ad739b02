"""The examples run as a user would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_custom_strategy_example(tmp_path) -> None:
    db = tmp_path / "ex.sqlite"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "custom_strategy.py"), "--db", str(db)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == ["entropy_density", "random"]
    from al_loop.store import Store

    store = Store(db, readonly=True)
    assert {r.strategy for r in store.runs()} == {"random", "entropy_density"}
    assert all(r.status == "finished" for r in store.runs())
    assert store.config(store.runs()[-1].id).learner == "forest"


def test_photo_folder_example_writes_an_image_folder_simulate_reads(tmp_path) -> None:
    """examples/photo_folder.py (used by `make demo`) writes colour PNGs of odd sizes in the ImageFolder layout."""
    out = tmp_path / "photos"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "photo_folder.py"), str(out), "--per-class", "5",
                           "--classes", "1,7"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 10 photos" in proc.stdout
    from PIL import Image

    from al_loop.media import scan_images

    listing = scan_images(out, labeled=True)
    assert listing.classes == ("one", "seven")
    assert len(listing.paths) == 10
    sizes = set()
    for rel in listing.paths:
        with Image.open(out / rel) as img:
            assert img.mode == "RGB"
            sizes.add(img.size)
    assert len(sizes) > 1  # not all the same size
