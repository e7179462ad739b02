"""Image folders: listing order, the ImageFolder layout, decoding any mode to RGB, the files' digest."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from al_loop.errors import DataError
from al_loop.media import IMAGE_SUFFIXES, files_digest, open_rgb, scan_images


def _save(path: Path, img: Image.Image, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def _folder(root: Path) -> Path:
    _save(root / "dog" / "b.PNG", Image.new("RGB", (7, 300), (10, 20, 30)))
    _save(root / "cat" / "z.jpg", Image.new("RGB", (40, 30), (200, 0, 0)))
    _save(root / "cat" / "deep" / "inner" / "a.webp", Image.new("RGB", (9, 9), (0, 200, 0)))
    _save(root / "cat" / "a.bmp", Image.new("L", (5, 5), 77))
    _save(root / "dog" / "a.jpeg", Image.new("RGB", (300, 7), (0, 0, 200)))
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "cat" / ".hidden.jpg").write_bytes(b"")
    (root / ".thumbnails").mkdir()
    _save(root / ".thumbnails" / "t.jpg", Image.new("RGB", (4, 4)))
    return root


def test_suffixes_are_the_five_types() -> None:
    assert IMAGE_SUFFIXES == (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def test_labeled_listing_is_sorted_relative_posix_with_nested_folders_in_their_class(tmp_path: Path) -> None:
    listing = scan_images(_folder(tmp_path / "photos"), labeled=True)
    assert listing.paths == ["cat/a.bmp", "cat/deep/inner/a.webp", "cat/z.jpg", "dog/a.jpeg", "dog/b.PNG"]
    assert listing.labels == ["cat", "cat", "cat", "dog", "dog"]
    assert listing.classes == ("cat", "dog")
    assert listing.root == str((tmp_path / "photos").resolve())
    # notes.txt, .hidden.jpg and the hidden folder's file
    assert listing.ignored == 3
    assert listing.notes and "3 hidden or non-image file(s)" in listing.notes[0]


def test_unlabeled_listing_takes_images_at_any_depth_including_the_root(tmp_path: Path) -> None:
    root = _folder(tmp_path / "photos")
    _save(root / "loose.png", Image.new("RGB", (3, 3)))
    listing = scan_images(root, labeled=False)
    assert listing.paths[0] == "cat/a.bmp" and "loose.png" in listing.paths and len(listing.paths) == 6
    assert listing.labels is None and listing.classes == ()
    assert listing.paths == sorted(listing.paths)


def test_the_order_does_not_depend_on_creation_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    names = ["x/3.png", "y/1.png", "x/10.png", "x/2.png", "y/0.png"]
    for root, order in ((a, names), (b, names[::-1])):
        for rel in order:
            _save(root / rel, Image.new("RGB", (2, 2)))
    assert scan_images(a).paths == scan_images(b).paths == sorted(names)


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "does not exist; check the --images path"),
    (lambda root: root.write_text("x"), "is not a folder"),
    (lambda root: (root / "cat").mkdir(parents=True), "no .jpg/.jpeg/.png/.webp/.bmp files under"),
])
def test_a_missing_file_or_imageless_folder_is_one_line(tmp_path: Path, make, message: str) -> None:
    root = tmp_path / "photos"
    make(root)
    with pytest.raises(DataError, match=message) as err:
        scan_images(root, labeled=False)
    assert "\n" not in str(err.value)


def test_no_images_names_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "cat").mkdir(parents=True)
    (root / "cat" / "readme.md").write_text("x")
    with pytest.raises(DataError) as err:
        scan_images(root)
    assert str(err.value) == (f"no .jpg/.jpeg/.png/.webp/.bmp files under {root.resolve()}; point --images at a "
                              "folder of images")


def test_labeled_without_subfolders_says_how_to_lay_it_out(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    _save(root / "1.jpg", Image.new("RGB", (2, 2)))
    with pytest.raises(DataError, match=r"has no class subfolders; simulate needs one subfolder per class"):
        scan_images(root, labeled=True)
    assert scan_images(root, labeled=False).paths == ["1.jpg"]


def test_images_directly_in_the_root_are_named(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    for rel in ("cat/1.jpg", "dog/2.jpg", "stray.png"):
        _save(root / rel, Image.new("RGB", (2, 2)))
    with pytest.raises(DataError, match=r"1 image\(s\) directly in .* belong to no class \(stray\.png\); move them"):
        scan_images(root)


def test_an_empty_class_folder_is_named(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    for rel in ("cat/1.jpg", "dog/2.jpg"):
        _save(root / rel, Image.new("RGB", (2, 2)))
    (root / "bird").mkdir()
    (root / "bird" / "Thumbs.db").write_bytes(b"x")
    with pytest.raises(DataError, match=r"class folder .*photos/bird holds no images; put its images in it or "
                                        r"remove the folder"):
        scan_images(root)


def test_a_single_class_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    _save(root / "cat" / "1.jpg", Image.new("RGB", (2, 2)))
    with pytest.raises(DataError, match=r"has one class folder \(cat\); a classifier needs at least two"):
        scan_images(root)


# -- decoding ----------------------------------------------------------------------------------------------------

def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    arr = np.zeros((4, 6, 4), dtype=np.uint8)
    arr[..., 0] = 255  # red
    arr[:, :3, 3] = 0  # left half transparent
    arr[:, 3:, 3] = 255
    img = open_rgb(_save(tmp_path / "a.png", Image.fromarray(arr, mode="RGBA")))
    out = np.asarray(img)
    assert img.mode == "RGB" and img.size == (6, 4)
    assert (out[:, :3] == 255).all()  # white where transparent
    assert (out[:, 3:] == [255, 0, 0]).all()


def test_grey_palette_webp_bmp_and_odd_sizes_become_rgb(tmp_path: Path) -> None:
    pal = Image.new("P", (7, 300))
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * (256 * 3 - 6))
    pal.paste(1, (0, 0, 7, 300))
    transparent = Image.new("P", (3, 3), 1)
    transparent.putpalette([0, 0, 0, 9, 9, 9] + [0] * (256 * 3 - 6))
    files = {
        "grey.png": _save(tmp_path / "grey.png", Image.new("L", (300, 7), 90)),
        "pal.png": _save(tmp_path / "pal.png", pal),
        "tpal.png": _save(tmp_path / "tpal.png", transparent, transparency=1),
        "a.webp": _save(tmp_path / "a.webp", Image.new("RGB", (5, 3), (1, 2, 250)), lossless=True),
        "a.bmp": _save(tmp_path / "a.bmp", Image.new("RGB", (1, 1), (4, 5, 6))),
    }
    seen = {name: np.asarray(open_rgb(path)) for name, path in files.items()}
    assert seen["grey.png"].shape == (7, 300, 3) and (seen["grey.png"] == 90).all()
    assert seen["pal.png"].shape == (300, 7, 3) and (seen["pal.png"] == [10, 200, 30]).all()
    assert (seen["tpal.png"] == 255).all()  # the transparent palette entry is white
    assert (seen["a.webp"] == [1, 2, 250]).all()
    assert (seen["a.bmp"] == [4, 5, 6]).all()


def test_sixteen_bit_grey_is_scaled_to_bytes(tmp_path: Path) -> None:
    arr = np.full((3, 4), 65535, dtype=np.uint16)
    arr[0, 0] = 0
    arr[1, 1] = 257 * 100
    path = _save(tmp_path / "deep.png", Image.fromarray(arr))
    assert Image.open(path).mode.startswith("I")
    out = np.asarray(open_rgb(path))
    assert out.shape == (3, 4, 3) and out[0, 0, 0] == 0 and out[1, 1, 0] == 100 and out[2, 2, 0] == 255


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (6, 2), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 1, 2))  # white left column
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif, quality=100)
    out = open_rgb(path)
    assert out.size == (2, 6)  # portrait once the orientation is applied
    top = np.asarray(out)[0].mean()
    assert top > 200  # the white column is now the top row


def test_arrays_in_unit_range_or_bytes(tmp_path: Path) -> None:
    unit = np.zeros((2, 3), dtype=np.float64)
    unit[0, 0] = 1.0
    out = np.asarray(open_rgb(unit))
    assert out.shape == (2, 3, 3) and out[0, 0, 0] == 255 and out[1, 1, 0] == 0
    rgb = np.full((2, 2, 3), 7, dtype=np.int64)
    assert (np.asarray(open_rgb(rgb)) == 7).all()
    one = np.full((2, 2, 1), 0.5, dtype=np.float32)
    assert (np.asarray(open_rgb(one)) == 128).all()
    with pytest.raises(DataError, match="NaN or Inf"):
        open_rgb(np.full((2, 2), np.nan))
    with pytest.raises(DataError, match=r"has shape \(2, 2, 5\)"):
        open_rgb(np.zeros((2, 2, 5)))


def test_a_corrupt_file_raises_an_oserror_for_the_caller_to_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(OSError, match="cannot identify image file"):
        open_rgb(bad)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (3, 3, 3)).save(buf, format="PNG")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises((OSError, SyntaxError, ValueError)):
        open_rgb(truncated)


# -- digest --------------------------------------------------------------------------------------------------------

def test_the_digest_changes_with_bytes_names_and_order_only(tmp_path: Path) -> None:
    root = tmp_path / "p"
    _save(root / "a" / "1.png", Image.new("RGB", (2, 2), (1, 1, 1)))
    _save(root / "b" / "2.png", Image.new("RGB", (2, 2), (2, 2, 2)))
    paths = ["a/1.png", "b/2.png"]
    first = files_digest(root, paths)
    assert len(first) == 32 and first == files_digest(root, paths)
    assert files_digest(root, paths[::-1]) != first
    copy = tmp_path / "elsewhere"
    (copy / "a").mkdir(parents=True)
    (copy / "b").mkdir()
    for rel in paths:
        (copy / rel).write_bytes((root / rel).read_bytes())
    assert files_digest(copy, paths) == first  # where the folder lies does not matter
    (copy / "a" / "1.png").rename(copy / "a" / "renamed.png")
    assert files_digest(copy, ["a/renamed.png", "b/2.png"]) != first
    _save(root / "a" / "1.png", Image.new("RGB", (2, 2), (9, 9, 9)))
    assert files_digest(root, paths) != first
    with pytest.raises(DataError, match=r"cannot read gone\.png under .*; check that the file is there"):
        files_digest(root, ["gone.png"])
