"""Image-file payloads and campaign media modes without a server (issue #15, item 5)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from al_loop.campaign import check_media_flags, data_source
from al_loop.errors import ConfigError, DataError
from al_loop.pool import Pool
from al_loop.types import OutboxItem
from oracles.label_studio import LOCAL_FILES_URL, image_value, task_for


def folder_pool(root: Path) -> Pool:
    return Pool(X=np.zeros((2, 3), dtype=np.float32), ids=np.array([5, 9]), classes=("cat", "dog"), kind="image",
                paths=["a.jpg", "trip/day 2/b.png"], media_root=str(root))


def test_an_image_folder_item_gives_its_file_and_a_raw_array_a_grey_square(tmp_path: Path) -> None:
    pool = folder_pool(tmp_path)
    assert pool.payload(9) == {"image_file": str(tmp_path / "trip/day 2/b.png"), "path": "trip/day 2/b.png"}
    arrays = Pool(X=np.zeros((1, 8, 8)), ids=np.array([1]), classes=("a", "b"), kind="image")
    assert arrays.payload(1)["image"].startswith("data:image/png;base64,")


def test_image_value_per_mode(tmp_path: Path) -> None:
    payload = folder_pool(tmp_path / "photos").payload(9)
    assert image_value(payload, {"mode": "url", "prefix": "gs://b/p"}) == "gs://b/p/trip/day 2/b.png"
    assert image_value(payload, {"mode": "local-files", "root": str(tmp_path)}) == \
        LOCAL_FILES_URL + "photos/trip/day%202/b.png"
    with pytest.raises(DataError, match="is not under Label Studio's document root"):
        image_value(payload, {"mode": "local-files", "root": str(tmp_path / "other")})
    with pytest.raises(ConfigError, match="no media mode"):
        image_value(payload, None)


def test_an_image_file_task_keeps_its_path_and_the_prediction_with_its_score(tmp_path: Path) -> None:
    payload = folder_pool(tmp_path).payload(5)
    item = OutboxItem(run_id=1, round=1, pool_id=5, payload=payload, prediction={"label": "dog", "score": 0.83})
    task = task_for(item, ("cat", "dog"), "c0ffee", {"mode": "url", "prefix": "https://h/x/"})
    assert task["data"]["image"] == "https://h/x/a.jpg" and task["data"]["al_path"] == "a.jpg"
    assert "image_file" not in task["data"]  # the local path stays out of the task
    (pred,) = task["predictions"]
    assert pred["score"] == 0.83 and pred["result"][0]["value"] == {"choices": ["dog"]}
    assert pred["result"][0]["to_name"] == "image"


@pytest.mark.parametrize(("media", "url", "images", "wanted"), [
    ("sideways", None, "d", "unknown --media 'sideways'"),
    ("url", None, "d", "--media url needs --media-url PREFIX"),
    ("inline", "s3://b/", "d", "--media-url goes with --media url"),
    ("auto", "ftp://h/", "d", "is no URL Label Studio resolves"),
    ("inline", None, None, "--media and --media-url go with --images DIR"),
])
def test_media_flags_checked_on_their_own(media: str, url: str | None, images: str | None, wanted: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(wanted)):
        check_media_flags(media, url, images)


def test_data_source_for_images_and_texts(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    texts = tmp_path / "t.csv"
    texts.write_text("body\nhello\n")
    name, params = data_source(None, ["a", "b"], "image", images=str(tmp_path / "p"), encoder="pixels",
                               image_size=16, skip_bad=True)
    assert name == "images"
    assert params == {"root": str((tmp_path / "p").resolve()), "labeled": False, "classes": ["a", "b"],
                      "encoder": "pixels", "image_size": 16, "skip_bad": True}
    assert data_source(str(texts), ["a"], "text", text_column="body") == \
        ("text", {"path": str(texts), "classes": ["a"], "text_column": "body"})
    assert data_source(str(texts), ["a"], "text") == ("text", {"path": str(texts), "classes": ["a"]})
    with pytest.raises(ConfigError, match="--images and --data are exclusive"):
        data_source("digits", ["a"], "image", images=str(tmp_path / "p"))
    with pytest.raises(ConfigError, match="pass --images DIR"):
        data_source(None, ["a"], "image")
    with pytest.raises(ConfigError, match="does not exist"):
        data_source(None, ["a"], "image", images=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="--kind text does not fit --images"):
        data_source(None, ["a"], "text", images=str(tmp_path / "p"))
