"""The attack recipe's ablation (issue 11): each attacker-side change alone and together.

Runs `python main.py` once for the paper's recipe (f, the evaluators, the attack and
the gamma = 0 control), then once per variant on a copy of that run with only the
attack's training removed (`--continue_anyway`): every variant meets the same f,
the same evaluators and the same control, so their rows differ by the recipe
alone. The control is gamma = 0, which no recipe key changes; a variant that
changes the GAN itself (a key outside train.CONTROL_FIXED: one-hot labels, say)
trains its own. Every variant runs
with the final selection on, so each row gives the raw draws and the selected ones
(the selection changes only the evaluation). Prints a markdown table and writes
it to --out (appending).

  python benchmarks/ablation.py --config=configs/emnist.py:numeric_mutually_exclusive,cpu \
      --root=/tmp/abl/numeric --out=docs/ablation.md
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from c2g_jax import train  # pylint: disable=g-import-not-at-top

# name -> main.py flags on top of the paper's recipe.
VARIANTS = {
    'paper': [],
    'views': ['--config.attack.similarity_views=9'],
    'max_margin': ['--config.attack.similarity=max_margin'],
    'onehot': ['--config.attack.onehot_share=0.25'],
    'views+max_margin': [
        '--config.attack.similarity_views=9',
        '--config.attack.similarity=max_margin',
    ],
    'views+max_margin+onehot': [
        '--config.attack.similarity_views=9',
        '--config.attack.similarity=max_margin',
        '--config.attack.onehot_share=0.25',
    ],
}
# What a variant run must not inherit from the paper run: the attack's training.
_ATTACK_FILES = ('checkpoints', 'metrics.jsonl', 'tensorboard', 'report', 'results.json')


def run_main(config, workdir, flags, log):
  cmd = [sys.executable, 'main.py', f'--config={config}', f'--workdir={workdir}', *flags]
  start = time.time()
  with open(log, 'w') as fh:
    fh.write(' '.join(cmd) + '\n')
    fh.flush()
    rc = subprocess.call(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
  if rc != 0:
    raise SystemExit(f'{" ".join(cmd)} failed (exit {rc}): see {log}')
  return time.time() - start


def changes_the_gan(flags):
  """Whether flags set an attack key that changes the control's G and D: any key
  but those that act only through gamma (train.CONTROL_FIXED, as main.py decides)."""
  keys = [f.split('=', 1)[0].removeprefix('--config.attack.') for f in flags]
  return any(k not in train.CONTROL_FIXED for k in keys)


def copy_for_variant(base, workdir, retrain, retrain_control=False):
  """The base run without what the variant redoes (its attack, or only its report;
  its control too when retrain_control)."""
  if os.path.abspath(workdir) == os.path.abspath(base):
    raise ValueError(f'a variant may not run in the base run {base}')
  if os.path.exists(workdir):
    shutil.rmtree(workdir)
  drop = set(_ATTACK_FILES if retrain else ('report', 'results.json'))
  if retrain_control:
    drop.add('control')
  shutil.copytree(
      base,
      workdir,
      ignore=lambda d, names: [
          n for n in names if d == base and (n in drop or (retrain and n.startswith('samples')))
      ],
  )


def row(name, flags, results, seconds):
  head = results['headline_evaluator']
  leak = results['leak']['mean']
  others = {k: e['attack_mean'] for k, e in results['evaluators'].items() if k != head}
  return (
      f"| {name} | `{' '.join(flags) or '(none)'}` | {results.get('raw_inception_accuracy_mean', leak['attack']):.3f} "
      f"| {leak['attack']:.3f} | {leak['control']:.3f} | {leak['leak']:+.3f} "
      f"[{leak['leak_ci'][0]:+.2f}, {leak['leak_ci'][1]:+.2f}] "
      f"| {' '.join(f'{k} {v:.3f}' for k, v in others.items())} | {seconds / 60:.1f} |"
  )


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--config', required=True, help='main.py --config, e.g. configs/emnist.py:...')
  p.add_argument('--root', required=True, help='a folder for the runs (one per variant)')
  p.add_argument('--variants', default=','.join(VARIANTS), help='comma-separated names')
  p.add_argument('--selection_pool', type=int, default=4, help='candidates per kept sample')
  p.add_argument('--extra', default='', help='flags every run gets (space-separated)')
  p.add_argument('--out', default='', help='markdown file to append the table to')
  args = p.parse_args()
  names = [v for v in args.variants.split(',') if v]
  for v in names:
    if v not in VARIANTS:
      raise SystemExit(f'--variants: unknown {v!r}; choose from {", ".join(VARIANTS)}')
  # Every run states the paper's recipe: variants add their keys to it alone.
  extra = ['--config.attack.recipe=paper'] + args.extra.split()
  os.makedirs(args.root, exist_ok=True)
  # The paper's recipe without selection: the run every variant copies.
  base = os.path.join(args.root, 'base')
  seconds = {}
  if not os.path.exists(os.path.join(base, 'results.json')):
    seconds['paper (no selection)'] = run_main(
        args.config, base, extra, os.path.join(args.root, 'base.log')
    )
  selection = [f'--config.attack.selection_pool={args.selection_pool}']
  base_results = json.load(open(os.path.join(base, 'results.json')))
  lines = [
      f'### `{args.config}` {" ".join(extra)}',
      '',
      "Mean inception accuracy by the headline evaluator, f'"
      f"[{base_results['headline_evaluator']}] (the most accurate on the test set: "
      f"{base_results['evaluator_test_accuracy']:.4f}; f {base_results['f_test_accuracy']:.4f}). "
      f'Selection keeps 1 in {args.selection_pool} draws by f; the control (gamma = 0) is '
      'shared (unless the variant changes the GAN) and never selected; leak = selected - control (95% CI, Newcombe). Minutes: '
      "the variant's main.py call (the attack, the selection and the report)."
      + (
          f" The paper run itself: {seconds['paper (no selection)'] / 60:.1f} min."
          if seconds
          else ''
      ),
      '',
      '| variant | flags | raw draws | selected | control | leak [95% CI] | other evaluators '
      '(selected) | minutes |',
      '|---|---|---|---|---|---|---|---|',
  ]
  for name in names:
    workdir = os.path.join(args.root, name)
    copy_for_variant(
        base, workdir, retrain=name != 'paper', retrain_control=changes_the_gan(VARIANTS[name])
    )
    flags = VARIANTS[name] + selection + extra
    t = run_main(args.config, workdir, flags + ['--continue_anyway'], workdir + '.log')
    results = json.load(open(os.path.join(workdir, 'results.json')))
    lines.append(row(name, VARIANTS[name], results, t))
    print(lines[-1], flush=True)
  text = '\n'.join(lines) + '\n'
  print(text)
  if args.out:
    with open(args.out, 'a') as fh:
      fh.write(text + '\n')


if __name__ == '__main__':
  main()
