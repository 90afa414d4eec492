"""The report's figures, drawn with matplotlib.

`figure6` is the paper's Figure 6: for one target class, the sorted top-500
probabilities f gives the target on its real private images, on the auxiliary
images and on generated images. `training_curves` plots the logged training
metrics, `leak_bars` the per-target leak (attack vs control) with intervals and
`grouped_bars` the experiment grid's summary.

Figures are built on `matplotlib.figure.Figure` with the Agg canvas, never
through pyplot: no global backend or figure state, so they render headless and
from any thread, and nothing leaks between calls.
"""

from typing import Dict, Optional, Sequence, Tuple

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

# Colour-blind-safe (Okabe-Ito) series colours.
COLORS = ('#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000')
REAL_COLOR = COLORS[5]  # the real images' level on the leak chart
DPI = 100
WIDTH_PX = 800  # every figure is 800 px wide: readable in the report page as is


def _figure(height_px: int, **subplots) -> Tuple[Figure, np.ndarray]:
  fig = Figure(figsize=(WIDTH_PX / DPI, height_px / DPI), dpi=DPI, layout='constrained')
  FigureCanvasAgg(fig)
  axes = fig.subplots(squeeze=False, **subplots)
  return fig, axes.ravel()


def _save(fig: Figure, path: str) -> None:
  # No bbox_inches='tight': the PNG keeps the figure's exact pixel size.
  fig.savefig(path, dpi=DPI, facecolor='white')


def top_sorted(values: np.ndarray, k: int = 500) -> np.ndarray:
  """The k largest values, largest first (fewer when there are fewer)."""
  values = np.asarray(values, np.float64).ravel()
  return np.sort(values)[::-1][:k]


def line_plot(
    path: str,
    series: Dict[str, Tuple[np.ndarray, np.ndarray]],
    title: str = '',
    xlabel: str = '',
    ylabel: str = '',
    ylim: Optional[Tuple[float, float]] = None,
    height_px: int = 500,
) -> None:
  """Writes a PNG with one line per series {name: (x, y)}; non-finite y are gaps."""
  fig, (ax,) = _figure(height_px)
  for i, (name, (x, y)) in enumerate(series.items()):
    y = np.asarray(y, np.float64)
    ax.plot(
        np.asarray(x),
        np.where(np.isfinite(y), y, np.nan),
        color=COLORS[i % len(COLORS)],
        label=name,
        linewidth=2,
        marker='o' if len(y) < 30 else None,
        markersize=4,
    )
  if ylim is not None:
    ax.set_ylim(*ylim)
  ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
  ax.grid(alpha=0.3)
  if series:
    ax.legend(loc='best')
  _save(fig, path)


def figure6(
    path: str,
    private: np.ndarray,
    aux: np.ndarray,
    generated: np.ndarray,
    target_name: str,
    k: int = 500,
) -> Dict[str, np.ndarray]:
  """The paper's Figure 6 for one target; returns the plotted sorted curves.

  Each argument is f's probability of the target on one set of images; each
  curve is that set's top-k probabilities, largest first, against their rank.
  """
  curves = {
      f'private images of {target_name}': top_sorted(private, k),
      'auxiliary images': top_sorted(aux, k),
      'generated images': top_sorted(generated, k),
  }
  line_plot(
      path,
      {n: (np.arange(1, len(c) + 1), c) for n, c in curves.items()},
      title=f'Figure 6: f(x)[{target_name}] on each set of images, top {k} sorted',
      xlabel='rank within the set (1 = highest probability)',
      ylabel=f'probability f gives target {target_name} (0-1)',
      ylim=(-0.02, 1.02),  # curves at 0 or 1 stay off the frame
  )
  return curves


def training_curves(
    path: str, records: Sequence[dict], keys: Sequence[str], title: str = ''
) -> None:
  """Plots metrics.jsonl-style records {step, key: value} against step.

  Every logged record is a point. One panel per key, sharing the step axis:
  losses, penalties and gamma differ by orders of magnitude.
  """
  series = {}
  for key in keys:
    pts = [(r['step'], r[key]) for r in records if key in r and r[key] is not None]
    if pts:
      steps, values = zip(*sorted(pts))
      series[key] = (np.array(steps), np.array(values, np.float64))
  fig, axes = _figure(80 + 200 * max(len(series), 1), nrows=max(len(series), 1), sharex=True)
  for i, (ax, (key, (x, y))) in enumerate(zip(axes, series.items())):
    ax.plot(
        x,
        np.where(np.isfinite(y), y, np.nan),
        color=COLORS[i % len(COLORS)],
        label=key,
        linewidth=1.5,
        marker='o' if len(x) < 30 else None,
        markersize=3,
    )
    ax.set_ylabel(f'{key} (unitless)')
    ax.grid(alpha=0.3)
    ax.legend(loc='best')
  if not series:
    axes[0].text(0.5, 0.5, 'no records', ha='center', va='center', transform=axes[0].transAxes)
  axes[-1].set_xlabel('generator step')
  fig.suptitle(f'Training: {title}' if title else 'Training curves')
  _save(fig, path)


def _yerr(value: np.ndarray, ci: np.ndarray) -> np.ndarray:
  """Error bar lengths (2, T) below and above each value, from bounds (2, T)."""
  ci = np.asarray(ci, np.float64).reshape(2, -1)
  return np.clip(np.stack([value - ci[0], ci[1] - value]), 0.0, None)


# Beyond this many targets, leak_bars turns horizontal: one row per target.
MANY_TARGETS = 20


def leak_bars(
    path: str,
    names: Sequence[str],
    attack: np.ndarray,
    attack_ci: np.ndarray,
    control: np.ndarray,
    control_ci: np.ndarray,
    leak: np.ndarray,
    leak_ci: np.ndarray,
    title: str,
    evaluator: str = '',
    real: Optional[Sequence[Optional[float]]] = None,
) -> None:
  """Per target: attack vs control shares with 95% intervals, and their difference.

  real: (T,) the evaluator's share of each target's real test images read as
  it (None entries: none), drawn as a line across the attack's bar: the level
  a perfect copy of the private data would reach.

  attack, control: (T,) shares of samples the evaluator labels as the target, in
  [0, 1]; leak = attack - control in [-1, 1]; *_ci: (2, T) lower and upper 95%
  bounds. Left/top panel: grouped attack and control bars; right/bottom panel:
  the leak with its interval around a zero line. Up to MANY_TARGETS targets the
  bars stand (labels rotated when crowded); more lie down, one row per target,
  and the figure grows 20 px per target so 100 names stay readable.
  """
  names = [str(n) for n in names]
  t = len(names)
  attack, control, leak = (np.asarray(v, np.float64).ravel() for v in (attack, control, leak))
  if not len(attack) == len(control) == len(leak) == t:
    raise ValueError(
        f'leak_bars: {t} names but {len(attack)} attack, {len(control)} control and '
        f'{len(leak)} leak values'
    )
  pos = np.arange(t)
  share = 'share of samples labelled as the target'
  leak_label = 'leak = attack - control (share)'
  horizontal = t > MANY_TARGETS
  if horizontal:
    fig, (ax, ax_leak) = _figure(
        200 + 20 * t, ncols=2, sharey=True, gridspec_kw=dict(width_ratios=(3, 2))
    )
  else:
    fig, (ax, ax_leak) = _figure(700, nrows=2, sharex=True, gridspec_kw=dict(height_ratios=(3, 2)))
  bars = (
      (ax, -0.2, 0.4, attack, attack_ci, 'attack'),
      (ax, 0.2, 0.4, control, control_ci, 'control'),
      (ax_leak, 0.0, 0.6, leak, leak_ci, 'leak'),
  )
  for i, (a, offset, width, values, ci, name) in enumerate(bars):
    draw, err = (a.barh, 'xerr') if horizontal else (a.bar, 'yerr')
    draw(
        pos + offset,
        values,
        width,
        color=COLORS[i],
        label=f'{name} (95% interval)',
        capsize=2 if horizontal else 4,
        error_kw=dict(elinewidth=1),
        **{err: _yerr(values, ci)},
    )
  if real is not None:
    have = [i for i, v in enumerate(real) if v is not None]
    level = np.array([real[i] for i in have], np.float64)
    # across the attack's bar, which spans pos - 0.4 to pos
    draw = ax.vlines if horizontal else ax.hlines
    draw(
        level,
        pos[have] - 0.4,
        pos[have],
        color=REAL_COLOR,
        linewidth=3,
        label='real test images of the target',
        zorder=3,
    )
  if horizontal:
    ax_leak.axvline(0.0, color='black', linewidth=1)
    ax.set_yticks(pos, names, fontsize=8 if t <= 60 else 7)
    ax.set_ylim(t - 0.5, -0.5)  # the first target on top
    ax.set(xlabel=share, ylabel='target', xlim=(0.0, 1.05))
    ax_leak.set(xlabel=leak_label)
  else:
    ax_leak.axhline(0.0, color='black', linewidth=1)
    ax.set(ylabel=share, ylim=(0.0, 1.05))
    ax_leak.set(ylabel=leak_label, xlabel='target')
    crowded = t > 8 or max(map(len, names), default=0) > 6
    ax_leak.set_xticks(
        pos, names, rotation=45 if crowded else 0, ha='right' if crowded else 'center'
    )
  for a in (ax, ax_leak):
    a.grid(axis='x' if horizontal else 'y', alpha=0.3)
    # Legends above the panels: inside, they could hide a target's bars.
    a.legend(
        loc='lower left',
        bbox_to_anchor=(0.0, 1.0),
        fontsize=8 if horizontal else 9,
        ncols=1 if horizontal else 2,
    )
  sub = f'\nlabels by the evaluator {evaluator}' if evaluator else ''
  fig.suptitle(title + sub)
  _save(fig, path)


def grouped_bars(
    path: str,
    groups: Sequence[str],
    series: Dict[str, Sequence[Optional[float]]],
    title: str,
    ylabel: str,
    xlabel: str = '',
    ylim: Optional[Tuple[float, float]] = (0.0, 1.05),
) -> None:
  """Bars per group, one colour per series {name: value per group}; None: no bar,
  marked 'n/a' so a missing value never reads as zero."""
  fig, (ax,) = _figure(600)
  n = max(len(series), 1)
  width = 0.8 / n
  pos = np.arange(len(groups))
  for i, (name, values) in enumerate(series.items()):
    x = pos - 0.4 + width * (i + 0.5)
    known = np.array([v is not None for v in values], bool)
    heights = np.array([np.nan if v is None else v for v in values], np.float64)
    ax.bar(x[known], heights[known], width, color=COLORS[i % len(COLORS)], label=name)
    for xi in x[~known]:
      ax.text(xi, 0.01, 'n/a', ha='center', va='bottom', fontsize=9, rotation=90, color='0.3')
  rotate = len(groups) > 3
  ax.set_xticks(
      pos,
      groups,
      rotation=30 if rotate else 0,
      ha='right' if rotate else 'center',
      rotation_mode='anchor',
  )
  ax.set_xlim(-0.5, len(groups) - 0.5)  # 'n/a' marks have no bar to widen the axis
  if ylim is not None:
    ax.set_ylim(*ylim)
  ax.set(xlabel=xlabel, ylabel=ylabel)
  fig.suptitle(title)  # above the legend, which sits above the bars
  ax.grid(axis='y', alpha=0.3)
  ax.legend(loc='lower right', bbox_to_anchor=(1.0, 1.0), fontsize=9, ncols=min(n, 4))
  _save(fig, path)
