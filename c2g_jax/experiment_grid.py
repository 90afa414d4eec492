"""The paper's EMNIST grid: the seven label settings, PreImageGAN and the ACGAN
baseline, and Tables 3 and 4 with our numbers beside the paper's.

  python -m c2g_jax.experiment_grid --size=cpu --workdir=runs/grid
  python -m c2g_jax.experiment_grid --size=cpu --workdir=runs/grid_numeric \
      --settings=numeric_exact_same,numeric_partly_same,numeric_mutually_exclusive \
      --steps=300 --override=eval.samples_per_target=200

Layout of --workdir:
  <setting>/                 one PreImageGAN run each (train.train_and_evaluate), with
                             its report in <setting>/report/index.html
  acgan/<D_tr>/              the ACGAN baseline trained once per distinct D_tr, and
  acgan/<D_tr>/<setting>/    evaluated on each setting's targets (report/ inside)
  tables.md, index.html      Tables 3 and 4 (ours beside the paper's), Appendix A
                             (noise), and the field's measures for every run
  summary.png                mean inception accuracy per setting, ours and the paper's
  grid.json                  every number of the tables

Settings that share D_tr (the same classifier labels) share f and f': the first
of them trains both, the others load its checkpoints. A rerun resumes every run
where it stopped and reads the results of every finished one (--reevaluate judges
them again). The attacks run through `run_attacks`, the one place where a
runner that trains several attacks together (vmapped, multi.py) plugs in.
"""

import ast
import functools
import html
import json
import logging as std_logging
import os
import re
import shutil
import textwrap
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from c2g_jax import acgan
from c2g_jax import attack as attack_lib
from c2g_jax import checkpoint
from c2g_jax import cli
from c2g_jax import evaluators
from c2g_jax import paper_tables
from c2g_jax import plots
from c2g_jax import train
from c2g_jax import workdir as workdir_lib
from c2g_jax.data import settings as settings_lib
from c2g_jax.data.problems import load_problem
from configs import emnist as emnist_config

# The paper's numbers (Tables 3 and 4, Appendix B), with provenance and the copy's
# uncertain ('?') and lost ('-') cells: c2g_jax/paper_tables.py.
PAPER = paper_tables.INCEPTION
RESULTS_FILE = 'results.json'
NOT_REPORTED = ''  # a target the paper does not report (16 of the 26 lowercase letters)
NO_PAPER_ROW = 'no numbers in the paper'

TABLES = (
    (
        'Table 4: inception accuracy, numeric targets',
        ('numeric_exact_same', 'numeric_partly_same', 'numeric_mutually_exclusive'),
    ),
    (
        'Table 3: inception accuracy, lowercase targets (the paper reports a b d e f h i q r u)',
        ('lowercase_exact_same', 'lowercase_partly_same', 'lowercase_mutually_exclusive'),
    ),
    ('Appendix A: uniform noise as the auxiliary data', ('noise',)),
)
ALL_SETTINGS = tuple(s for _, group in TABLES for s in group)

# (label, key in results, digits) of the field's measures, per run.
FIELD_COLUMNS = (
    ('f acc', 'f_test_accuracy', 3),
    ("f' acc", 'evaluator_test_accuracy', 3),
    # the mean of per-class accuracies, by which the headline judge is chosen
    ("f' balanced acc", 'evaluator_balanced_test_accuracy', 3),
    ('acc@1', 'acc1_mean', 3),
    ('control', 'control_inception_accuracy_mean', 3),
    ('real', 'real_inception_accuracy_mean', 3),
    ('leak', 'leak_mean', 3),
    # another judge's leak where it lies clearly above the headline's (verdict.clearly_larger)
    ('larger leak', 'larger_leak_mean', 3),
    ('acc@1 std', 'acc1_std', 3),
    ('acc@5', 'acc5_mean', 3),
    ('acc@5 std', 'acc5_std', 3),
    ('FID', 'fid_mean', 2),
    ('KID', 'kid_mean', 3),
    ('precision', 'precision_mean', 3),
    ('recall', 'recall_mean', 3),
    ('density', 'density_mean', 3),
    ('coverage', 'coverage_mean', 3),
    ('KNN gen', 'knn_generated_mean', 3),
    ('KNN aux', 'knn_aux_closest_mean', 3),
    ('KNN gen-aux', 'knn_generated_to_aux_mean', 3),
)

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command's flags, defined when it runs as a program, not on import: a
  process that imports run_grid or write_tables beside main.py (whose flags
  include --workdir too) gets no duplicate flag."""
  flags.DEFINE_string('workdir', 'runs/grid', 'Where every run, report and table goes.')
  flags.DEFINE_enum('size', 'cpu', emnist_config.SIZES, 'Config size of every run.')
  flags.DEFINE_list('settings', list(ALL_SETTINGS), 'Settings to run (default: all seven).')
  flags.DEFINE_integer('steps', 0, "Generator steps of every attack and ACGAN (0: the size's).")
  flags.DEFINE_bool('acgan', True, 'Also train and evaluate the ACGAN baseline.')
  flags.DEFINE_bool(
      'reevaluate',
      False,
      'Judge finished runs again (after an upgrade of the tool) instead of reading '
      'their results.json.',
  )
  flags.DEFINE_list(
      'recipes',
      ['default', 'paper'],
      "Attack recipes (config.attack.recipe; 'default': the config's own), each a row "
      'per setting; the first runs in <workdir>/<setting>, the others in '
      "<workdir>/recipe_<name>/<setting> with the first's f and evaluators.",
  )
  flags.DEFINE_multi_string(
      'override',
      [],
      'KEY=VALUE config overrides for every run, ' 'e.g. --override=eval.samples_per_target=200.',
  )
  flags.DEFINE_string(
      'compilation_cache',
      '',
      'Persistent XLA compilation cache directory '
      '(default <workdir>/.jax_cache; "none" disables it).',
  )


# --- configs ----------------------------------------------------------------------------


def parse_override(text: str) -> Tuple[str, object]:
  if '=' not in text:
    raise ValueError(f'--override={text!r}: expected KEY=VALUE, e.g. attack.steps=200')
  key, value = text.split('=', 1)
  try:
    return key.strip(), ast.literal_eval(value)
  except (ValueError, SyntaxError):
    return key.strip(), value


def make_config(setting: str, size: str, steps: int = 0, overrides: Sequence[str] = ()):
  config = emnist_config.get_config(f'{setting},{size}')
  if steps:
    config.attack.steps = steps
  config.lock()  # an override naming no existing field is a typo, not a new field
  for text in overrides:
    key, value = parse_override(text)
    try:
      config.update_from_flattened_dict({key: value})
    except (KeyError, AttributeError, TypeError) as e:
      raise ValueError(f'--override={text!r}: {e}') from None
  config.unlock()
  return config


def dtr_name(setting: str) -> str:
  """A name for the setting's D_tr (f's classes): settings sharing it share f, f'."""
  labels = settings_lib.get_setting(setting).classifier_labels
  parts = [
      (settings_lib.DIGITS, 'digits'),
      (settings_lib.UPPERCASE, 'uppercase'),
      (settings_lib.LOWERCASE, 'lowercase'),
  ]
  if set(labels) == set(settings_lib.DIGITS + settings_lib.UPPERCASE + settings_lib.LOWERCASE):
    return 'all62'
  return '+'.join(name for group, name in parts if set(group) <= set(labels))


# --- the runs ---------------------------------------------------------------------------


def finished_results(config, run: str) -> Optional[dict]:
  """The results.json of a finished run of exactly this config in `run`, else None.

  A grid run again (to add settings or a recipe) reads these rather than judging
  each finished run again (5 to 6 minutes a run at CPU size). Finished: the
  config stored in `run` equals this one in every key (the free ones of
  workdir.py too: the evaluation's keys change the results), results.json is
  newer than config.json (each start rewrites config.json, so a run started
  again and stopped holds an older results.json) and counts all the steps.
  """
  results_path = os.path.join(run, RESULTS_FILE)
  config_path = os.path.join(run, workdir_lib.CONFIG_FILE)
  if not (os.path.isfile(results_path) and os.path.isfile(config_path)):
    return None
  if os.path.getmtime(results_path) < os.path.getmtime(config_path):
    return None
  if not workdir_lib.same_config(workdir_lib.read_config(run), config.to_dict()):
    return None
  try:
    with open(results_path) as f:
      results = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError):
    return None  # judged again, which rewrites it
  if not isinstance(results, dict) or results.get('steps') != config.attack.steps:
    return None
  logging.info('%s: finished, read its %s (--reevaluate judges it again)', run, RESULTS_FILE)
  return results


def run_attacks(jobs: Sequence[Tuple[object, str]], reevaluate: bool = False) -> List[dict]:
  """Trains and evaluates one PreImageGAN per (config, workdir); returns the results.

  The single place where the grid's attacks are run: one after another, through
  train.train_and_evaluate. Training them as one vmapped program
  (multi.MultiAttack) was measured and loses at the grid's sizes: 8 EMNIST
  attacks vmapped ran at 0.74x the aggregate rate of one on an H200 (vmapping
  turns every convolution into a grouped one; 1.04x with the im2col lowering,
  itself slower) and at 0.25-0.75x on 2 CPU cores (benchmarks/README.md). The
  settings also differ in D_aux and in f's classes, so only seeds of one setting
  could share a program. A vmapped runner would replace this function and return
  the same results dicts. Jobs within one call never depend on each other.
  A finished run of the same config is read, not judged again, unless reevaluate.
  """
  out = []
  for config, workdir in jobs:
    done = None if reevaluate else finished_results(config, workdir)
    out.append(done if done is not None else train.train_and_evaluate(config, workdir))
  return out


def share_control(source_run: str, config, run: str) -> bool:
  """Copies source_run's control into run (not yet started) when it is the control
  that run's config would train: the control's config fixes every key a recipe
  sets that acts only through gamma (train.CONTROL_FIXED), so a second recipe's
  control is the first's unless they train another GAN (one-hot label rows), and
  training it again would cost as much as its attack. The configs may differ only
  in where f and the evaluators are read from, and only when that is source_run's
  own f. Returns whether it copied."""
  src, dst = os.path.join(source_run, train.CONTROL_DIR), os.path.join(run, train.CONTROL_DIR)
  stored = workdir_lib.read_config(src) if os.path.isdir(src) else None
  if stored is None or os.path.exists(run):
    return False
  wanted = train.control_config(config)
  same_f = config.classifier.checkpoint in (
      stored.get('classifier', {}).get('checkpoint'),
      os.path.abspath(os.path.join(source_run, 'classifier')),
  )
  _, that_matter = train.control_changes(stored, wanted)
  where = ('classifier.checkpoint', 'evaluators')
  if not same_f or any(k not in where for k, _, _ in that_matter):
    return False
  shutil.copytree(src, dst)
  workdir_lib.write_config(dst, wanted.to_dict())
  logging.info('control of %s: copied from %s (the same GAN at gamma = 0)', run, src)
  return True


def publisher(members: Sequence[str], run_dir: Callable[[str], str]) -> str:
  """The setting of one D_tr that trains f and f' for all: one whose run already
  published f, else the first. A grid run again with a setting added or --settings
  in another order then resumes every run, instead of asking a finished follower to
  train its own f (a config clash)."""
  for s in members:
    if os.path.isdir(os.path.join(run_dir(s), 'classifier')):
      return s
  return members[0]


def run_grid(
    workdir: str,
    setting_names: Sequence[str],
    make: Callable[[str], object],
    with_acgan: bool = True,
    attack_runner=None,
    recipes: Sequence[str] = (),
    reevaluate: bool = False,
) -> dict:
  """Runs the grid; returns {'preimagegan': {setting: results}, 'acgan': {...},
  'recipe': the first recipe, 'recipes': {other recipe: {setting: results}}}.

  recipes: config.attack.recipe values (() = the configs' own): the first is the
  grid's main row; each other one reruns every setting's attack with that recipe
  against the first's f and evaluators, so the rows differ by the recipe alone.
  reevaluate: judge finished runs again instead of reading their results.json
  (after the tool's evaluation changed). attack_runner: run_attacks by default.
  """
  if attack_runner is None:
    attack_runner = functools.partial(run_attacks, reevaluate=reevaluate)
  unknown = [s for s in setting_names if s not in ALL_SETTINGS]
  if unknown:
    raise ValueError(f'unknown settings {unknown}: choose from {list(ALL_SETTINGS)}')
  configs = {s: make(s) for s in setting_names}
  recipes = [configs[setting_names[0]].attack.recipe if r == 'default' else r for r in recipes]
  for s in setting_names:
    if recipes:
      configs[s].attack.recipe = recipes[0]
  groups: Dict[str, List[str]] = {}
  for s in setting_names:
    groups.setdefault(dtr_name(s), []).append(s)
  run_dir = lambda s: os.path.join(workdir, s)
  leaders = {g: publisher(members, run_dir) for g, members in groups.items()}

  # Phase 1 publishes f and f' for each D_tr (its publisher setting); phase 2 runs
  # the rest against those checkpoints.
  followers = []
  for g, members in groups.items():
    for s in members:
      if s == leaders[g]:
        continue
      configs[s].classifier.checkpoint = os.path.abspath(
          os.path.join(run_dir(leaders[g]), 'classifier')
      )
      configs[s].evaluators = ','.join(
          os.path.abspath(path)
          for _, path in evaluators.released(configs[leaders[g]].evaluators, run_dir(leaders[g]))
      )
      followers.append(s)
  ordered = list(leaders.values()) + followers
  results = dict(
      zip(
          list(leaders.values()),
          attack_runner([(configs[s], run_dir(s)) for s in leaders.values()]),
      )
  )
  if followers:
    results.update(zip(followers, attack_runner([(configs[s], run_dir(s)) for s in followers])))
  out = {
      'preimagegan': {s: results[s] for s in ordered},
      'acgan': {},
      'recipe': configs[setting_names[0]].attack.recipe,
      'recipes': {},
  }
  for recipe in dict.fromkeys(recipes[1:]):  # each once, in order
    if recipe == out['recipe']:
      continue
    jobs = []
    for s in ordered:
      c = make(s)
      c.attack.recipe = recipe
      leader = run_dir(leaders[dtr_name(s)])
      c.classifier.checkpoint = os.path.abspath(os.path.join(leader, 'classifier'))
      c.evaluators = ','.join(
          os.path.abspath(path) for _, path in evaluators.released(configs[s].evaluators, leader)
      )
      jobs.append((c, os.path.join(workdir, f'recipe_{recipe}', s)))
      share_control(run_dir(s), c, jobs[-1][1])
    out['recipes'][recipe] = dict(zip(ordered, attack_runner(jobs)))

  if with_acgan:
    for g, members in groups.items():
      leader = leaders[g]
      train_dir = os.path.join(workdir, 'acgan', g)
      done = {
          s: None if reevaluate else finished_results(configs[s], os.path.join(train_dir, s))
          for s in members
      }
      if any(res is None for res in done.values()):
        problem = load_problem(configs[leader])
        model, state = acgan.train(configs[leader], problem, train_dir)
        f = checkpoint.load_classifier(os.path.join(run_dir(leader), 'classifier'))
        judges = evaluators.load_released(configs[leader].evaluators, run_dir(leader))
      for s in members:
        res = done[s]
        if res is None:
          p = problem if s == leader else load_problem(configs[s])
          res = acgan.evaluate_run(
              configs[s], p, model, state, os.path.join(train_dir, s), f, judges, train_dir
          )
        res['dtr'] = g
        out['acgan'][s] = res
  return out


# --- the tables ---------------------------------------------------------------------------


def _cell(v, digits=2) -> str:
  """Ours: a number; the paper's: its cell as printed ('0.59?', '-' lost in the copy);
  None: a target the paper does not report."""
  if v is None:
    return NOT_REPORTED
  if isinstance(v, paper_tables.Cell):
    return v.text
  return f'{v:.{digits}f}'


def _paper_values(paper, targets):
  if paper is None:
    return None, None
  return [paper.get(t) for t in targets], paper.mean


def paper_targets(method: str, setting: str, targets: Sequence[str]) -> list:
  """The targets over which ours stands beside the paper's mean of (method,
  setting): paper_tables.comparable_targets, or all of ours where none is left."""
  return paper_tables.comparable_targets(method, setting, targets) or list(targets)


def table_rows(grid: dict, settings_in_table: Sequence[str]):
  """(targets, rows) of one inception-accuracy table; row = (method, setting, source,
  per-target values, mean). Ours are floats; the paper's are paper_tables.Cell, None
  for a target it does not report, and the whole list None when it gives no numbers."""
  present = [s for s in settings_in_table if s in grid['preimagegan']]
  if not present:
    return [], []
  targets = list(grid['preimagegan'][present[0]]['inception_accuracy'])
  rows = []
  for s in present:
    ours = grid['preimagegan'][s]['inception_accuracy']
    rows.append(
        ('PreImageGAN', s, 'ours', [ours[t] for t in targets], np.mean(list(ours.values())))
    )
    printed = paper_targets('PreImageGAN', s, targets)
    if len(printed) < len(targets):
      # The paper's mean covers only the targets it prints (10 of the 26 letters):
      # ours over the same ones is the figure to set beside it.
      rows.append(
          (
              'PreImageGAN',
              s,
              "ours, the paper's targets only",
              [ours[t] if t in printed else None for t in targets],
              np.mean([ours[t] for t in printed]),
          )
      )
    # The control (gamma = 0) and the leak over it: what the classifier gave away.
    control = grid['preimagegan'][s].get('control_inception_accuracy')
    if control:
      rows.append(
          (
              'PreImageGAN',
              s,
              'ours, control (gamma = 0)',
              [control[t] for t in targets],
              np.mean(list(control.values())),
          )
      )
      rows.append(
          (
              'PreImageGAN',
              s,
              'ours, leak = attack - control',
              [ours[t] - control[t] for t in targets],
              np.mean(list(ours.values())) - np.mean(list(control.values())),
          )
      )
    for recipe, runs in grid.get('recipes', {}).items():
      if s in runs:
        other = runs[s]['inception_accuracy']
        rows.append(
            (
                'PreImageGAN',
                s,
                f'ours, recipe {recipe}',
                [other[t] for t in targets],
                np.mean(list(other.values())),
            )
        )
        if control:
          rows.append(
              (
                  'PreImageGAN',
                  s,
                  f'ours, recipe {recipe}, leak',
                  [other[t] - control[t] for t in targets],
                  np.mean(list(other.values())) - np.mean(list(control.values())),
              )
          )
    rows.append(('PreImageGAN', s, 'paper', *_paper_values(PAPER.get(('PreImageGAN', s)), targets)))
  # ACGAN: one row per D_tr; settings sharing D_tr and targets give the same numbers.
  seen = {}
  for s in present:
    res = grid['acgan'].get(s)
    if res is not None:
      seen.setdefault(res['dtr'], []).append(s)
  for dtr, members in seen.items():
    ours = grid['acgan'][members[0]]['inception_accuracy']
    label = ' / '.join(members)
    rows.append(
        (
            f'ACGAN (D_tr: {dtr})',
            label,
            'ours',
            [ours[t] for t in targets],
            np.mean(list(ours.values())),
        )
    )
    rows.append(
        (
            f'ACGAN (D_tr: {dtr})',
            label,
            'paper',
            *_paper_values(PAPER.get(('ACGAN', members[0])), targets),
        )
    )
  return targets, rows


def false_recognition_rows(grid: dict):
  """Appendix B beside ours: (title, setting(s), target, ours [(class, share)] or None,
  the paper's list or None) for every PreImageGAN setting of the grid.

  The table is about f and real images only, so settings of one paper table whose
  lists are the same (they share D_tr, hence f) get one set of rows, named
  'exact / partly', rather than the same rows twice."""
  groups = {}  # (title, ours) -> (paper, ours, [settings]), in the grid's order
  for s, res in grid['preimagegan'].items():
    paper = paper_tables.false_recognition_for(s)
    ours = res.get('false_recognition')
    if paper is None and ours is None:
      continue
    title = paper[0] if paper else f'{s}: not in the paper'
    key = (title, json.dumps(ours, sort_keys=True))
    groups.setdefault(key, (paper, ours, []))[2].append(s)
  rows = []
  for (title, _), (paper, ours, members) in groups.items():
    targets = list(ours) if ours is not None else list(paper[1])
    for t in targets:
      rows.append(
          (
              title,
              ' / '.join(members),
              t,
              None if ours is None else ours.get(t),
              None if paper is None else paper[1].get(t),
          )
      )
  return rows


def _classes(lst) -> str:
  if lst is None:
    return NOT_REPORTED
  return ' '.join(f'{c} ({r:.3f})' for c, r in lst) or 'none'


def field_rows(grid: dict):
  rows = []
  groups = [('PreImageGAN', grid['preimagegan'])]
  groups += [(f'PreImageGAN, recipe {r}', runs) for r, runs in grid.get('recipes', {}).items()]
  for method, runs in groups + [('ACGAN', grid['acgan'])]:
    for s, res in runs.items():
      rows.append((method, s, [res.get(k) for _, k, _ in FIELD_COLUMNS], res.get('report')))
  return rows


def markdown(grid: dict, title: str) -> str:
  lines = [
      f'# {title}',
      '',
      f'Paper rows: {paper_tables.SOURCE}; "~" = an approximate mean; '
      'an empty paper cell: a target or mean the paper does not report. ' + paper_tables.NOISE_NOTE,
      '',
  ]
  for name, members in TABLES:
    targets, rows = table_rows(grid, members)
    if not rows:
      continue
    lines += [
        f'## {name}',
        '',
        '| method | setting | source | ' + ' | '.join(targets) + ' | mean |',
        '|' + '---|' * (len(targets) + 4),
    ]
    for method, s, source, vals, mean in rows:
      cells = (
          [NO_PAPER_ROW] + [''] * (len(targets) - 1) if vals is None else [_cell(v) for v in vals]
      )
      lines.append(f'| {method} | {s} | {source} | ' + ' | '.join(cells) + f' | {_cell(mean, 3)} |')
    lines.append('')
  fr = false_recognition_rows(grid)
  if fr:
    lines += [
        '## Appendix B: non-target classes f takes for the target (p > 0.9), '
        'share of their images',
        '',
        '| table | setting | target | ours | paper |',
        '|---|---|---|---|---|',
    ]
    lines += [
        f'| {title} | {s} | {t} | {_classes(ours)} | {_classes(paper)} |'
        for title, s, t, ours, paper in fr
    ]
    lines.append('')
  lines += [
      "## The field's measures (in f' penultimate features, means over targets)",
      '',
      '| method | setting | ' + ' | '.join(c for c, _, _ in FIELD_COLUMNS) + ' |',
      '|' + '---|' * (len(FIELD_COLUMNS) + 2),
  ]
  for method, s, vals, _ in field_rows(grid):
    lines.append(
        f'| {method} | {s} | '
        + ' | '.join('' if v is None else f'{v:.{d}f}' for v, (_, _, d) in zip(vals, FIELD_COLUMNS))
        + ' |'
    )
  lines.append('')
  return '\n'.join(lines)


def _html_cell(v, digits=2) -> str:
  """A table cell; the paper's uncertain or lost cells get a class and a tooltip."""
  text = html.escape(_cell(v, digits))
  if isinstance(v, paper_tables.Cell) and (v.uncertain or v.missing):
    what = 'lost in the copy of the paper' if v.missing else 'digits uncertain in the copy'
    return f'<td class="uncertain" title="{what}">{text}</td>'
  return f'<td>{text}</td>'


def write_html(path: str, grid: dict, title: str, notes: Sequence[str]) -> None:
  base = os.path.dirname(os.path.abspath(path))
  esc = html.escape
  parts = [f'<h1>{esc(title)}</h1>'] + [f'<p>{esc(n)}</p>' for n in notes]
  if os.path.exists(os.path.join(base, 'summary.png')):
    parts.append(
        '<h2>Summary</h2><p><a href="summary.png"><img src="summary.png" '
        'alt="mean inception accuracy per setting, ours and the paper\'s"></a></p>'
    )
  for name, members in TABLES:
    targets, rows = table_rows(grid, members)
    if not rows:
      continue
    head = ''.join(
        f'<th>{esc(h)}</th>' for h in ['method', 'setting', 'source'] + targets + ['mean']
    )
    body = ''
    for method, s, source, vals, mean in rows:
      cells = (
          f'<td colspan="{len(targets)}">{NO_PAPER_ROW}</td>'
          if vals is None
          else ''.join(_html_cell(v) for v in vals)
      )
      body += (
          f'<tr class="{source.split(",")[0]}"><td>{esc(method)}</td><td>{esc(s)}</td>'
          f'<td>{esc(source)}</td>'
          f'{cells}{_html_cell(mean, 3)}</tr>'
      )
    parts.append(f'<h2>{esc(name)}</h2><table><tr>{head}</tr>{body}</table>')
  fr = false_recognition_rows(grid)
  if fr:
    body = ''.join(
        f'<tr><td>{esc(title)}</td><td>{esc(s)}</td><td>{esc(t)}</td>'
        f'<td>{esc(_classes(ours))}</td><td class="paper">{esc(_classes(paper))}</td>'
        '</tr>'
        for title, s, t, ours, paper in fr
    )
    parts.append(
        '<h2>Appendix B: non-target classes f takes for the target (p &gt; 0.9), '
        'share of their images</h2><table><tr><th>table</th><th>setting</th>'
        f'<th>target</th><th>ours</th><th>paper</th></tr>{body}</table>'
    )
  head = ''.join(
      f'<th>{esc(h)}</th>'
      for h in ['method', 'setting'] + [c for c, _, _ in FIELD_COLUMNS] + ['report']
  )
  body = ''
  for method, s, vals, page in field_rows(grid):
    link = f'<a href="{esc(os.path.relpath(page, base))}">report</a>' if page else ''
    body += (
        f'<tr><td>{esc(method)}</td><td>{esc(s)}</td>'
        + ''.join(
            f'<td>{"" if v is None else f"{v:.{d}f}"}</td>'
            for v, (_, _, d) in zip(vals, FIELD_COLUMNS)
        )
        + f'<td>{link}</td></tr>'
    )
  parts.append(
      "<h2>The field's measures (f' penultimate features, means over targets)</h2>"
      f'<table><tr>{head}</tr>{body}</table>'
  )
  for s, res in grid['preimagegan'].items():
    if not res.get('report'):
      continue
    grid_png = os.path.join(os.path.dirname(res['report']), 'samples.png')
    parts.append(
        f'<h3>{esc(s)} (PreImageGAN)</h3>' f'<img src="{esc(os.path.relpath(grid_png, base))}">'
    )
  style = (
      'body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}'
      'td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}'
      'tr.paper{color:#666;font-style:italic}td.uncertain{background:#fff3cd}'
      'img{image-rendering:pixelated}'
  )
  with open(path, 'w') as f:
    f.write(
        f'<!doctype html><html><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f'<style>{style}</style></head><body>{"".join(parts)}</body></html>\n'
    )


def summary_figure(path: str, grid: dict, description: str) -> None:
  """Mean inception accuracy per setting: ours beside the paper's where it is known."""
  settings = [s for s in ALL_SETTINGS if s in grid['preimagegan'] or s in grid['acgan']]

  def mean(res, s, method='PreImageGAN'):
    # Over the targets the paper prints, so each bar stands beside a like mean.
    if res is None:
      return None
    acc = res['inception_accuracy']
    return float(np.mean([acc[t] for t in paper_targets(method, s, acc)]))

  def paper(method, s):
    # The paper's printed mean; where the copy lost it, the mean of its cells.
    row = PAPER.get((method, s))
    return None if row is None else paper_tables.mean_of(row)[0]

  recipe = f", recipe {grid['recipe']}" if grid.get('recipe') else ''
  series = {f'PreImageGAN (ours{recipe})': [mean(grid['preimagegan'].get(s), s) for s in settings]}
  for r, runs in grid.get('recipes', {}).items():
    series[f'PreImageGAN (ours, recipe {r})'] = [mean(runs.get(s), s) for s in settings]
  series['PreImageGAN (paper)'] = [paper('PreImageGAN', s) for s in settings]
  if grid['acgan']:
    series['ACGAN (ours)'] = [mean(grid['acgan'].get(s), s, 'ACGAN') for s in settings]
    series['ACGAN (paper)'] = [paper('ACGAN', s) for s in settings]
  plots.grouped_bars(
      path,
      settings,
      series,
      # The description names every setting: wrap it to the figure's width.
      'Mean inception accuracy per setting (n/a: not run, or not recorded here; lowercase: '
      "over the paper's 10 letters)\n" + textwrap.fill(re.sub(r',(?=\S)', ', ', description), 90),
      'mean inception accuracy (share)',
      'setting',
  )


def write_tables(workdir: str, grid: dict, description: str) -> str:
  title = f'C2G on EMNIST: inception accuracy, ours beside the paper ({description})'
  notes = [
      f'Our runs: {description}.',
      f'Paper: {paper_tables.SOURCE}; "~" = the copy\'s '
      'approximate mean; an empty paper cell is a target or mean the paper does not '
      'report. ' + paper_tables.NOISE_NOTE,
      'Inception accuracy: share of generated images of target t that the independent '
      "evaluator f' labels t.",
  ]
  text = markdown(grid, title)
  with open(os.path.join(workdir, 'tables.md'), 'w') as f:
    f.write(text)
  summary_figure(os.path.join(workdir, 'summary.png'), grid, description)
  write_html(os.path.join(workdir, 'index.html'), grid, title, notes)
  checkpoint.write_json(
      os.path.join(workdir, 'grid.json'),
      json.loads(json.dumps(grid, default=lambda o: o.item() if hasattr(o, 'item') else str(o))),
  )
  return text


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  # Orbax logs every save and load at INFO; keep its warnings only.
  logging.get_absl_handler().addFilter(
      lambda r: r.levelno >= std_logging.WARNING or '/orbax/' not in r.pathname
  )
  workdir = FLAGS.workdir
  os.makedirs(workdir, exist_ok=True)
  cache = FLAGS.compilation_cache or os.path.join(workdir, '.jax_cache')
  if cache != 'none':
    # Settings of equal shapes and reruns reuse compiled programs across runs.
    jax.config.update('jax_compilation_cache_dir', os.path.abspath(cache))
  make = lambda s: make_config(s, FLAGS.size, FLAGS.steps, FLAGS.override)
  for s in FLAGS.settings:  # bad overrides or names fail before any training
    if s not in ALL_SETTINGS:
      raise app.UsageError(f'--settings: unknown setting {s!r}; choose from {ALL_SETTINGS}')
    make(s)
  for r in FLAGS.recipes:
    if r != 'default' and r not in attack_lib.RECIPES:
      raise app.UsageError(
          f"--recipes: unknown recipe {r!r}; choose from {('default',) + tuple(attack_lib.RECIPES)}"
      )
  # Stopped or failed: one line; the same command continues every run.
  grid = cli.run(
      run_grid,
      workdir,
      FLAGS.settings,
      make,
      with_acgan=FLAGS.acgan,
      recipes=FLAGS.recipes,
      reevaluate=FLAGS.reevaluate,
  )
  steps = make(FLAGS.settings[0]).attack.steps
  print(
      write_tables(
          workdir,
          grid,
          f'size {FLAGS.size}, {steps} generator steps, settings {",".join(FLAGS.settings)}; '
          f"'ours': recipe {grid['recipe']}",
      )
  )
  print(f'grid report: {os.path.abspath(os.path.join(workdir, "index.html"))}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
