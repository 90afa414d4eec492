"""Line plots drawn with Pillow alone (matplotlib is not a dependency).

`figure6` is the paper's Figure 6: for one target class, the sorted top-500
probabilities f gives the target on its real private images, on the auxiliary
images and on generated images. `line_plot` also draws the training curves of
the run report.
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

# Colour-blind-safe (Okabe-Ito) series colours.
COLORS = ((0, 114, 178), (230, 159, 0), (0, 158, 115), (204, 121, 167), (86, 180, 233),
          (213, 94, 0), (240, 228, 66), (0, 0, 0))


def top_sorted(values: np.ndarray, k: int = 500) -> np.ndarray:
  """The k largest values, largest first (fewer when there are fewer)."""
  values = np.asarray(values, np.float64).ravel()
  return np.sort(values)[::-1][:k]


def _ticks(lo: float, hi: float, n: int = 5) -> np.ndarray:
  if hi <= lo:
    return np.array([lo])
  raw = (hi - lo) / n
  mag = 10 ** np.floor(np.log10(raw))
  step = min((s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw), default=raw)
  ticks = np.arange(np.ceil(lo / step), np.floor(hi / step) + 1) * step
  return np.round(ticks, 10) + 0.0   # + 0.0 turns -0.0 into 0.0


def _fmt(v: float) -> str:
  if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-2):
    return f'{v:.0e}'
  return f'{v:g}'


def line_plot(path: str, series: Dict[str, Tuple[np.ndarray, np.ndarray]], title: str = '',
              xlabel: str = '', ylabel: str = '', ylim: Optional[Tuple[float, float]] = None,
              size: Tuple[int, int] = (640, 400)) -> None:
  """Writes a PNG with one polyline per series {name: (x, y)}.

  The legend goes below the plot (the image grows by one line per series), so
  it never hides a curve.
  """
  width, plot_height = size
  legend_h = 14 * len(series) + 6
  height = plot_height + legend_h
  left, right, top, bottom = 64, 16, 30, 48 + legend_h
  img = Image.new('RGB', (width, height), (255, 255, 255))
  draw = ImageDraw.Draw(img)
  xs = [np.asarray(x, np.float64) for x, _ in series.values()]
  ys = [np.asarray(y, np.float64) for _, y in series.values()]
  finite = [v[np.isfinite(v)] for v in ys]
  all_x = np.concatenate(xs) if xs else np.zeros(1)
  all_y = np.concatenate(finite) if finite else np.zeros(1)
  if all_y.size == 0:
    all_y = np.zeros(1)
  x0, x1 = float(all_x.min()), float(all_x.max())
  y0, y1 = ylim if ylim is not None else (float(all_y.min()), float(all_y.max()))
  if x1 == x0:
    x1 = x0 + 1.0
  if y1 == y0:
    y0, y1 = y0 - 0.5, y1 + 0.5
  pw, ph = width - left - right, height - top - bottom

  def px(x, y):
    return (left + (x - x0) / (x1 - x0) * pw, top + (1.0 - (y - y0) / (y1 - y0)) * ph)

  # Axes, ticks and grid.
  draw.rectangle([left, top, left + pw, top + ph], outline=(0, 0, 0))
  for t in _ticks(x0, x1):
    x, _ = px(t, y0)
    draw.line([(x, top), (x, top + ph)], fill=(230, 230, 230))
    draw.line([(x, top + ph), (x, top + ph + 4)], fill=(0, 0, 0))
    draw.text((x - 3 * len(_fmt(t)), top + ph + 6), _fmt(t), fill=(0, 0, 0))
  for t in _ticks(y0, y1):
    _, y = px(x0, t)
    draw.line([(left, y), (left + pw, y)], fill=(230, 230, 230))
    draw.line([(left - 4, y), (left, y)], fill=(0, 0, 0))
    draw.text((left - 8 - 6 * len(_fmt(t)), y - 5), _fmt(t), fill=(0, 0, 0))
  draw.rectangle([left, top, left + pw, top + ph], outline=(0, 0, 0))
  draw.text((left + pw // 2 - 3 * len(title), 4), title, fill=(0, 0, 0))
  draw.text((left + pw // 2 - 3 * len(xlabel), top + ph + 22), xlabel, fill=(0, 0, 0))
  draw.text((4, top - 12), ylabel, fill=(0, 0, 0))

  # Series, clipped to the plot box, then the legend (top right).
  for i, (name, (x, y)) in enumerate(series.items()):
    color = COLORS[i % len(COLORS)]
    x = np.asarray(x, np.float64)
    y = np.clip(np.asarray(y, np.float64), y0, y1)
    ok = np.isfinite(y)
    pts = [px(a, b) for a, b in zip(x[ok], y[ok])]
    if len(pts) > 1:
      draw.line(pts, fill=color, width=2)
    elif pts:
      draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=color)
  lx, ly = left, top + ph + 40
  for i, name in enumerate(series):
    color = COLORS[i % len(COLORS)]
    draw.line([(lx, ly + 14 * i + 5), (lx + 14, ly + 14 * i + 5)], fill=color, width=3)
    draw.text((lx + 18, ly + 14 * i), name, fill=(0, 0, 0))
  img.save(path)


def figure6(path: str, private: np.ndarray, aux: np.ndarray, generated: np.ndarray,
            target_name: str, k: int = 500) -> Dict[str, np.ndarray]:
  """The paper's Figure 6 for one target; returns the plotted sorted curves.

  Each argument is f's probability of the target on one set of images; each
  curve is that set's top-k probabilities, largest first, against their rank.
  """
  curves = {f'private images of {target_name}': top_sorted(private, k),
            'auxiliary images': top_sorted(aux, k),
            'generated images': top_sorted(generated, k)}
  line_plot(path, {n: (np.arange(1, len(c) + 1), c) for n, c in curves.items()},
            title=f'f(x)[{target_name}], top {k} sorted (Figure 6)', xlabel='rank',
            ylabel='probability', ylim=(0.0, 1.0))
  return curves


def training_curves(path: str, records: Sequence[dict], keys: Sequence[str],
                    title: str = '') -> None:
  """Plots metrics.jsonl-style records {step, key: value} against step."""
  series = {}
  for key in keys:
    pts = [(r['step'], r[key]) for r in records if key in r]
    if pts:
      series[key] = (np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
  line_plot(path, series, title=title, xlabel='generator step')
