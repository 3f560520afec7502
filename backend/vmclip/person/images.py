"""Reading photos: any common format, grayscale / RGBA / 16-bit, EXIF rotation; always RGB uint8 out.

`decode_image` is the one decoder of encoded photos: the CLI (files) and the server (bytes off the
wire) both go through it, so a photo gives the same pixels, or the same one-line error, on both."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from vmclip.errors import InputError

MAX_PIXELS = 50_000_000  # refuse larger photos outright (decoding alone would take gigabytes)
MAX_SIDE = 1024  # photos are worked on at most this size (longest side)
MIN_SIDE = 48  # below this there is no person to find


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
        scale = 255.0 if finite.max(initial=0.0) <= 1.0 + 1e-6 else 1.0
        return np.clip(finite * scale, 0, 255).round().astype(np.uint8)
    if arr.dtype == np.uint16:  # 16-bit photos: keep the full range
        return (arr.astype(np.float64) / 257.0).round().astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):  # e.g. PIL's 32-bit grey mode holding 16-bit values
        top = 65535 if arr.max(initial=0) > 255 else 255
        return np.clip(arr.astype(np.float64) * (255.0 / top), 0, 255).round().astype(np.uint8)
    raise InputError(f"unsupported image data type {arr.dtype}")


def _to_rgb(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise InputError(f"{name}: expected an image of shape (H, W[, 1-4 channels]), got {arr.shape}")
    arr = _to_uint8(arr)
    channels = arr.shape[2]
    if channels in (2, 4):  # with alpha: composite onto black (transparent = empty background)
        alpha = arr[..., -1:].astype(np.float32) / 255.0
        colour = arr[..., :-1].astype(np.float32)
        arr = np.clip(colour * alpha, 0, 255).round().astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)


def _read_file(path: Path | io.BytesIO, label: str | None = None) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(path, Path):
        if not path.exists():
            raise InputError(f"{path}: no such file")
        if path.is_dir():
            raise InputError(f"{path}: is a folder, expected an image file")
    source = path
    path = label or path  # the name used in messages
    try:
        with Image.open(source) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise InputError(
                    f"{path}: image is {w}x{h} ({w * h / 1e6:.0f} MP); the limit is "
                    f"{MAX_PIXELS // 1_000_000} MP, downscale it first"
                )
            im.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a reduced size directly
            im = ImageOps.exif_transpose(im)
            if im.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
                im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
            arr = np.asarray(im)
    except InputError:
        raise
    except UnidentifiedImageError as exc:
        raise InputError(f"{path}: not an image file (or an unsupported format)") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{path}: cannot read the image ({exc})") from exc
    except Image.DecompressionBombError as exc:
        raise InputError(f"{path}: image too large to decode safely") from exc
    return arr


def decode_image(
    src: str | os.PathLike | bytes | bytearray | memoryview, name: str | None = None
) -> np.ndarray:
    """Encoded image bytes or an image file -> (H, W, 3) uint8 RGB at (about) its own size.

    EXIF rotation applied; 16-bit, greyscale, palette, CMYK and 1-bit images converted, transparency
    composited onto black (transparent = empty background); JPEGs larger than MAX_SIDE decoded at a
    reduced size directly. Raises InputError (one line, naming `name`) for missing, truncated,
    corrupt, unsupported or oversized images."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        label = name or "image data"
        return _to_rgb(_read_file(io.BytesIO(bytes(src)), label), label)
    path = Path(src)
    label = name or str(path)
    return _to_rgb(_read_file(path, label if name else None), label)


def load_image(
    src: str | os.PathLike | np.ndarray | bytes, max_side: int = MAX_SIDE, name: str | None = None
) -> np.ndarray:
    """An RGB uint8 array (H, W, 3) from a path, an array or encoded file bytes, the longest side at
    most `max_side`.

    Raises InputError (one line) for missing, corrupt, unsupported, tiny or oversized images."""
    if isinstance(src, np.ndarray):
        label = name or "image array"
        if src.size and src.shape[0] * (src.shape[1] if src.ndim > 1 else 1) > MAX_PIXELS:
            raise InputError(f"{label}: more than {MAX_PIXELS // 1_000_000} MP")
        arr = _to_rgb(np.asarray(src), label)
    else:
        label = name or ("image data" if isinstance(src, (bytes, bytearray, memoryview)) else str(src))
        arr = decode_image(src, label)
    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InputError(f"{label}: image is only {w}x{h} pixels; at least {MIN_SIDE} px per side are needed")
    if max(h, w) > max_side:
        from PIL import Image

        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        arr = np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.LANCZOS))
    return np.ascontiguousarray(arr)
