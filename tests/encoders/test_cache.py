"""The embedding cache: hit, miss, chunks, resume after kill -9, skip_bad remembered, invalidation, where it lives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from al_loop.datasets import load_dataset
from al_loop.encoders.cache import ItemFailure, cache_root, embed, entry_key
from al_loop.errors import ConfigError, DataError
from tests.encoders.fakes import RowEncoder, UnloadableEncoder

REPO = Path(__file__).resolve().parents[2]


def _ints(i0: int, i1: int) -> list[int]:
    return list(range(i0, i1))


def _expected(n: int) -> np.ndarray:
    return RowEncoder().encode(list(range(n)))


def test_a_miss_encodes_in_chunks_and_a_hit_does_not_build_the_model(tmp_path: Path) -> None:
    enc, seen = RowEncoder(), []
    X, bad = embed(enc, 10, _ints, "d1", cache_dir=tmp_path, chunk=4, progress=lambda a, b: seen.append((a, b)))
    assert enc.calls == 3 and enc.items == 10
    assert seen == [(0, 10), (4, 10), (8, 10), (10, 10)]
    np.testing.assert_array_equal(X, _expected(10))
    assert X.dtype == np.float32 and bad == []
    state = json.loads((tmp_path / entry_key("d1", enc) / "progress.json").read_text())
    assert state["complete"] and state["done"] == 10 and state["d"] == 3
    X2, bad2 = embed(UnloadableEncoder(), 10, _ints, "d1", cache_dir=tmp_path, chunk=4)
    np.testing.assert_array_equal(X2, X)
    assert isinstance(X2, np.memmap) and not X2.flags.writeable and bad2 == []


def test_another_digest_or_version_is_a_miss(tmp_path: Path) -> None:
    embed(RowEncoder(), 5, _ints, "d1", cache_dir=tmp_path)
    for digest, enc in (("d2", RowEncoder()), ("d1", RowEncoder(revision="2"))):
        embed(enc, 5, _ints, digest, cache_dir=tmp_path)
        assert enc.items == 5
    assert len({entry_key("d1", RowEncoder()), entry_key("d2", RowEncoder()),
                entry_key("d1", RowEncoder(revision="2"))}) == 3


def test_a_corpus_fitted_encoder_sees_every_item_in_one_call(tmp_path: Path) -> None:
    enc = RowEncoder(corpus_fitted=True)
    X, _ = embed(enc, 9, _ints, "d", cache_dir=tmp_path, chunk=2)
    assert enc.calls == 1 and enc.items == 9
    np.testing.assert_array_equal(X, _expected(9))


def test_a_failed_encode_resumes_from_its_last_finished_chunk(tmp_path: Path) -> None:
    def broken(i0: int, i1: int) -> list[int]:
        if i0 >= 6:
            raise DataError("the disk went away")
        return _ints(i0, i1)

    first = RowEncoder()
    with pytest.raises(DataError, match="the disk went away"):
        embed(first, 10, broken, "d", cache_dir=tmp_path, chunk=3)
    assert first.items == 6
    again = RowEncoder()
    X, _ = embed(again, 10, _ints, "d", cache_dir=tmp_path, chunk=3)
    assert again.items == 4 and again.calls == 2
    np.testing.assert_array_equal(X, _expected(10))


_KILLED = """
import sys
from al_loop.encoders.cache import embed
from tests.encoders.fakes import RowEncoder
embed(RowEncoder(delay=0.4), 40, lambda a, b: list(range(a, b)), "killed", cache_dir=sys.argv[1], chunk=4)
print("finished")
"""


@pytest.mark.slow
def test_kill_9_during_an_encode_then_the_next_call_encodes_only_the_remaining_chunks(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    progress = cache / entry_key("killed", RowEncoder()) / "progress.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, str(cache)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120  # a hang guard, not a speed check
        while time.monotonic() < deadline and proc.poll() is None:
            if progress.exists() and json.loads(progress.read_text())["done"] >= 4:
                break
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    state = json.loads(progress.read_text())
    done = state["done"]
    assert 4 <= done < 40 and done % 4 == 0 and not state["complete"]
    resumed = RowEncoder()
    X, _ = embed(resumed, 40, _ints, "killed", cache_dir=cache, chunk=4)
    assert resumed.items == 40 - done and resumed.calls == (40 - done) // 4
    whole, _ = embed(RowEncoder(), 40, _ints, "killed", cache_dir=tmp_path / "fresh", chunk=4)
    np.testing.assert_array_equal(X, whole)


def _with_failures(i0: int, i1: int) -> list[object]:
    return [ItemFailure(f"photos/cat/{i}.jpg", "cannot identify image file") if i in (3, 7) else i
            for i in range(i0, i1)]


def test_an_unreadable_item_is_one_line_naming_the_file(tmp_path: Path) -> None:
    enc = RowEncoder()
    enc.modality = "image"
    with pytest.raises(DataError) as err:
        embed(enc, 10, _with_failures, "d", cache_dir=tmp_path, chunk=4)
    assert str(err.value) == ("cannot read image photos/cat/3.jpg (cannot identify image file); fix or remove it, "
                              "or pass --skip-bad")


def test_skip_bad_leaves_rows_out_and_a_hit_returns_the_same_list(tmp_path: Path) -> None:
    enc = RowEncoder()
    X, bad = embed(enc, 10, _with_failures, "d", cache_dir=tmp_path, chunk=4, skip_bad=True)
    keep = [i for i in range(10) if i not in (3, 7)]
    np.testing.assert_array_equal(X, _expected(10)[keep])
    assert bad == [("photos/cat/3.jpg", "cannot identify image file"), ("photos/cat/7.jpg", "cannot identify image file")]
    assert enc.items == 8
    X2, bad2 = embed(UnloadableEncoder(), 10, _with_failures, "d", cache_dir=tmp_path, chunk=4, skip_bad=True)
    np.testing.assert_array_equal(X2, X)
    assert bad2 == bad
    with pytest.raises(DataError, match=r"cannot read text photos/cat/3\.jpg .*pass --skip-bad"):
        embed(UnloadableEncoder(), 10, _with_failures, "d", cache_dir=tmp_path, chunk=4)


def test_nothing_readable_is_an_error(tmp_path: Path) -> None:
    def none(i0: int, i1: int) -> list[object]:
        return [ItemFailure(f"{i}.jpg", "broken") for i in range(i0, i1)]

    with pytest.raises(DataError, match=r"none of the 3 items could be read \(first: 0\.jpg: broken\)"):
        embed(RowEncoder(), 3, none, "d", cache_dir=tmp_path, skip_bad=True)


def test_an_unwritable_cache_folder_names_al_loop_cache_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    enc = RowEncoder()
    with pytest.raises(ConfigError) as err:
        embed(enc, 3, _ints, "d", cache_dir=blocker / "cache")
    line = str(err.value)
    assert line.startswith(f"cannot write the embedding cache in {blocker / 'cache'} (")
    assert line.endswith("; free space there or set AL_LOOP_CACHE_DIR to a writable folder") and "\n" not in line
    assert enc.calls == 0


def test_the_cache_folder_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AL_LOOP_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "mine"
    assert cache_root(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv("AL_LOOP_CACHE_DIR")
    assert cache_root() == tmp_path / "xdg" / "al-loop" / "embeddings"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == tmp_path / "home" / ".cache" / "al-loop" / "embeddings"
    embed(RowEncoder(), 2, _ints, "d")
    assert (tmp_path / "home" / ".cache" / "al-loop" / "embeddings" / entry_key("d", RowEncoder())).is_dir()


def test_a_changed_file_invalidates_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AL_LOOP_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "photos"
    for rel, colour in (("cat/1.png", (255, 0, 0)), ("cat/2.png", (250, 5, 0)), ("dog/3.png", (0, 0, 255)),
                        ("dog/4.png", (0, 5, 250))):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (6, 6), colour).save(root / rel)
    lines: list[str] = []
    first = load_dataset("images", root=str(root), encoder="pixels", image_size=4, log=lines.append)
    again = load_dataset("images", root=str(root), encoder="pixels", image_size=4, log=lines.append)
    assert lines == [] and again.digest == first.digest
    Image.new("RGB", (6, 6), (0, 255, 0)).save(root / "dog" / "3.png")
    changed = load_dataset("images", root=str(root), encoder="pixels", image_size=4, log=lines.append)
    old, new = first.digest.split(":")[0][:8], changed.digest.split(":")[0][:8]
    assert lines == [f"photos/ changed since its embeddings were cached (digest {old} -> {new}); encoding again"]
    np.testing.assert_allclose(changed.X[2][:3], [0.0, 1.0, 0.0])
    load_dataset("images", root=str(root), encoder="pixels", image_size=4, log=lines.append)
    assert len(lines) == 1
    noted = load_dataset("images", root=str(root), encoder="pixels", image_size=5)
    assert not any("changed since" in n for n in noted.notes)  # another encoder setting: no change of the files


def test_an_encoders_own_oserror_is_not_blamed_on_the_cache(tmp_path: Path) -> None:
    class MissingWeights(RowEncoder):
        def encode(self, items):  # type: ignore[no-untyped-def]
            raise FileNotFoundError(2, "No such file or directory", "/models/w.pt")

    with pytest.raises(FileNotFoundError, match="w.pt"):
        embed(MissingWeights(), 3, _ints, "d", cache_dir=tmp_path)


def test_a_second_process_on_the_same_entry_waits_and_reads_the_first_ones_result(tmp_path: Path) -> None:
    import threading

    first, second = RowEncoder(delay=0.05), RowEncoder()
    progress = tmp_path / entry_key("d", first) / "progress.json"
    results: dict[str, np.ndarray] = {}
    worker = threading.Thread(target=lambda: results.setdefault(
        "first", embed(first, 20, _ints, "d", cache_dir=tmp_path, chunk=2)[0]))
    worker.start()
    deadline = time.monotonic() + 60  # a hang guard, not a speed check
    while time.monotonic() < deadline and not (progress.exists() and json.loads(progress.read_text())["done"] >= 2):
        time.sleep(0.005)
    results["second"], _ = embed(second, 20, _ints, "d", cache_dir=tmp_path, chunk=2)
    worker.join()
    assert first.items == 20 and second.items == 0
    np.testing.assert_array_equal(results["second"], results["first"])
