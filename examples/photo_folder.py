"""Write a small folder of photos in the ImageFolder layout (one subfolder per class), from data that ships offline.

    python examples/photo_folder.py DIR [--per-class 40] [--classes 0,1,2,3]

scikit-learn's handwritten digits (8 x 8 grey) are written as 48 x 48 RGB PNG files with a coloured
background per file (so the folder holds colour photos of different sizes and modes, not just grey
arrays): ``DIR/<digit name>/<index>.png``. ``make demo`` runs ``al-loop simulate --images DIR
--encoder efficientnet-lite0`` on it; use your own folder the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def write_folder(out: Path, per_class: int = 40, classes: tuple[int, ...] = (0, 1, 2, 3), seed: int = 0) -> int:
    """Write ``per_class`` PNG files per digit class under ``out``; returns how many files were written."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    written = 0
    for c in classes:
        folder = out / NAMES[c]
        folder.mkdir(parents=True, exist_ok=True)
        rows = np.flatnonzero(digits.target == c)[:per_class]
        for i in rows:
            grey = (digits.images[i] / 16.0)[..., None]  # (8, 8, 1) in [0, 1]
            background = rng.uniform(0.3, 1.0, size=3)
            rgb = (1.0 - grey) * background + grey * (1.0 - background)
            side = int(rng.integers(40, 64))
            img = Image.fromarray((rgb * 255).astype(np.uint8), mode="RGB").resize((side, side), Image.BILINEAR)
            img.save(folder / f"{int(i):04d}.png")
            written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--classes", default="0,1,2,3")
    args = parser.parse_args()
    n = write_folder(args.out, args.per_class, tuple(int(c) for c in args.classes.split(",")))
    print(f"wrote {n} photos to {args.out}")


if __name__ == "__main__":
    main()
