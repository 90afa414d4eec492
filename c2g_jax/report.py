"""One report per run: a static HTML page with its PNGs beside it, plus report.json.

    <workdir>/report/index.html   the verdict first (sentence, per-target attack /
                                  control / leak table, leak chart), the attack and
                                  control sample grids, f and f' accuracies, every
                                  table, Figure 6, interpolations, curves, settings
    <workdir>/report/report.json  every number of the page

`leak_metrics` computes the numbers from callables (so it can be tested with
hand-made classifiers); `run_report` is the glue a training run calls once after
its evaluation; `write_html` lays out the page.
"""

import html
import inspect
import json
import os
import shutil
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from c2g_jax import audit as audit_lib
from c2g_jax import checkpoint
from c2g_jax import classifier
from c2g_jax import evaluators as evaluators_lib
from c2g_jax import images
from c2g_jax import interpolation
from c2g_jax import metrics
from c2g_jax import paper_tables
from c2g_jax import plots
from c2g_jax import stages
from c2g_jax import tensorboard
from c2g_jax import verdict as verdict_lib
from c2g_jax import workdir as workdir_lib

PyTree = Any
# (images) -> (class probabilities (N, d), features (N, F)), both numpy.
EvalFn = Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]]

FEATURE_COLUMNS = (
    ('fid', 'FID'),
    ('kid', 'KID'),
    ('precision', 'precision'),
    ('recall', 'recall'),
    ('density', 'density'),
    ('coverage', 'coverage'),
    ('coverage_samples', 'coverage, as many samples as real images'),
    ('coverage_real', 'coverage by real test images'),
    ('relative_coverage', 'relative coverage (samples / real)'),
    ('knn_generated', 'KNN gen&rarr;private'),
    ('knn_aux_closest', 'KNN closest aux&rarr;private'),
    ('knn_generated_to_aux', 'KNN gen&rarr;aux'),
)


# --- classifiers as batched numpy functions ---------------------------------------------


def model_eval(module, variables: PyTree, meta: dict, input_range, batch_size: int = 256) -> EvalFn:
  """(images) -> (probs, features) of a released classifier, in fixed-size batches.

  Images are uint8 or floats in `input_range` (the generator's). Features are the
  penultimate layer when the module offers `return_features` (the ResNet f'),
  else the logits. Every batch is padded to batch_size so one compile serves all.
  """
  lo, hi = meta['value_range']
  in_lo, in_hi = input_range
  call = getattr(module, '__call__', None)  # a user's function classifier has none
  with_features = call is not None and 'return_features' in inspect.signature(call).parameters

  @jax.jit
  def apply(v, x):
    if x.dtype == jnp.uint8:
      x = images.to_float(x, (lo, hi))
    else:
      x = lo + (hi - lo) * (x - in_lo) / (in_hi - in_lo)
    if with_features:
      logits, feats = module.apply(v, x, train=False, return_features=True)
    else:
      logits = feats = module.apply(v, x, train=False)
    return jax.nn.softmax(logits, -1), feats

  def fn(x):
    x = np.asarray(x)
    probs, feats = [], []
    for i in range(0, len(x), batch_size):
      xb = x[i : i + batch_size]
      n = len(xb)
      if n < batch_size:
        xb = np.concatenate([xb, np.zeros((batch_size - n,) + xb.shape[1:], xb.dtype)])
      p, f = apply(variables, xb)
      probs.append(np.asarray(p)[:n])
      feats.append(np.asarray(f)[:n])
    if not probs:
      raise ValueError('model_eval got no images')
    return np.concatenate(probs), np.concatenate(feats)

  return fn


# --- the numbers ------------------------------------------------------------------------


def leak_metrics(
    generated: np.ndarray,
    targets: Sequence[int],
    label_names: Sequence[str],
    private_x: np.ndarray,
    private_y: np.ndarray,
    aux_x: np.ndarray,
    f_eval: EvalFn,
    e_eval: EvalFn,
    reference: Optional[Tuple[np.ndarray, np.ndarray, Sequence[str]]] = None,
    k: int = 3,
    max_aux: int = 20000,
    top: int = 500,
    seed: int = 0,
    evaluator_outputs: Optional[Tuple[np.ndarray, np.ndarray]] = None,
    real_features: Optional[Tuple[np.ndarray, np.ndarray]] = None,
):
  """Every table of the report. Returns (numbers, figure6 curves).

  generated: (T, n, H, W, C) samples G(z, onehot(t)) per target; private_*: D_tr;
  aux_x: D_aux; f_eval / e_eval: f and the evaluator f'. reference: (images,
  labels, class names) of real images for the false-recognition table (default
  D_tr). Feature metrics use at most max_aux auxiliary images (a fixed random
  subset); f's probabilities for Figure 6 use them all. evaluator_outputs:
  e_eval's (probs, features) of the flattened samples, when already computed;
  real_features: e_eval's features of real held-out images of the targets, with
  their labels; their coverage of D_tr is the scale of the samples'
  (metrics.coverage_against_real).
  """
  targets = list(targets)
  names = [label_names[t] for t in targets]
  n_t, n = generated.shape[:2]
  flat = generated.reshape((n_t * n,) + generated.shape[2:])
  f_gen = f_eval(flat)[0].reshape(n_t, n, -1)
  e_gen, feat_gen = evaluator_outputs if evaluator_outputs is not None else e_eval(flat)
  e_gen = e_gen.reshape(n_t, n, -1)
  feat_gen = feat_gen.reshape(n_t, n, -1)
  f_priv = f_eval(private_x)[0]
  feat_priv = e_eval(private_x)[1]
  f_aux = f_eval(aux_x)[0] if len(aux_x) else np.zeros((0, f_priv.shape[1]))
  sub = np.arange(len(aux_x))
  if len(sub) > max_aux:
    sub = np.sort(np.random.default_rng(seed).choice(len(sub), max_aux, replace=False))
  feat_aux = e_eval(aux_x[sub])[1] if len(sub) else None
  feat_real, real_y = (None, None) if real_features is None else real_features
  real_y = None if real_y is None else np.asarray(real_y)

  out = {
      'targets': names,
      'samples_per_target': int(n),
      'evaluator': metrics.accuracy_table(e_gen, targets, names, ks=(1, 5)),
      'f': metrics.accuracy_table(f_gen, targets, names, ks=(1,)),
  }
  per_class, skipped = {}, []
  for i, (t, name) in enumerate(zip(targets, names)):
    mine = feat_priv[np.asarray(private_y) == t]
    if len(mine) <= k or n <= k:
      skipped.append(name)
      continue
    per_class[name] = metrics.feature_metrics(feat_gen[i], mine, feat_aux, k=k)
    if feat_real is not None and np.sum(real_y == t) > k:
      per_class[name].update(
          metrics.coverage_against_real(mine, feat_gen[i], feat_real[real_y == t], k)
      )
  out['features'] = {
      'per_class': per_class,
      'summary': metrics.summarize(per_class),
      'k': k,
      'aux_images_used': int(len(sub)),
      'skipped': skipped,
  }

  ref_x, ref_y, ref_names = reference or (private_x, private_y, label_names)
  if len(ref_x):
    # The default reference is D_tr, whose f probabilities are f_priv already.
    ref_probs = f_priv if reference is None else f_eval(ref_x)[0]
    out['false_recognition'] = metrics.false_recognition(
        ref_probs, ref_y, ref_names, targets, names
    )
  else:
    out['false_recognition'] = {name: [] for name in names}
  out['false_recognition_images'] = int(len(ref_x))

  curves = {}
  for i, (t, name) in enumerate(zip(targets, names)):
    curves[name] = {
        'private': plots.top_sorted(f_priv[np.asarray(private_y) == t, t], top),
        'aux': plots.top_sorted(f_aux[:, t], top),
        'generated': plots.top_sorted(f_gen[i, :, t], top),
    }
  return out, curves


# --- the page ----------------------------------------------------------------------------


def _num(v, digits=3) -> str:
  if v is None:
    return '&ndash;'
  if isinstance(v, str):
    return html.escape(v)
  return f'{v:.{digits}f}'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = '') -> str:
  """A table whose header stays in view while its body scrolls past (CSS)."""
  head = ''.join(f'<th>{h}</th>' for h in header)
  body = ''.join('<tr>' + ''.join(f'<td>{c}</td>' for c in r) + '</tr>' for r in rows)
  attr = f' class="{cls}"' if cls else ''
  table = f'<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
  # Wide tables (a column per target) scroll sideways rather than overflow the page.
  return f'<div class="scroll">{table}</div>' if cls == 'wide' else table


def _png_size(path: str) -> Optional[Tuple[int, int]]:
  """(width, height) from a PNG's header, None if it is not there."""
  try:
    with open(path, 'rb') as f:
      head = f.read(24)
  except OSError:
    return None
  if head[:8] != b'\x89PNG\r\n\x1a\n':
    return None
  return int.from_bytes(head[16:20], 'big'), int.from_bytes(head[20:24], 'big')


def _grid_img(folder: str, name: str, max_w: int = 580, max_h: int = 800) -> str:
  """A sample grid scaled to fill its half of the page: 28-pixel digits stay readable."""
  size = _png_size(os.path.join(folder, name))
  width = ''
  if size:
    scale = min(max_w / size[0], max_h / size[1], 3.0)
    width = f' width="{round(size[0] * scale)}" height="{round(size[1] * scale)}"'
  return f'<img class="grid" src="{html.escape(name)}"{width} alt="{html.escape(name)}">'


def accuracy_rows(numbers: dict) -> Tuple[list, list]:
  names = numbers['targets']
  header = ['classifier', 'measure'] + [html.escape(n) for n in names] + ['mean', 'std']
  rows = []
  for who, key, measure in (
      ("f'", 'evaluator', 'acc@1'),
      ("f'", 'evaluator', 'acc@5'),
      ('f (not independent)', 'f', 'acc@1'),
  ):
    t = numbers[key][measure]
    rows.append(
        [who, measure]
        + [_num(t['per_class'][n], 2) for n in names]
        + [_num(t['mean']), _num(t['std'])]
    )
  return header, rows


def _ci(lo_hi, signed: bool = False) -> str:
  fmt = '{:+.2f}' if signed else '{:.2f}'
  return f'[{fmt.format(lo_hi[0])}, {fmt.format(lo_hi[1])}]'


def _share(value: float, lo_hi, signed: bool = False, bold: bool = False) -> str:
  """A share and its interval, the interval smaller and grey so the share reads first."""
  v = f'{value:+.3f}' if signed else f'{value:.3f}'
  v = f'<b>{v}</b>' if bold else v
  return f'{v} <span class="ci">{_ci(lo_hi, signed)}</span>'


# Background of a status cell; the verdict box takes the worst status's border colour.
_STATUS_COLOURS = {
    'recovered': '#f4c7c3',
    'partly recovered': '#fce8b2',
    'from the auxiliary data': '#e8eaed',
    'not recovered': '#d9ead3',
    'not shown': '#ffffff',
}
_STATUS_BORDERS = {
    'recovered': '#c5221f',
    'partly recovered': '#e37400',
    'from the auxiliary data': '#80868b',
    'not recovered': '#188038',
    'not shown': '#80868b',
}


def _status(status: str) -> str:
  cls = status.replace(' ', '-')
  return f'<span class="status {cls}">{html.escape(status)}</span>'


def selection_sentence(audit: dict) -> str:
  """The final selection in words, with the headline's raw and selected means."""
  sel, head = audit['selection'], audit['evaluators'][audit['headline']]
  realism = sel.get('realism', 1)
  if realism > 1:
    kept = (
        f"the {realism * sel['kept']} that f labels most confidently over {sel['views']} random "
        f"warps, and of those the {sel['kept']} that the critic scores most like the auxiliary "
        "images, are kept (an attacker's step: it uses f and D alone)"
    )
  else:
    kept = (
        f"the {sel['kept']} that f labels most confidently over {sel['views']} random warps "
        "are kept (an attacker's step: it uses f alone)"
    )
  return (
      f"Final selection: of {sel['candidates']} draws per target, {kept}. "
      f"f'[{audit['headline']}] labels {head['attack_raw_mean']:.3f} "
      f"of the raw draws and {head['mean']['attack']:.3f} of the kept ones as their target; "
      'the control is never selected (it must not use f), so the leak counts what the '
      'selection adds.'
  )


def _selection_parts(audit: dict) -> Tuple[list, dict]:
  """With a final selection: its sentence, and the headline's share of the raw
  draws per row name (targets and the mean); without: nothing."""
  if not audit.get('selection'):
    return [], {}
  head = audit['evaluators'][audit['headline']]
  raw = dict(head['attack_raw'], **{head['mean']['name']: head['attack_raw_mean']})
  return [f'<p class="selection">{html.escape(selection_sentence(audit))}</p>'], raw


def audit_html(
    audit: dict,
    leak_chart: Optional[str],
    samples_per_target: int,
    larger_chart: Optional[str] = None,
) -> list:
  """The verdict section: sentence, warnings, per-target table, chart, evaluators;
  larger_chart: the leak chart of the judge whose leak lies wholly above the
  headline's (audit['larger_leak']), shown after the headline's."""
  head_name = audit['headline']
  head = audit['evaluators'][head_name]
  statuses = [r['status'] for r in head['rows']]
  worst = next((s for s in _STATUS_BORDERS if s in statuses), 'not shown')
  parts = [
      f'<div class="verdict" id="verdict" style="border-color:{_STATUS_BORDERS[worst]}">'
      f'<p class="sentence"><b>Verdict.</b> {html.escape(audit["verdict"])}</p>'
  ]
  if audit['with_control'] and statuses:
    counts = [(s, statuses.count(s)) for s in _STATUS_BORDERS if statuses.count(s)]
    parts.append(
        '<p class="counts">' + ' '.join(f'{_status(s)}&nbsp;&times;{k}' for s, k in counts) + '</p>'
    )
  if audit['warnings']:
    parts.append(
        '<ul class="warnings">'
        + ''.join(f'<li>{html.escape(w)}</li>' for w in audit['warnings'])
        + '</ul>'
    )
  parts.append('</div>')
  if audit['with_control']:
    parts.append(
        f'<h2 id="targets">Per target: attack, control and leak (judged by '
        f"f'[{html.escape(head_name)}])</h2>"
    )
    parts.append(
        f'<p>Share of {samples_per_target} samples G(z, onehot(t)) per target that the '
        f"evaluator labels t (the paper's inception accuracy), for the attack and for the "
        'control (the same GAN, seed and auxiliary data with gamma held at 0: what the '
        'auxiliary data alone gives). Leak = attack - control. 95% intervals: '
        f"{html.escape(audit['interval_method'])}; they cover the sampling of z, not "
        'the variation between GAN training runs.</p>'
    )
    sentence, raw = _selection_parts(audit)
    parts += sentence
    with_real = head.get('real') is not None
    if with_real:
      parts.append(
          '<p>Real test images: the share of the real held-out images of each target that '
          'the same evaluator labels as the target, what the private data itself scores. A '
          'target it reads below 0.50 cannot show a leak through it.</p>'
      )
    rows = []
    for r in head['rows'] + [head['mean']]:
      rows.append(
          [f"<b>{html.escape(r['name'])}</b>"]
          + ([_num(raw[r['name']])] if raw else [])
          + [
              _share(r['attack'], r['attack_ci']),
              _share(r['control'], r['control_ci']),
              _share(r['leak'], r['leak_ci'], signed=True, bold=True),
          ]
          + ([_num(r.get('real'))] if with_real else [])
          + [_status(r['status'])]
      )
    parts.append('<div class="side">')
    parts.append(
        _table(
            ['target']
            + (['attack, raw draws'] if raw else [])
            + [
                'attack [95% CI]' + (' (selected)' if raw else ''),
                'control [95% CI]',
                'leak [95% CI]',
            ]
            + (['real test images'] if with_real else [])
            + ['verdict'],
            rows,
            cls='targets',
        )
    )
    if leak_chart:
      parts.append(f'<img class="chart" src="{html.escape(leak_chart)}" alt="leak per target">')
    parts.append('</div>')
    if larger_chart and audit.get('larger_leak'):
      larger = audit['larger_leak']
      parts.append(
          f"<p>The larger leak: f'[{html.escape(larger['evaluator'])}] (test accuracy "
          f"{_num(larger.get('test_accuracy'), 3)}) reads the same samples against the same "
          "control with a leak wholly above the headline judge's. Decide by it.</p>"
          f'<img class="chart" src="{html.escape(larger_chart)}" '
          'alt="leak per target by the judge with the larger leak">'
      )
  else:
    parts.append('<h2 id="targets">Per target (no control run: the leak is not measured)</h2>')
    sentence, raw = _selection_parts(audit)
    parts += sentence
    parts.append(
        _table(
            ['target']
            + (['attack, raw draws'] if raw else [])
            + ['attack [95% CI]' + (' (selected)' if raw else '')],
            [
                [html.escape(r['name'])]
                + ([_num(raw[r['name']])] if raw else [])
                + [_share(r['attack'], r['attack_ci'])]
                for r in head['rows'] + [head['mean']]
            ],
            cls='targets',
        )
    )
  if audit.get('paper'):
    parts.append(
        f'<p class="paper">{html.escape(paper_tables.comparison_sentence(audit["paper"], head_name))}'
        '</p>'
    )
  parts.append(
      '<details><summary>Each target in words</summary><ul>'
      + ''.join(f'<li>{html.escape(t)}</li>' for t in audit['target_verdicts'])
      + '</ul></details>'
  )
  return parts


def evaluators_html(audit: dict, names: Sequence[str]) -> list:
  """Every evaluator's shares per target, its accuracy, and how often they agree."""
  parts = [
      '<h2 id="evaluators">Evaluators: a second opinion</h2>',
      '<p>Each evaluator is trained on D_tr only and never seen by the attacker. The '
      'most accurate on the test set (balanced: the mean of its per-class accuracies) '
      'heads the verdict; a weaker one understates the leak.</p>',
  ]
  header = (
      ['evaluator', 'architecture', 'test acc', 'balanced test acc', 'validation acc', 'run']
      + [html.escape(n) for n in names]
      + ['mean']
  )
  rows = []
  for name, e in audit['evaluators'].items():
    label = html.escape(name) + (' (headline)' if name == audit['headline'] else '')
    if e['weaker_than_f']:
      label += ' <span class="badge">weaker than f</span>'
    if name == (audit.get('larger_leak') or {}).get('evaluator'):
      label += ' <span class="badge">larger leak: decide by it</span>'
    for run in ('attack', 'control'):
      if e[run] is None:
        continue
      first = [
          label,
          html.escape(str(e['architecture'])),
          _num(e['test_accuracy'], 4),
          _num(e.get('balanced_test_accuracy'), 4),
          _num(e['validation_accuracy'], 4),
      ]
      rows.append(
          (first if run == 'attack' else [''] * len(first))
          + [run]
          + [_num(e[run][n], 2) for n in names]
          + [_num(e['mean'][run])]
      )
  parts.append(_table(header, rows, cls='wide'))
  agree = [
      f"{html.escape(k)}: {v:.3f} of the attack's samples get the same label"
      + (
          f" ({audit['agreement_control'][k]:.3f} of the control's)"
          if k in audit['agreement_control']
          else ''
      )
      for k, v in audit['agreement_attack'].items()
  ]
  if agree:
    parts.append('<p>Agreement: ' + '; '.join(agree) + '.</p>')
  return parts


def write_html(
    path: str,
    title: str,
    settings: dict,
    classifiers: Dict[str, Any],
    numbers: dict,
    figures: Dict[str, str],
    notes: Sequence[str] = (),
    audit: Optional[dict] = None,
    leak_chart: Optional[str] = None,
    larger_chart: Optional[str] = None,
    method: str = 'PreImageGAN',
) -> None:
  """The report page; figures {caption: file name relative to the page}.

  classifiers: {label: test accuracy or (test accuracy, validation accuracy[,
  balanced test accuracy])}.
  The verdict (audit) comes first, then the samples, the evaluators, and the
  field's measures; the settings are folded away at the bottom.
  """
  folder = os.path.dirname(path)
  sections = [('verdict', 'Verdict'), ('targets', 'Per target')] if audit is not None else []
  sections += [('samples', 'Samples'), ('classifiers', 'Classifiers')]
  sections += [('evaluators', 'Evaluators')] if audit is not None else []
  sections += [('measures', 'Measures'), ('figures', 'Figures'), ('settings', 'Settings')]
  parts = [f'<h1>{html.escape(title)}</h1>']
  parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
  parts.append(
      '<nav>' + ' &middot; '.join(f'<a href="#{k}">{v}</a>' for k, v in sections) + '</nav>'
  )
  if audit is not None:
    parts += audit_html(audit, leak_chart, numbers['samples_per_target'], larger_chart)
  parts.append('<a id="samples"></a><h2>Samples</h2><div class="pair">')
  parts.append(
      '<figure>'
      + _grid_img(folder, 'samples.png')
      + '<figcaption>'
      + (
          '<b>The attack</b>: one row per target, G(z, onehot(t)); last row y from '
          'the label prior'
          if method == 'PreImageGAN'
          else 'One row per target'
      )
      + '</figcaption></figure>'
  )
  if (
      audit is not None
      and audit['with_control']
      and os.path.exists(os.path.join(folder, 'control_samples.png'))
  ):
    parts.append(
        '<figure>'
        + _grid_img(folder, 'control_samples.png')
        + '<figcaption><b>The control</b> (gamma = 0), same z and y: what the '
        'auxiliary data alone gives</figcaption></figure>'
    )
  parts.append('</div>')
  if audit is not None and audit.get('selection'):
    sel = audit['selection']
    parts.append('<div class="pair">')
    parts.append(
        '<figure>'
        + _grid_img(folder, 'samples_raw.png')
        + f"<figcaption><b>Raw draws</b>: the first {sel['kept']} per target, before "
        'selection (first columns shown)</figcaption></figure>'
    )
    parts.append(
        '<figure>'
        + _grid_img(folder, 'samples_selected.png')
        + f"<figcaption><b>Selected</b>: the {sel['kept']} of {sel['candidates']} that f "
        'labels most confidently (first columns shown); the verdict judges these'
        '</figcaption></figure>'
    )
    parts.append('</div>')
  parts.append('<h2 id="classifiers">Classifiers</h2>')
  rows = []
  for k, v in classifiers.items():
    test, val, balanced = (tuple(v) + (None, None))[:3] if isinstance(v, tuple) else (v, None, None)
    rows.append([html.escape(k), _num(test, 4), _num(balanced, 4), _num(val, 4)])
  # Balanced: the mean of the per-class accuracies, by which judges are ranked.
  parts.append(
      _table(['model', 'test accuracy', 'balanced test accuracy', 'validation accuracy'], rows)
  )
  if audit is not None:
    parts += evaluators_html(audit, numbers['targets'])

  parts.append(
      '<h2 id="measures">Inception accuracy (Tables 3 and 4) and acc@5, headline ' 'evaluator</h2>'
  )
  parts.append(
      f"<p>Share of {numbers['samples_per_target']} samples G(z, onehot(t)) per "
      'target that the classifier labels t (acc@1), or ranks among its five most '
      "probable classes (acc@5). f' is independent of the attack; f is the "
      'attacked model and therefore optimistic.</p>'
  )
  parts.append(_table(*accuracy_rows(numbers), cls='wide'))

  feats = numbers['features']
  parts.append("<h2>Feature-space measures (f' penultimate features)</h2>")
  parts.append(
      f"<p>Generated images of target t against D_tr's images of class t. "
      f"Precision/recall/density/coverage with k = {feats['k']} (Naeem et al. "
      '2020). KNN: mean Euclidean distance to the nearest private image of the '
      'class, for the generated images and for the same number of auxiliary images '
      'closest to the class (what copying the best auxiliary look-alikes would '
      f'give), and from generated to the nearest auxiliary image '
      f"({feats['aux_images_used']} auxiliary images used). Relative coverage: the "
      'coverage of the private class by the samples over its coverage by as many real '
      'held-out images of it (1: as varied as real data; below '
      f'{verdict_lib.NARROW_COVERAGE} the verdict says the samples vary little). '
      'FID is biased upwards when a class has fewer images than feature dimensions.</p>'
  )
  rows = [
      [html.escape(n)] + [_num(v.get(k)) for k, _ in FEATURE_COLUMNS]
      for n, v in feats['per_class'].items()
  ]
  for stat in ('mean', 'std'):
    rows.append(
        [f'<b>{stat}</b>']
        + [_num(feats['summary'].get(k, {}).get(stat)) for k, _ in FEATURE_COLUMNS]
    )
  parts.append(_table(['target'] + [c for _, c in FEATURE_COLUMNS], rows))
  if feats['skipped']:
    parts.append(f"<p>Skipped (too few images): {html.escape(', '.join(feats['skipped']))}</p>")

  parts.append('<h2>False recognition (Appendix B)</h2>')
  parts.append(
      f'<p>For each target, the non-target classes whose real images f labels as '
      f"the target with probability above 0.9, and the share of that class's "
      f"images that it does so for ({numbers['false_recognition_images']} real "
      'images).</p>'
  )
  rows = [
      [html.escape(t)]
      + ([f'{html.escape(c)} ({r:.3f})' for c, r in lst] or ['none'])
      + [''] * (5 - max(len(lst), 1))
      for t, lst in numbers['false_recognition'].items()
  ]
  parts.append(_table(['target', '1st', '2nd', '3rd', '4th', '5th'], rows, cls='text'))

  # Figures side by side, two to a row, each with its caption under it.
  parts.append('<h2 id="figures">Figures</h2><div class="gallery">')
  for caption, name in figures.items():
    parts.append(
        f'<figure><img src="{html.escape(name)}"><figcaption>{html.escape(caption)}'
        '</figcaption></figure>'
    )
  parts.append('</div>')

  # The configuration, folded away: one small table per section, side by side.
  flat = sorted(workdir_lib.flatten(settings).items())
  groups: Dict[str, list] = {}
  for k, v in flat:
    groups.setdefault(k.split('.')[0] if '.' in k else 'run', []).append(
        [html.escape(k), html.escape(str(v))]
    )
  parts.append(
      f'<h2 id="settings">Settings</h2><details><summary>The run\'s configuration '
      f'({len(flat)} keys)</summary><div class="settings">'
  )
  parts += [_table([html.escape(g), ''], rows, cls='text') for g, rows in groups.items()]
  parts.append('</div></details>')
  status_css = ''.join(
      f'.status.{k.replace(" ", "-")}{{background:{c};' f'border-color:{_STATUS_BORDERS[k]}}}'
      for k, c in _STATUS_COLOURS.items()
  )
  style = (
      'body{font-family:system-ui,sans-serif;margin:2em auto;max-width:80em;'
      'padding:0 2em;color:#202124;line-height:1.4}'
      'h1{margin-bottom:0.2em}h2{margin-top:1.8em;border-bottom:1px solid #dadce0}'
      '.note{color:#5f6368;margin:0}nav{margin:0.6em 0 1.2em;font-size:0.95em}'
      'nav a{color:#1a73e8;text-decoration:none}'
      'table{border-collapse:collapse;margin:0.5em 0;font-variant-numeric:tabular-nums}'
      'td,th{border:1px solid #dadce0;padding:3px 8px;text-align:right;'
      'white-space:nowrap}'
      'th{background:#f1f3f4;position:sticky;top:0;z-index:1}'
      'td:first-child,th:first-child{text-align:left}'
      'tbody tr:nth-child(even){background:#f8f9fa}'
      'table.text td,table.text th{text-align:left;white-space:normal}'
      'table.targets tbody tr:last-child{border-top:2px solid #5f6368;font-weight:bold}'
      'table.targets td:last-child,table.targets th:last-child{text-align:left}'
      '.ci{color:#5f6368;font-size:0.9em}'
      '.status{display:inline-block;padding:0 6px;border-radius:3px;'
      'border:1px solid;font-weight:normal}'
      + status_css
      + '.badge{color:#fff;background:#c5221f;border-radius:3px;padding:0 4px;'
      'font-size:0.85em}'
      'img{image-rendering:pixelated;max-width:100%}'
      'img.chart{image-rendering:auto;width:44em;max-width:100%;height:auto}'
      '.verdict{border:1px solid #dadce0;border-left:8px solid;background:#f8f9fa;'
      'padding:0.4em 1.2em;border-radius:4px}'
      '.verdict .sentence{font-size:1.3em;line-height:1.35;margin:0.5em 0}'
      '.verdict .counts .status{font-size:1em}'
      '.warnings{color:#b06000;margin:0.5em 0;padding-left:1.2em}'
      '.side{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start}'
      '.side table{flex:none}'
      '.pair{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start}figure{margin:0}'
      'img.grid{height:auto;border:1px solid #dadce0}'
      'figcaption{font-size:0.9em;max-width:36em;color:#3c4043;margin-top:0.3em}'
      '.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(34em,1fr));'
      'gap:1.5em 2em;align-items:start}'
      '.gallery img{image-rendering:auto;height:auto}'
      '.scroll{overflow-x:auto;max-width:100%}'
      'table.wide td,table.wide th{padding:3px 5px}'
      '.settings{display:grid;grid-template-columns:repeat(auto-fill,minmax(24em,1fr));'
      'gap:0 2em;align-items:start;font-size:0.9em}'
      '.settings table{width:100%}.settings td:last-child{overflow-wrap:anywhere}'
      'details{margin:0.6em 0}summary{cursor:pointer;color:#1a73e8}'
  )
  with open(path, 'w') as f:
    f.write(
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}'
        f'</title><style>{style}</style></head><body>{"".join(parts)}</body></html>\n'
    )


# --- the glue a run calls -----------------------------------------------------------------


def reference_images(problem):
  """Real images of every class for the false-recognition table (see Problem.reference)."""
  if problem.reference is not None:
    return problem.reference
  return problem.test_x, np.asarray(problem.test_y), list(problem.label_names)


def _read_jsonl(path: str) -> list:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _jsonable(x):
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, np.ndarray):
    return [round(float(v), 5) for v in x.ravel()]
  if isinstance(x, (np.floating, np.integer)):
    return x.item()
  return x


def _label_for(problem) -> str:
  return 'person' if problem.dataset == 'facescrub' else 'class'


def run_report(
    workdir: str,
    config,
    problem,
    generator,
    g_params,
    f,
    judges,
    generated: np.ndarray,
    results: dict,
    grid_path: str,
    method: str = 'PreImageGAN',
    reference=None,
    train_dir: Optional[str] = None,
    control_generated: Optional[np.ndarray] = None,
    raw_generated: Optional[np.ndarray] = None,
) -> dict:
  """Computes every measure for a finished run and writes <workdir>/report/.

  generator: the Attack (or ACGAN) with g_params; f: (module, variables,
  metadata) of f; judges: [(name, (module, variables, metadata))] of the
  evaluators, in config order; generated: the evaluation samples per target;
  control_generated: the same draws from the gamma = 0 control (None: no
  control); raw_generated: with final selection (generated are then the kept
  samples), the first draws before selection, judged beside them; results: what
  the run already computed (accuracies, setting);
  reference: real images for false recognition (default: the problem's);
  train_dir: where training wrote metrics.jsonl and tensorboard/ (default workdir).
  Returns a summary to merge into results.json.
  """
  out_dir = os.path.join(workdir, 'report')
  os.makedirs(out_dir, exist_ok=True)
  value_range = tuple(generator.value_range)
  f_eval = model_eval(*f, value_range)
  generated = np.asarray(generated)
  n_t, n = generated.shape[:2]
  flat = lambda g: np.asarray(g).reshape((-1,) + generated.shape[2:])
  metas = {name: judge[2] for name, judge in judges}

  # Each evaluator labels the attack's and the control's samples once,
  # and the real test images of the targets, the scale of its shares.
  attack_out, control_probs = {}, ({} if control_generated is not None else None)
  raw_probs, real, real_feats = {}, {}, {}
  of_targets = np.isin(np.asarray(problem.test_y), problem.target_ids)
  test_x, test_y = problem.test_x[of_targets], np.asarray(problem.test_y)[of_targets]
  for name, judge in judges:
    with stages.timed(f"report: f'[{name}] labels the samples and the real test images"):
      e_eval = model_eval(*judge, value_range)
      probs, feats = e_eval(flat(generated))
      attack_out[name] = (probs, feats)
      if len(test_x):
        real_probs, real_feats[name] = e_eval(test_x)
        real[name] = audit_lib.real_shares(real_probs, test_y, problem.target_ids)
      if control_generated is not None:
        control_probs[name] = e_eval(flat(control_generated))[0].reshape(n_t, n, -1)
      if raw_generated is not None:
        raw_probs[name] = e_eval(flat(raw_generated))[0].reshape(n_t, n, -1)
  attack_means = {
      name: float(np.mean(audit_lib.hits(p.reshape(n_t, n, -1), problem.target_ids) / n))
      for name, (p, _) in attack_out.items()
  }
  head = evaluators_lib.headline(list(metas.items()), attack_means)
  with stages.timed(f"report: FID, KNN, precision, recall and coverage in f'[{head}]'s features"):
    numbers, curves = leak_metrics(
        generated,
        problem.target_ids,
        problem.label_names,
        problem.private_x,
        problem.private_y,
        problem.aux_x,
        f_eval,
        model_eval(*dict(judges)[head], value_range),
        reference=reference or reference_images(problem),
        seed=config.seed,
        evaluator_outputs=attack_out[head],
        real_features=(real_feats[head], test_y) if head in real_feats else None,
    )
  names = numbers['targets']
  # Judges rank and speak by their balanced accuracy (evaluators.judging_accuracy),
  # which is the plain one on a test set with equal class counts.
  test_acc = {name: evaluators_lib.judging_accuracy(meta) for name, meta in metas.items()}
  f_accuracy = results.get('f_balanced_test_accuracy')
  audit = audit_lib.judge(
      names,
      problem.target_ids,
      {name: p.reshape(n_t, n, -1) for name, (p, _) in attack_out.items()},
      control_probs,
      test_acc,
      f_accuracy if f_accuracy is not None else results.get('f_test_accuracy'),
      head,
      _label_for(problem),
      real or None,
      'test accuracy' if classifier.equal_counts(problem.test_y) else 'balanced test accuracy',
  )
  # How varied the samples are, in the headline's features: a sentence joins
  # its verdict when they cover far less of the private class than real images.
  audit_lib.add_diversity(audit, numbers['features']['per_class'])
  for name, meta in metas.items():
    audit['evaluators'][name]['test_accuracy'] = meta.get('test_accuracy')
    audit['evaluators'][name]['balanced_test_accuracy'] = meta.get('balanced_test_accuracy')
    audit['evaluators'][name]['validation_accuracy'] = meta.get('validation_accuracy')
    audit['evaluators'][name]['architecture'] = meta.get('architecture', 'given')
  if raw_generated is not None:
    add_selection(audit, generator.hyper, names, problem.target_ids, raw_probs)
  # The paper's row for this setting (EMNIST only), over the targets it prints.
  judged = audit['evaluators'][head]
  audit['paper'] = paper_tables.compare(
      method, results.get('setting'), judged['attack'], judged['control'], judged['real']
  )
  if control_generated is not None:
    f_control = f_eval(flat(control_generated))[0].reshape(n_t, n, -1)
    audit['f_control'] = dict(
        zip(names, (audit_lib.hits(f_control, problem.target_ids) / n).tolist())
    )
  for line in audit['warnings']:
    logging.warning('%s', line)

  with stages.timed('report: grids, charts, Figure 6 and the interpolations'):
    figures = {}
    shutil.copyfile(grid_path, os.path.join(out_dir, 'samples.png'))
    if raw_generated is not None:
      cols = config.eval.grid_columns
      for file, images_ in (
          ('samples_raw.png', raw_generated),
          ('samples_selected.png', generated),
      ):
        images.save_grid(
            os.path.join(out_dir, file), np.asarray(images_)[:, :cols], value_range, names
        )
    if results.get('control_grid') and os.path.exists(results['control_grid']):
      shutil.copyfile(results['control_grid'], os.path.join(out_dir, 'control_samples.png'))
    leak_chart = larger_chart = None
    if control_generated is not None:

      def chart(file, judge, title):
        rows = audit['evaluators'][judge]['rows']
        col = lambda key: np.array([r[key] for r in rows])
        ci = lambda key: np.array([r[key] for r in rows]).T
        plots.leak_bars(
            os.path.join(out_dir, file),
            names,
            col('attack'),
            ci('attack_ci'),
            col('control'),
            ci('control_ci'),
            col('leak'),
            ci('leak_ci'),
            title,
            evaluator=f"f'[{judge}], test accuracy {_num(test_acc[judge], 3)}",
            real=[r.get('real') for r in rows] if audit['evaluators'][judge].get('real') else None,
        )
        return file

      setting = results.get('setting')
      leak_chart = chart('leak.png', head, f'Leak per target: attack against control ({setting})')
      if audit.get('larger_leak'):
        # The verdict tells the user to decide by this judge: show its reading too.
        larger = audit['larger_leak']['evaluator']
        larger_chart = chart(
            'leak_' + ''.join(c if c.isalnum() else '_' for c in larger) + '.png',
            larger,
            f'The larger leak: the same samples by another judge ({setting})',
        )
    for name, c in curves.items():
      file = f'figure6_{_safe(name)}.png'
      plots.figure6(os.path.join(out_dir, file), c['private'], c['aux'], c['generated'], name)
      figures[f'Figure 6, target {name}'] = file
    interp = interpolation.save_interpolations(
        out_dir,
        generator,
        g_params,
        jax.random.PRNGKey(config.seed + 4),
        problem.target_ids,
        problem.label_names,
        value_range,
        steps=max(config.eval.grid_columns, 2),
    )
  for key, caption in (
      ('z', 'Interpolation along z, y fixed (Appendix C)'),
      ('y', 'Interpolation along y, z fixed (Appendix C)'),
      ('zy', 'Interpolation along z and y (Appendix C)'),
  ):
    figures[caption] = os.path.basename(interp[key])
  train_dir = train_dir or workdir
  records = _read_jsonl(os.path.join(train_dir, 'metrics.jsonl'))
  if records:
    plots.training_curves(
        os.path.join(out_dir, 'losses.png'),
        records,
        ['critic_loss', 'gradient_penalty', 'generator_loss'],
        'losses',
    )
    figures['Training losses'] = 'losses.png'
    extra = [k for k in ('gamma', 'similarity', 'aux_loss_real') if k in records[-1]]
    plots.training_curves(
        os.path.join(out_dir, 'gamma_similarity.png'), records, extra, ', '.join(extra)
    )
    figures['Training: ' + ', '.join(extra)] = 'gamma_similarity.png'

  classifiers = {
      'f (published)': (
          results.get('f_test_accuracy'),
          None,
          results.get('f_balanced_test_accuracy'),
      )
  }
  for name, meta in metas.items():
    classifiers[f"f'[{name}] (independent evaluator{', headline' if name == head else ''})"] = (
        meta.get('test_accuracy'),
        meta.get('validation_accuracy'),
        meta.get('balanced_test_accuracy'),
    )
  surrogate = results.get('surrogate')
  if surrogate:  # attack.surrogate: the attacker's copy of f (surrogate.py)
    agree = float(surrogate.get('agreement_with_f_on_aux') or 0.0)
    classifiers[
        f"surrogate of f ({surrogate.get('architecture')}: the attacker's, trained on D_aux "
        f"with f's labels; agrees with f on {agree:.3f} of D_aux)"
    ] = (surrogate.get('test_accuracy'), None)
  notes = [
      f"{method} on setting {results.get('setting')}, {results.get('steps')} generator "
      'steps. TensorBoard events: ' + os.path.join(train_dir, 'tensorboard')
  ]
  # The final grid and the verdict table join the training-time logs in TensorBoard.
  writer = tensorboard.SummaryWriter(os.path.join(train_dir, 'tensorboard'))
  writer.image('samples', grid_path, int(results.get('steps') or 0))
  # Settings evaluated from one ACGAN training share train_dir: one tag each.
  writer.text(
      f"verdict/{results.get('setting')}",
      verdict_markdown(audit, names),
      int(results.get('steps') or 0),
  )
  writer.close()
  page = os.path.join(out_dir, 'index.html')
  write_html(
      page,
      f"C2G leak report: {results.get('setting')} ({method})",
      config.to_dict(),
      classifiers,
      numbers,
      figures,
      notes,
      audit=audit,
      leak_chart=leak_chart,
      larger_chart=larger_chart,
      method=method,
  )
  checkpoint.write_json(
      os.path.join(out_dir, 'report.json'),
      _jsonable(
          {
              'method': method,
              'results': results,
              'numbers': numbers,
              'audit': audit,
              'figure6': curves,
          }
      ),
  )
  print(f'report: {page}')
  return summary(numbers, page, audit)


def add_selection(audit: dict, hyper, names, targets, raw_probs: Dict[str, np.ndarray]) -> None:
  """Adds the final selection and each evaluator's shares of the raw draws."""
  n = next(iter(raw_probs.values())).shape[1]
  audit['selection'] = {
      'pool': int(hyper.selection_pool),
      'views': int(hyper.selection_views),
      'realism': int(hyper.selection_realism),
      'kept': int(n),
      'candidates': int(n * hyper.selection_pool),
  }
  for name, probs in raw_probs.items():
    shares = audit_lib.hits(probs, targets) / n
    audit['evaluators'][name]['attack_raw'] = dict(zip(names, shares.tolist()))
    audit['evaluators'][name]['attack_raw_mean'] = float(np.mean(shares))


def verdict_markdown(audit: dict, names: Sequence[str]) -> str:
  """The headline evaluator's per-target table as markdown (TensorBoard text)."""
  head = audit['evaluators'][audit['headline']]
  lines = [
      audit['verdict'],
      '',
      '| target | attack | control | leak | 95% CI of leak | real test images |',
      '|---|---|---|---|---|---|',
  ]
  for r in head['rows'] + [head['mean']]:
    real = '-' if r.get('real') is None else f"{r['real']:.3f}"
    if r['control'] is None:
      lines.append(f"| {r['name']} | {r['attack']:.3f} | - | - | - | {real} |")
    else:
      lines.append(
          f"| {r['name']} | {r['attack']:.3f} | {r['control']:.3f} | "
          f"{r['leak']:+.3f} | {r['leak_ci'][0]:+.3f} to {r['leak_ci'][1]:+.3f} | {real} |"
      )
  return '\n'.join(lines + [''] + audit['warnings'])


def summary(numbers: dict, page: str, audit: Optional[dict] = None) -> dict:
  """The headline numbers, flat, for results.json and the grid tables."""
  ev = numbers['evaluator']
  out = {
      'report': page,
      'acc1': ev['acc@1']['per_class'],
      'acc1_mean': ev['acc@1']['mean'],
      'acc1_std': ev['acc@1']['std'],
      'f_acc1': numbers['f']['acc@1']['per_class'],
      'acc5': ev['acc@5']['per_class'],
      'acc5_mean': ev['acc@5']['mean'],
      'acc5_std': ev['acc@5']['std'],
      # for the grid's Appendix B tables, beside the paper's
      'false_recognition': numbers['false_recognition'],
  }
  for key, stats in numbers['features']['summary'].items():
    out[f'{key}_mean'] = stats['mean']
  # The paper's names: inception accuracy is the headline evaluator's acc@1.
  out.update(
      inception_accuracy=out['acc1'],
      inception_accuracy_mean=out['acc1_mean'],
      f_accuracy_on_samples=out['f_acc1'],
  )
  if audit is not None:
    head = audit['evaluators'][audit['headline']]
    out.update(
        headline_evaluator=audit['headline'],
        evaluator_test_accuracy=head['test_accuracy'],
        evaluator_balanced_test_accuracy=head.get('balanced_test_accuracy'),
        evaluators={
            name: {
                k: e.get(k)
                for k in (
                    'test_accuracy',
                    'balanced_test_accuracy',
                    'validation_accuracy',
                    'architecture',
                    'weaker_than_f',
                    'attack',
                    'control',
                    'real',
                )
            }
            | {
                'attack_mean': e['mean']['attack'],
                'control_mean': e['mean']['control'],
                'real_mean': e['mean']['real'],
                'attack_raw_mean': e.get('attack_raw_mean'),
            }
            for name, e in audit['evaluators'].items()
        },
        control_inception_accuracy=head['control'],
        selection=audit.get('selection'),
        raw_inception_accuracy=head.get('attack_raw'),
        raw_inception_accuracy_mean=head.get('attack_raw_mean'),
        control_inception_accuracy_mean=head['mean']['control'],
        # what the same evaluator gives real test images of each target
        real_inception_accuracy=head['real'],
        real_inception_accuracy_mean=head['mean']['real'],
        leak_mean=head['mean']['leak'],
        leak={
            'evaluator': audit['headline'],
            'interval': audit['interval_method'],
            'per_target': head['rows'],
            'mean': head['mean'],
        },
        agreement=audit['agreement_attack'],
        verdict=audit['verdict'],
        larger_leak=audit.get('larger_leak'),
        larger_leak_mean=(audit.get('larger_leak') or {}).get('mean', {}).get('leak'),
        target_verdicts=audit['target_verdicts'],
        warnings=audit['warnings'],
        accuracy_name=audit.get('accuracy_name', 'test accuracy'),
        diversity=audit.get('diversity'),
        paper=audit.get('paper'),
    )
    if 'f_control' in audit:
      out['f_accuracy_on_control'] = audit['f_control']
  return out


def _safe(name: str) -> str:
  # EMNIST names differ only in case ('a' vs 'A'): keep case distinct on
  # case-insensitive file systems.
  return ''.join(c if c.isalnum() else '_' for c in name) + ('_lower' if name.islower() else '')
