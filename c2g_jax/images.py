"""Image value conversions and the PNG sample grids a user looks at."""

from typing import Optional, Sequence

import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw


def to_float(images_u8, value_range):
  """uint8 [0, 255] -> float32 in the network's value range (lo, hi)."""
  lo, hi = value_range
  return lo + (hi - lo) * jnp.asarray(images_u8).astype(jnp.float32) / 255.0


def are_grey(images_u8, chunk: int = 1024) -> bool:
  """Whether every image of (N, H, W, C) has equal channels (C == 1 counts as grey)."""
  if images_u8.shape[-1] == 1:
    return True
  for i in range(0, len(images_u8), chunk):
    part = np.asarray(images_u8[i : i + chunk])
    if not (part == part[..., :1]).all():
      return False
  return True


def to_uint8(images, value_range) -> np.ndarray:
  lo, hi = value_range
  x = (np.asarray(images, np.float32) - lo) / (hi - lo)
  return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def save_grid(
    path: str,
    rows: np.ndarray,
    value_range,
    row_labels: Optional[Sequence[str]] = None,
    scale: int = 2,
) -> None:
  """Writes rows (R, C, H, W, ch) of images as one PNG, a label left of each row."""
  rows = to_uint8(rows, value_range)
  n_rows, n_cols, h, w, ch = rows.shape
  grid = rows.transpose(0, 2, 1, 3, 4).reshape(n_rows * h, n_cols * w, ch)
  mode = 'L' if ch == 1 else 'RGB'
  img = Image.fromarray(grid[..., 0] if ch == 1 else grid, mode)
  img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
  if row_labels is not None:
    margin = 8 + 7 * max(len(s) for s in row_labels)
    canvas = Image.new(mode, (img.width + margin, img.height), 255 if ch == 1 else (255,) * 3)
    canvas.paste(img, (margin, 0))
    draw = ImageDraw.Draw(canvas)
    for r, label in enumerate(row_labels):
      draw.text((4, r * h * scale + h * scale // 2 - 5), label, fill=0 if ch == 1 else (0, 0, 0))
    img = canvas
  img.save(path)
