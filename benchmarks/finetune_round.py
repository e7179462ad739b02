"""Time one active-learning round of the ``finetune`` learner: fit on 100 labeled images, predict on a pool of 1000.

Writes ``--n`` synthetic PNGs (two classes of coloured shapes, 200-300 px) to a
temporary folder, builds the pool through EfficientNet-Lite0 at ``--size``
pixels, then times two rounds: the first decodes the labeled images and runs
the frozen trunk on the whole pool once; the second (100 other labels) only
trains the last block + head and runs them over the cached trunk outputs.

    python benchmarks/finetune_round.py --size 64
    python benchmarks/finetune_round.py --size 224
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def write_images(root: Path, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        cls = ("disc", "square")[i % 2]
        w, h = (int(v) for v in rng.integers(200, 300, 2))
        img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(90, 170, 3)))
        s = int(min(w, h) * rng.uniform(0.3, 0.7))
        x0, y0 = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw = ImageDraw.Draw(img)
        (draw.ellipse if cls == "disc" else draw.rectangle)((x0, y0, x0 + s, y0 + s), fill=colour)
        (root / cls).mkdir(parents=True, exist_ok=True)
        rel = f"{cls}/{i:05d}.jpg"
        img.save(root / rel, quality=90)
        paths.append(rel)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--labeled", type=int, default=100)
    args = parser.parse_args()

    import torch

    from al_loop.datasets import load_dataset
    from al_loop.learners.finetune import FinetuneLearner
    from al_loop.pool import Pool

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "shapes"
        write_images(root, args.n)
        t = time.perf_counter()
        data = load_dataset("images", root=str(root), image_size=args.size, log=lambda _: None)
        encode_s = time.perf_counter() - t
        pool = Pool(X=data.X, ids=np.arange(len(data.X)), classes=data.classes, y=data.y, kind="image",
                    paths=data.paths, media_root=data.media_root, encoder=data.encoder,
                    encoder_options=data.encoder_options)
        learner = FinetuneLearner()
        print(f"{args.n} images at {args.size} px, torch threads {torch.get_num_threads()}, "
              f"device {learner._setup(pool).device}; encode (pool embeddings) {encode_s:.1f} s")
        rng = np.random.default_rng(0)
        order = rng.permutation(len(pool))
        for r in (1, 2):
            ids = pool.ids[order[(r - 1) * args.labeled:r * args.labeled]]
            t = time.perf_counter()
            learner.fit(pool, ids, pool.hidden_labels(ids), seed=r)
            fit_s = time.perf_counter() - t
            t = time.perf_counter()
            proba = learner.predict_proba(pool, pool.ids)
            pred_s = time.perf_counter() - t
            acc = float((proba.argmax(axis=1) == pool.y).mean())
            print(f"round {r}: fit {fit_s:.1f} s ({args.labeled} labeled, {learner.config.epochs} epochs), "
                  f"predict {pred_s:.1f} s ({len(pool)} images), pool accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
