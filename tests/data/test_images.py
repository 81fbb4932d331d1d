"""Hostile and unusual images: the pixel limit (decompression bombs), and palette,
16-bit, CMYK, LA, RGBA and EXIF-rotated images decoded as a reference conversion says,
by the image-folder reader and by ``cnnlab predict`` alike (one shared conversion)."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import one_line_error, sample_members
from PIL import Image, ImageFile

from cnnlab.cli import main
from cnnlab.config.schema import DataConfig
from cnnlab.data import readers
from cnnlab.errors import DataError
from cnnlab.inference import predict as predict_mod

CLASSES = ("airplane", "cat", "ship")
DEFAULT_LIMIT = "89,478,485"


@pytest.fixture(scope="module")
def photos(sample_archive: Path) -> dict[str, list[np.ndarray]]:
    """Real CIFAR-10 pictures (RGB uint8, 32x32) of three classes: 4 train, 2 test each,
    named as in the tree they are written to: '<split>/<class>/<n>'."""
    found: dict[str, list[np.ndarray]] = {}
    for name, payload in sample_members(sample_archive, 4, 2):
        split, cls = name.split("/")[-3:-1]
        if cls in CLASSES:
            found.setdefault(f"{split}/{cls}", []).append(
                np.asarray(Image.open(io.BytesIO(payload)).convert("RGB")))
    return found


def gray(rgb: np.ndarray) -> np.ndarray:
    return np.rint(rgb @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)


# --- writers: each saves one picture in some mode and returns the reference pixels ----


def palette_png(rgb: np.ndarray, path: Path) -> np.ndarray:
    Image.fromarray(rgb).quantize(colors=48).save(path)
    with Image.open(path) as img:
        assert img.mode == "P"
        palette = np.array(img.getpalette(), dtype=np.uint8).reshape(-1, 3)
        return palette[np.asarray(img)]  # index -> colour, by numpy


def palette_transparent_png(rgb: np.ndarray, path: Path) -> np.ndarray:
    img = Image.fromarray(rgb).quantize(colors=48)
    clear = int(np.asarray(img)[0, 0])  # the top-left pixel's colour becomes transparent
    img.save(path, transparency=clear)
    with Image.open(path) as img:
        index = np.asarray(img)
        palette = np.array(img.getpalette(), dtype=np.uint8).reshape(-1, 3)
    alpha = np.where(index == clear, 0, 255).astype(np.uint8)
    return np.dstack([palette[index], alpha])


def sixteen_bit_png(rgb: np.ndarray, path: Path) -> np.ndarray:
    low = rgb[..., 1].astype(np.int64) % 200 - 100  # detail below the top 8 bits
    values = np.clip(gray(rgb).astype(np.int64) * 257 + low, 0, 65535).astype(np.uint16)
    Image.fromarray(values).save(path)
    with Image.open(path) as img:
        assert img.mode.startswith("I") and np.array_equal(np.asarray(img), values)
    return np.rint(values / 257.0).astype(np.uint8)[..., None]  # 65535 -> 255


def cmyk_jpeg(rgb: np.ndarray, path: Path) -> np.ndarray:
    Image.fromarray(rgb).convert("CMYK").save(path, quality=95)
    with Image.open(path) as img:
        assert img.mode == "CMYK"
        cmyk = np.asarray(img).astype(np.float64)  # as stored, before any conversion
    keep = 255.0 - cmyk[..., 3:]
    return np.rint((255.0 - cmyk[..., :3]) * keep / 255.0).astype(np.uint8)


def la_png(rgb: np.ndarray, path: Path) -> np.ndarray:
    Image.fromarray(np.dstack([gray(rgb), rgb[..., 2]]), "LA").save(path)
    return gray(rgb)[..., None]  # the alpha channel dropped


def rgba_png(rgb: np.ndarray, path: Path) -> np.ndarray:
    pixels = np.dstack([rgb, 255 - rgb[..., 0]])
    Image.fromarray(pixels, "RGBA").save(path)
    return pixels


def exif_rotated_jpeg(rgb: np.ndarray, path: Path) -> np.ndarray:
    """Stored 32 wide x 24 high with EXIF orientation 6: shown 24 wide x 32 high."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(np.ascontiguousarray(rgb[:24])).save(path, quality=95, exif=exif)
    with Image.open(path) as img:
        stored = np.asarray(img.convert("RGB"))
    assert stored.shape == (24, 32, 3)
    return np.rot90(stored, k=-1)


def upright_png(rgb: np.ndarray, path: Path) -> np.ndarray:
    pixels = np.ascontiguousarray(rgb[:, :24])  # 24 wide x 32 high, no EXIF
    Image.fromarray(pixels).save(path)
    return pixels


WRITERS = {
    "palette": ([palette_png], ".png", 3),
    "palette-transparent": ([palette_transparent_png], ".png", 4),
    "16-bit": ([sixteen_bit_png], ".png", 1),
    "cmyk": ([cmyk_jpeg], ".jpg", 3),
    "la": ([la_png], ".png", 1),
    "rgba": ([rgba_png], ".png", 4),
    "exif-rotated": ([exif_rotated_jpeg, upright_png], None, 3),
}


def write_tree(root: Path, photos: dict[str, list[np.ndarray]], kind: str
               ) -> dict[str, np.ndarray]:
    """train/<class>/*, test/<class>/* of the photos in one kind; reference pixels by
    relative path. With two writers, they alternate (mixed modes in one folder)."""
    writers, suffix, _ = WRITERS[kind]
    expected = {}
    for where, images in photos.items():
        (root / where).mkdir(parents=True, exist_ok=True)
        for n, rgb in enumerate(images):
            write = writers[n % len(writers)]
            ext = suffix or (".jpg" if "jpeg" in write.__name__ else ".png")
            expected[f"{where}/{n}{ext}"] = write(rgb, root / where / f"{n}{ext}")
    return expected


def stacked(expected: dict[str, np.ndarray], split: str) -> np.ndarray:
    """The reference pixels in the reader's order (sorted paths)."""
    return np.stack([expected[k] for k in sorted(expected) if k.startswith(f"{split}/")])


@pytest.mark.parametrize("kind", list(WRITERS))
def test_modes_decode_like_the_reference(tmp_path: Path, photos: dict, kind: str) -> None:
    expected = write_tree(tmp_path / kind, photos, kind)
    channels = WRITERS[kind][2]
    raw = readers.read_image_tree(tmp_path / kind, channels=4 if channels == 4 else None)
    assert raw.class_names == CLASSES
    for split, x in (("train", raw.x_train), ("test", raw.x_test)):
        reference = stacked(expected, split)
        assert x.dtype == np.uint8 and x.shape == reference.shape, (x.shape, reference.shape)
        difference = np.abs(x.astype(int) - reference.astype(int))
        assert difference.max() <= (1 if kind == "cmyk" else 0), (kind, difference.max())
    if kind == "16-bit":  # not the old clipped, nearly white images
        assert raw.x_train.mean() < 200 and raw.x_train.std() > 20


@pytest.mark.parametrize("kind", ["16-bit", "exif-rotated", "cmyk", "palette"])
def test_predict_decodes_as_the_reader_does(tmp_path: Path, photos: dict, kind: str) -> None:
    expected = write_tree(tmp_path / kind, photos, kind)
    for name, reference in expected.items():
        pixels = predict_mod.read_image(tmp_path / kind / name, reference.shape)
        difference = np.abs(pixels.astype(int) - reference.astype(int))
        assert difference.max() <= (1 if kind == "cmyk" else 0), (name, difference.max())


# --- the pixel limit --------------------------------------------------------------------


def bomb_png(path: Path, width: int = 20_000, height: int = 20_000) -> Path:
    """A 1-bit black PNG of width x height pixels, a few kilobytes: its rows are written
    compressed, one at a time, so that nothing of its decoded size is ever in memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    squeeze = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    data = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data)
                     + chunk(b"IEND", b""))
    return path


def real_tree(root: Path, photos: dict) -> Path:
    for where, images in photos.items():
        (root / where).mkdir(parents=True, exist_ok=True)
        for n, rgb in enumerate(images):
            Image.fromarray(rgb).save(root / where / f"{n}.png")
    return root


def train_args(root: Path, cache_dir: Path, out: Path, *sets: str) -> list[str]:
    values = {"data.source": "imagefolder", "data.path": root, "data.cache_dir": cache_dir,
              "data.train_size": "null", "data.val_size": 3, "data.test_size": "null",
              "train.epochs": 1, "train.verbose": 0, "model.filters": "[4]",
              "model.dense": "[8]"}
    return ["train", "baseline", "--out", str(out),
            *[a for k, v in values.items() for a in ("--set", f"{k}={v}")],
            *[a for s in sets for a in ("--set", s)]]


def test_bomb_is_refused_from_its_header(tmp_path: Path, photos: dict,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers first: with a bomb anywhere in the folder, no image at all is decoded."""
    root = real_tree(tmp_path / "tree", photos)
    bomb = bomb_png(root / "train" / "ship" / "zz-bomb.png")
    assert bomb.stat().st_size < 100_000
    decoded = []
    original = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda self: decoded.append(self.size) or original(self))
    started = time.monotonic()
    with pytest.raises(DataError) as caught:
        readers.read_image_tree(root)
    message = str(caught.value)
    assert time.monotonic() - started < 5 and decoded == []
    assert "\n" not in message and "train/ship/zz-bomb.png" in message
    assert "20000x20000" in message and DEFAULT_LIMIT in message
    assert "raise data.max_pixels" in message
    bomb.unlink()
    readers.read_image_tree(root)
    assert len(decoded) >= 18  # sanity: the patch does see every image decoded


def test_pillow_limit_is_replaced_by_max_pixels(tmp_path: Path) -> None:
    data = bomb_png(tmp_path / "bomb.png").read_bytes()
    with pytest.raises(Image.DecompressionBombError):  # Pillow alone: a traceback
        Image.open(io.BytesIO(data))
    with readers.open_image(data, "bomb.png", None) as img:  # null: no limit, header only
        assert img.size == (20_000, 20_000)
    with readers.open_image(data, "bomb.png", 400_000_000) as img:
        assert img.size == (20_000, 20_000)
    assert Image.MAX_IMAGE_PIXELS == readers.DEFAULT_MAX_PIXELS == DataConfig().max_pixels


def test_pixel_limit_through_train_and_raising_it(tmp_path: Path, photos: dict,
                                                  cache_dir: Path) -> None:
    root = real_tree(tmp_path / "tree", photos)
    big = root / "train" / "cat" / "big.png"
    Image.fromarray(np.kron(photos["train/cat"][0], np.ones((80, 80, 1), np.uint8))).save(big)
    runner = CliRunner()
    result = runner.invoke(main, train_args(root, cache_dir, tmp_path / "a",
                                            "data.max_pixels=5000000",
                                            "data.image_size=[32, 32]"))
    assert result.exit_code == 2, result.output
    one_line_error(result.stderr, "train/cat/big.png", "2560x2560", "5,000,000",
                   "raise data.max_pixels")
    assert not (tmp_path / "a").exists()
    big.unlink()
    bomb_png(root / "train" / "cat" / "bomb.png")
    started = time.monotonic()
    result = runner.invoke(main, train_args(root, cache_dir, tmp_path / "b"))
    assert result.exit_code == 2, result.output
    one_line_error(result.stderr, "train/cat/bomb.png", DEFAULT_LIMIT)
    assert time.monotonic() - started < 10
    (root / "train" / "cat" / "bomb.png").unlink()
    Image.fromarray(np.kron(photos["train/cat"][0], np.ones((80, 80, 1), np.uint8))).save(big)
    result = runner.invoke(main, train_args(root, cache_dir, tmp_path / "c",
                                            "data.max_pixels=7000000",
                                            "data.image_size=[32, 32]"))
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def sixteen_bit_run(tmp_path_factory: pytest.TempPathFactory, photos: dict,
                    cache_dir: Path) -> Path:
    """A tiny run trained through the CLI on a folder of 16-bit PNGs."""
    folder = tmp_path_factory.mktemp("images")
    write_tree(folder / "tree", photos, "16-bit")
    result = CliRunner().invoke(main, train_args(folder / "tree", cache_dir, folder / "run"))
    assert result.exit_code == 0, result.output
    return folder / "run"


def test_predict_refuses_a_bomb_in_one_line(sixteen_bit_run: Path, tmp_path: Path) -> None:
    bomb = bomb_png(tmp_path / "bomb.png")
    started = time.monotonic()
    result = CliRunner().invoke(main, ["predict", str(sixteen_bit_run), str(bomb)])
    assert result.exit_code == 2, result.output
    one_line_error(result.stderr, str(bomb), "20000x20000", DEFAULT_LIMIT,
                   f"data.max_pixels in {sixteen_bit_run}")
    assert time.monotonic() - started < 10 and result.stdout == ""
    good = tmp_path / "good.png"
    Image.fromarray(np.full((32, 32), 30000, np.uint16)).save(good)
    result = CliRunner().invoke(main, ["predict", str(sixteen_bit_run), str(good)])
    assert result.exit_code == 0, result.output
