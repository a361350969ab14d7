"""Photos of a case as they arrive from a phone: checked by content, capped, re-encoded without metadata.

An upload is accepted when its *bytes* (not its name or declared type) are a JPEG, PNG or WebP image that
Pillow decodes completely, and it is within the caps:

* at most :data:`MAX_BYTES` (5 MB, the default request body limit) as uploaded;
* at most :data:`MAX_PIXELS` (40 megapixels, e.g. 8,000 × 5,000) as declared in its header, read *before*
  the pixels are decoded — so a decompression bomb (a small file declaring a huge image) is refused without
  allocating it; Pillow's own bomb check is set to the same figure for the decoding itself;
* at least :data:`MIN_SIDE` (16) pixels on each side.

What is stored is a new JPEG (quality :data:`QUALITY`), turned upright by its EXIF orientation and scaled to
at most :data:`MAX_SIDE` (2,048) pixels on the long side, in RGB: re-encoding keeps the pixels only, so EXIF
(with its GPS position, camera serial, time), XMP, ICC profiles and any bytes appended to the file are gone.
A stored photo is at most :data:`STORED_MAX_BYTES` (the table's CHECK).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from spatial.errors import InvalidInput, PayloadTooLarge

MAX_BYTES = 5_000_000
MAX_PIXELS = 40_000_000
MIN_SIDE = 16
MAX_SIDE = 2048
QUALITY = 85
STORED_MAX_BYTES = 2_000_000
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"))


@dataclass(frozen=True)
class CleanPhoto:
    """A re-encoded photo: JPEG ``data`` of ``width`` × ``height`` pixels, its ``sha256``, and the format the
    upload was (``JPEG``, ``PNG`` or ``WEBP``)."""

    data: bytes
    width: int
    height: int
    sha256: bytes
    source_format: str


def sniff(data: bytes) -> str | None:
    """The image format the first bytes announce (``JPEG``, ``PNG``, ``WEBP``), None for anything else."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def clean_photo(data: bytes) -> CleanPhoto:
    """Check ``data`` (module docstring) and return it re-encoded. PayloadTooLarge (413) past :data:`MAX_BYTES`;
    InvalidInput (422, code ``case.photo_type``, ``case.photo_pixels``, ``case.photo_bomb``, ``case.photo_broken``)
    for what is not a JPEG/PNG/WebP, too many or too few pixels (``photo_bomb``: so many that Pillow refuses to
    open it, twice :data:`MAX_PIXELS`), or an image that does not decode."""
    if len(data) > MAX_BYTES:
        raise PayloadTooLarge(f"a photo is at most {MAX_BYTES // 1_000_000} MB; this one has "
                              f"{len(data) / 1_000_000:.1f} MB", code="case.photo_size",
                              max_mb=MAX_BYTES // 1_000_000)
    kind = sniff(data)
    if kind is None:
        raise InvalidInput("a photo must be a JPEG, PNG or WebP image (checked by its content, not its name)",
                           code="case.photo_type", field="photo")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own check below
            with Image.open(io.BytesIO(data), formats=[kind]) as image:
                width, height = image.size
                if width * height > MAX_PIXELS or min(width, height) < MIN_SIDE:
                    raise InvalidInput(f"a photo has {MIN_SIDE} to {MAX_PIXELS // 1_000_000} million pixels with "
                                       f"sides of at least {MIN_SIDE}; this one is {width} × {height}",
                                       code="case.photo_pixels", field="photo", width=width, height=height,
                                       max_megapixels=MAX_PIXELS // 1_000_000)
                image.load()
                upright = ImageOps.exif_transpose(image)
                rgb = upright.convert("RGB")
    except InvalidInput:
        raise
    except Image.DecompressionBombError:
        raise InvalidInput(f"the photo declares more than {MAX_PIXELS // 1_000_000} million pixels (a decompression "
                           "bomb, or no phone photo): refused unread", code="case.photo_bomb", field="photo",
                           max_megapixels=MAX_PIXELS // 1_000_000) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"the photo cannot be read as a {kind} image ({type(exc).__name__}): send it again, "
                           "or another one", code="case.photo_broken", field="photo") from None
    rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=QUALITY, optimize=True)  # no exif=, no icc_profile=: nothing but pixels
    encoded = out.getvalue()
    return CleanPhoto(encoded, rgb.width, rgb.height, hashlib.sha256(encoded).digest(), kind)


Image.MAX_IMAGE_PIXELS = MAX_PIXELS
