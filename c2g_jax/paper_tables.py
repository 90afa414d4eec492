"""The paper's EMNIST numbers, kept as data: Tables 3 and 4 (inception accuracy by
the evaluator f') and Appendix B's Tables 5 to 8 (false recognition by f).

Provenance: "Classifier-to-Generator Attack: Estimation of Training Data
Distribution from Classifier", ICLR 2018 submission (anonymous review version),
transcribed from a text copy with OCR noise (shared/paper/tables.md). Cells are
written as the transcription prints them:
  '0.59?'            digits not read with certainty: kept, marked uncertain;
  '0.53? (or 0.33)'  uncertain, with the other reading;
  '~1.00'            the copy's approximate mean;
  '-'                a cell the copy lost: missing, never guessed;
  ''                 a cell the paper does not print (e.g. one mean).
The paper reports 10 lowercase targets (a b d e f h i q r u) of our 26.
"""

from __future__ import annotations

import dataclasses
import re

SOURCE = (
    'Classifier-to-Generator Attack (ICLR 2018 submission), transcribed from a text copy '
    'with OCR noise: "?" = digits uncertain, "-" = lost in the copy'
)


@dataclasses.dataclass(frozen=True)
class Cell:
  """One printed cell: its value (None when missing) and how sure the copy is of it."""

  text: str  # as the transcription prints it
  value: float | None
  uncertain: bool = False
  approximate: bool = False

  @property
  def missing(self) -> bool:
    return self.value is None


_NUMBER = re.compile(r'^(~)?([0-9]*\.?[0-9]+)(\?)?(\s*\(.*\))?$')


def cell(text: str) -> Cell:
  """Parses one cell of the transcription ('1.00', '0.59?', '~1.00', '-', '')."""
  text = text.strip()
  if text in ('-', ''):
    return Cell(text, None)
  m = _NUMBER.match(text)
  if not m:
    raise ValueError(f'paper cell {text!r}: expected a number, "?"-marked number or "-"')
  return Cell(text, float(m.group(2)), uncertain=bool(m.group(3)), approximate=bool(m.group(1)))


def _row(text: str) -> list[Cell]:
  return [cell(t) for t in text.split('|')]


@dataclasses.dataclass(frozen=True)
class PaperRow:
  targets: tuple[str, ...]
  cells: tuple[Cell, ...]  # one per target
  mean: Cell  # the paper's printed mean (over its targets), or missing

  def get(self, target: str) -> Cell | None:
    """The cell of a target, or None when the paper does not report that target."""
    return dict(zip(self.targets, self.cells)).get(target)


def _table(targets: str, rows: dict[str, tuple[str, str]]) -> dict[str, PaperRow]:
  names = tuple(targets.split())
  out = {}
  for key, (cells, mean) in rows.items():
    parsed = tuple(_row(cells))
    assert len(parsed) == len(names), (key, len(parsed))
    out[key] = PaperRow(names, parsed, cell(mean))
  return out


# Table 3: C2G attack against the alphanumeric classifier, lowercase targets.
TABLE_3 = _table(
    'a b d e f h i q r u',
    {
        'acgan': ('1.00 | - | - | 1.00? | - | 1.00 | 1.00 | - | 1.00 | 1.00', '~1.00'),
        'exact_same': (
            '1.00 | 0.99 | 1.00 | 0.99 | 0.00? | 1.00 | 1.00 | 0.36? | 0.99 | 0.58',
            '0.79?',
        ),
        'partly_same': ('0.99 | - | 0.89 | 0.67 | 0.00? | 0.71? | 0.08? | 0.33 | 0.99 | 0.60', ''),
        'mutually_exclusive': (
            '0.10 | 0.81 | 0.76 | 0.95 | 1.00 | 0.86 | 0.94 | 0.84 | 0.99 | 1.00',
            '0.825',
        ),
    },
)

# Table 4: C2G attack against the numeric classifier, digit targets.
TABLE_4 = _table(
    '0 1 2 3 4 5 6 7 8 9',
    {
        'acgan': ('1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00', '1.00'),
        'exact_same': ('1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 0.99 | 1.00 | - | 1.00', '~1.00'),
        'partly_same': (
            '1.00 | 1.00 | 0.89 | 0.71? | 0.99 | 1.00 | 0.90 | 0.53? (or 0.33) | 0.79 ' '| 0.99',
            '~0.88',
        ),
        'mutually_exclusive': (
            '0.97 | 1.00 | 0.59? | 0.39 | 0.86 | 0.98 | 0.97 | 0.61 | 0.72 | 0.48',
            '0.757',
        ),
    },
)

# Inception accuracy by (method, grid setting). The paper's ACGAN baseline is one row
# per table ("ACGAN on D_tr"), shown beside each setting's ACGAN run. Appendix A
# (noise as D_aux) gives pictures only: no row.
INCEPTION: dict[tuple[str, str], PaperRow] = {}
for _group, _table_rows in (('lowercase', TABLE_3), ('numeric', TABLE_4)):
  for _key, _paper_row in _table_rows.items():
    if _key == 'acgan':
      for _s in ('exact_same', 'partly_same', 'mutually_exclusive'):
        INCEPTION[('ACGAN', f'{_group}_{_s}')] = _paper_row
    else:
      INCEPTION[('PreImageGAN', f'{_group}_{_key}')] = _paper_row

TABLE_OF = {'lowercase': 'Table 3', 'numeric': 'Table 4'}


def mean_of(row: PaperRow) -> tuple[float | None, str]:
  """The row's mean and how it reads: the printed mean ('0.825', '0.79?'), or
  where the paper or the copy lacks it the mean of the cells the copy kept ('0.58
  (not printed: the mean of the 9 cells the copy kept)'), or (None, '') when no
  cell survived."""
  if row.mean.value is not None:
    return row.mean.value, row.mean.text
  values = [c.value for c in row.cells if c.value is not None]
  if not values:
    return None, ''
  mean = sum(values) / len(values)
  return mean, f'{mean:.2f} (not printed: the mean of the {len(values)} cells the copy kept)'


def comparable_targets(method: str, setting: str, ours) -> list[str]:
  """The targets of ours over which a mean stands beside the paper's: the ones its
  row prints (Table 3: 10 of the 26 letters), and where the copy lost the printed
  mean, only those whose cells it kept (mean_of averages those). All of ours where
  the paper has no row."""
  row = INCEPTION.get((method, setting))
  if row is None:
    return list(ours)
  # A printed mean covers every printed target; one computed here, only the kept cells.
  kept = lambda t: row.mean.value is not None or row.get(t).value is not None
  return [t for t in row.targets if t in ours and kept(t)]


def compare(
    method: str,
    setting: str,
    attack: dict[str, float],
    control: dict[str, float] | None = None,
    real: dict[str, float] | None = None,
) -> dict | None:
  """A run's shares beside the paper's row for the same method and setting.

  attack, control, real: {target: share} of the run (one evaluator). The means are
  taken over the targets the paper prints (Table 3: 10 of the 26 letters) that the
  run has (where the paper's mean is lost, only those whose cells the copy kept), so
  the two figures stand side by side. None where the paper has no row
  (faces, noise, a custom problem) or no printed target of the run's.
  """
  row = INCEPTION.get((method, setting))
  if row is None:
    return None
  mean, text = mean_of(row)
  targets = comparable_targets(method, setting, attack)
  if not targets or mean is None:
    return None
  over = lambda shares: (
      None
      if shares is None or any(shares.get(t) is None for t in targets)
      else sum(shares[t] for t in targets) / len(targets)
  )
  return {
      'table': TABLE_OF[setting.split('_', 1)[0]],
      'method': method,
      'setting': setting,
      'targets': targets,
      'paper_mean': mean,
      'paper_mean_text': text,
      'uncertain': row.mean.uncertain,
      'attack_mean': over(attack),
      'control_mean': over(control),
      'real_mean': over(real),
      'source': SOURCE,
  }


def comparison_sentence(c: dict, evaluator: str) -> str:
  """One line: the paper's mean beside the run's over the same targets."""
  same = 'the same letters' if c['table'] == 'Table 3' else 'the same targets'
  extra = [
      f'{name} {c[key]:.3f}'
      for name, key in (('control', 'control_mean'), ('real test images', 'real_mean'))
      if c.get(key) is not None
  ]
  return (
      f"The paper ({c['table']}, {c['method']}, {c['setting']}, full EMNIST) over "
      f"{' '.join(c['targets'])}: mean {c['paper_mean_text']}"
      + (' (digits uncertain in the copy)' if c['uncertain'] else '')
      + f"; this run over {same}, judged by f'[{evaluator}]: {c['attack_mean']:.3f}"
      + (f" ({', '.join(extra)})" if extra else '')
      + '.'
  )


NOISE_NOTE = (
    'Appendix A (noise as D_aux): pictures only (Figure 7, targets 0, 1, 2): "All '
    'generated images look like noise images, not numeric letters"; no numbers.'
)


def _false(text: str) -> dict[str, list[tuple[str, float]]]:
  """'a (9: 0.002); b (g: 0.016) (6: 0.002); d none' -> {target: [(class, share)]}."""
  out = {}
  for part in text.split(';'):
    target, rest = part.strip().split(' ', 1)
    out[target] = [(c, float(v)) for c, v in re.findall(r'\((\S+): ([0-9.]+)\)', rest)]
    assert out[target] or rest.strip() == 'none', part
  return out


# Appendix B: the top-5 non-target classes whose real images f labels as the target
# with probability > 0.9, with the share of that class's images it does so for.
FALSE_RECOGNITION = {
    'table_5': (
        'Table 5: lowercase targets, alphanumeric f (exact / partly same)',
        ('lowercase_exact_same', 'lowercase_partly_same'),
        _false(
            'a (9: 0.002); b (g: 0.016) (6: 0.002); d none; e (c: 0.025) (C: 0.011) (8: 0.002); '
            'f none; h none; i none; q none; r (Y: 0.010) (T: 0.006); u none'
        ),
    ),
    'table_6': (
        'Table 6: lowercase targets, lowercase+numeric f (mutually exclusive)',
        ('lowercase_mutually_exclusive',),
        _false(
            'a (Q: 0.106) (u: 0.020) (A: 0.009); b (g: 0.016); d (J: 0.013); '
            'e (E: 0.186) (c: 0.050) (C: 0.034) (R: 0.028) (p: 0.022); f (F: 0.244) (E: 0.010); '
            'h (m: 0.025) (n: 0.005); i none; q none; r (T: 0.006) (C: 0.006); u (U: 0.066)'
        ),
    ),
    'table_7': (
        'Table 7: digit targets, alphanumeric f (exact / partly same)',
        ('numeric_exact_same', 'numeric_partly_same'),
        _false(
            '0 none; 1 (l: 0.028) (i: 0.020) (I: 0.005); 2 (Z: 0.102) (z: 0.054) (a: 0.024) '
            '(3: 0.002); 3 (z: 0.018); 4 (y: 0.035); 5 (8: 0.002); 6 (G: 0.044) (b: 0.033); '
            '7 (T: 0.013); 8 (q: 0.016) (g: 0.016) (P: 0.007) (S: 0.003) (2: 0.002); '
            '9 (q: 0.197) (g: 0.062)'
        ),
    ),
    'table_8': (
        'Table 8: digit targets, numeric f (mutually exclusive)',
        ('numeric_mutually_exclusive',),
        _false(
            '0 (O: 0.946) (o: 0.851) (D: 0.493) (Q: 0.362) (c: 0.200); '
            '1 (l: 0.904) (I: 0.744) (i: 0.653) (L: 0.052) (j: 0.029); '
            '2 (Z: 0.878) (z: 0.786) (d: 0.462) (a: 0.201) (N: 0.094); '
            '3 (j: 0.147) (J: 0.141) (B: 0.080) (D: 0.045) (S: 0.042); '
            '4 (H: 0.896) (y: 0.491) (v: 0.423) (Y: 0.360) (V: 0.271); '
            '5 (s: 0.600) (S: 0.549) (J: 0.282) (E: 0.059) (F: 0.042); '
            '6 (b: 0.670) (G: 0.400) (h: 0.176) (L: 0.130) (k: 0.098); '
            '7 (T: 0.333) (m: 0.075) (p: 0.044) (P: 0.040) (Y: 0.040); '
            '8 (B: 0.373) (R: 0.333) (x: 0.293) (X: 0.275) (e: 0.246); '
            '9 (q: 0.574) (g: 0.484) (Q: 0.106) (P: 0.093) (p: 0.089)'
        ),
    ),
}


def false_recognition_for(setting: str):
  """(title, {target: [(class, share)]}) of the Appendix B table for a grid setting, or None."""
  for title, settings, table in FALSE_RECOGNITION.values():
    if setting in settings:
      return title, table
  return None
