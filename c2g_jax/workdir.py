"""A work directory holds one run: its config.json, checkpoints and outputs.

Starting a run in a directory that already holds one continues it, but only if
the two configs agree on everything that changes the result. Fields in
`FREE_FIELDS` may change between starts: they decide how often to log, save or
sample, how the steps are chunked (`attack.iterations_per_call`: the random keys
depend on the step only), how long to train (`attack.steps`: nothing in the
trajectory depends on the total, so a longer run extends a shorter one), where
the data is read from, how convolutions are computed, the evaluation, and how
many seeds a weak evaluator may be trained with (one already saved is kept).

Anything else refuses to start (WorkdirError) unless asked for on purpose:
  'restart'   move the old run aside to <workdir>.old-<time> and start over;
  'continue'  keep going from the old run's checkpoints with the new config
              (the old config.json is kept as config.<time>.json).
Nothing is deleted.

config.json also records the values the attack's recipe gave (recipes.py), so a
run is not resumed under a recipe redefined since it started.
"""

import datetime
import fnmatch
import json
import operator
import os
from typing import Optional

from absl import logging

from c2g_jax import recipes
from c2g_jax.checkpoint import write_json

CONFIG_FILE = 'config.json'
MODES = ('check', 'restart', 'continue')

FREE_FIELDS = (
    'log_every_steps',
    'checkpoint_every_steps',
    'checkpoint_every_secs',
    'checkpoints_to_keep',
    'sample_every_steps',
    'multihost',
    'attack.steps',
    'attack.iterations_per_call',
    'attack.conv_impl',
    'evaluator.max_seeds',
    'data.data_dir',
    'eval.*',
    'tensorboard*',
    'report*',
)

# Files a run may leave before it writes config.json (a kill during that write).
_IGNORED_WHEN_EMPTY = (CONFIG_FILE + '.tmp',)
CONTROL_DIR = 'control'  # the gamma = 0 control inside a run's workdir (train.py)


class WorkdirError(ValueError):
  """The work directory holds something this run must not continue or overwrite."""


def flatten(d: dict, prefix: str = '') -> dict:
  """{'a': {'b': 1}} -> {'a.b': 1}: configs compared and shown key by key."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def _normalise(config_dict: dict, stored: bool = False) -> dict:
  """What json.dump would store (tuples become lists, so a stored config compares
  equal), with the values the attack's recipe gives recorded (recipes.RECORD): by
  today's recipes, or for a stored run without the record, by those it ran with."""
  d = json.loads(json.dumps(config_dict))
  attack = d.get('attack')
  if not isinstance(attack, dict):
    return d
  record = attack.get(recipes.RECORD)
  if not isinstance(record, dict):
    attack[recipes.RECORD] = recipes.resolve(
        attack, recipes.BEFORE_RECORD if stored else recipes.RECIPES
    )
  elif stored:
    # A key recipes could not set when the run was stored (view_blur and
    # grey_output until the 'faces' recipe): the run used its config's value.
    for key, paper in recipes.PAPER_VALUES.items():
      record.setdefault(key, attack.get(key, ADDED_KEYS.get(f'attack.{key}', paper)))
  return d


def is_free(key: str) -> bool:
  return any(fnmatch.fnmatchcase(key, pattern) for pattern in FREE_FIELDS)


# Keys added to the config after runs were first stored, with the value that
# behaves as the code did before them: a stored run that lacks one ran with it,
# so upgrading the tool does not make every finished run "another config".
ADDED_KEYS = {
    'attack.grey_output': 'off',
    'attack.onehot_share': 0.0,
    'attack.margin_cap': 0.0,
    'attack.view_blur': 0.0,
    'attack.surrogate': '',
    'attack.critic_augment': 'off',
    'attack.critic_condition': 'off',
    'evaluator.balance_classes': 'off',
}


def _flat_pair(stored: dict, new: dict) -> tuple:
  """Both configs flattened; a key added since `stored` was written takes its old value."""
  stored = _normalise(stored, stored=True)
  a, b = flatten(stored), flatten(_normalise(new))
  for key, value in ADDED_KEYS.items():
    if key in b and key not in a:
      a[key] = value
  return a, b


def config_changes(old: dict, new: dict) -> list:
  """[(key, old value, new value)] of the result-changing fields that differ."""
  a, b = _flat_pair(old, new)
  missing = object()
  out = []
  for key in sorted(set(a) | set(b)):
    va, vb = a.get(key, missing), b.get(key, missing)
    if va != vb and not is_free(key):
      out.append((key, '(absent)' if va is missing else va, '(absent)' if vb is missing else vb))
  return out


def same_config(stored: Optional[dict], config_dict: dict) -> bool:
  """Whether a stored config equals config_dict in every key, free ones included."""
  return stored is not None and operator.eq(*_flat_pair(stored, config_dict))


def _stamp() -> str:
  return datetime.datetime.now().strftime('%Y%m%d-%H%M%S')


def _unique(path: str) -> str:
  candidate, i = path, 1
  while os.path.exists(candidate):
    candidate, i = f'{path}-{i}', i + 1
  return candidate


def read_config(workdir: str) -> Optional[dict]:
  """The config stored in workdir, or None when there is none."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      stored = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise WorkdirError(
        f'{path} is not readable JSON ({type(e).__name__}: {str(e)[:80]}): pass --restart to '
        'move this run aside and start over, or choose another --workdir'
    ) from None
  if not isinstance(stored, dict):
    raise WorkdirError(
        f'{path} holds a {type(stored).__name__}, not a config: pass '
        '--restart to move this run aside, or choose another --workdir'
    )
  return stored


class Plan:
  """What prepare() decided, applied by commit() once every input check passed.

  Splitting the two keeps a refused start (a bad checkpoint, a bad batch size)
  from moving or writing anything.
  """

  def __init__(self, workdir: str, config_dict: dict, action: str, changes=()):
    self.workdir, self.config_dict, self.action, self.changes = (
        workdir,
        config_dict,
        action,
        list(changes),
    )

  def commit(self) -> None:
    w = self.workdir
    if self.action == 'restart':
      moved = _unique(f'{w.rstrip(os.sep)}.old-{_stamp()}')
      os.rename(w, moved)
      logging.warning('--restart: moved the previous run in %s to %s', w, moved)
    elif self.action == 'continue':
      old = os.path.join(w, CONFIG_FILE)
      if os.path.exists(old):
        kept = _unique(os.path.join(w, f'config.{_stamp()}.json'))
        os.rename(old, kept)
        logging.warning(
            '--continue_anyway: continuing %s with a changed config (%s); the '
            'previous config is kept as %s',
            w,
            describe(self.changes),
            kept,
        )
    write_config(w, self.config_dict)


def write_config(workdir: str, config_dict: dict) -> None:
  """Writes workdir/config.json as prepare() compares it (the recipe's values recorded)."""
  os.makedirs(workdir, exist_ok=True)
  write_json(os.path.join(workdir, CONFIG_FILE), _normalise(config_dict))


def describe(changes, limit: int = 4) -> str:
  parts = [f'{k}: {a!r} -> {b!r}' for k, a, b in changes[:limit]]
  if len(changes) > limit:
    parts.append(f'and {len(changes) - limit} more')
  return ', '.join(parts)


def prepare(workdir: str, config_dict: dict, mode: str = 'check') -> Plan:
  """Decides what to do with workdir for this config; reads only, writes nothing."""
  if mode not in MODES:
    raise ValueError(f'mode={mode!r}: use one of {MODES}')
  workdir = os.path.abspath(os.path.expanduser(workdir))
  config_dict = _normalise(config_dict)
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise WorkdirError(f'--workdir={workdir} is a file: choose a directory')
  entries = (
      [e for e in os.listdir(workdir) if e not in _IGNORED_WHEN_EMPTY]
      if os.path.isdir(workdir)
      else []
  )
  if entries == [CONTROL_DIR] and os.path.exists(os.path.join(workdir, CONTROL_DIR, CONFIG_FILE)):
    # Only a control of this tool, placed before its run (the experiment grid
    # shares one control between recipes): a new run, which resumes that control.
    entries = []
  if not entries:
    return Plan(workdir, config_dict, 'new')
  if CONFIG_FILE not in entries:
    # Never move or fill a directory this tool did not make.
    raise WorkdirError(
        f'--workdir={workdir} is not empty and holds no {CONFIG_FILE}, so '
        'it is not a run of this tool: choose a new or empty directory'
    )
  if mode == 'restart':
    return Plan(workdir, config_dict, 'restart')
  stored = read_config(workdir)
  changes = config_changes(stored, config_dict)
  if not changes:
    return Plan(workdir, config_dict, 'resume')
  if mode == 'continue':
    return Plan(workdir, config_dict, 'continue', changes)
  raise WorkdirError(
      f'--workdir={workdir} holds a run with another config ({describe(changes)}'
      f'{_recipe_hint(stored, changes)}): pass '
      '--restart to move it aside and start over, --continue_anyway to continue it with '
      'this config, or choose another --workdir'
  )


def _recipe_hint(stored: dict, changes) -> str:
  """When only what the recipe gives changed (the recipe was redefined since the
  run started), the flags that continue the run as it ran."""
  record = f'attack.{recipes.RECORD}.'
  if not changes or not all(k.startswith(record) for k, _, _ in changes):
    return ''
  ran = _normalise(stored, stored=True)['attack'][recipes.RECORD]
  return (
      f'; recipe {stored["attack"].get("recipe", "paper")!r} gives other values than when '
      f'this run started: to continue it as it ran, add --continue_anyway '
      f'{recipes.continue_flags(ran)}'
  )
