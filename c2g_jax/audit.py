"""The audit's numbers: every evaluator's view of the attack and of the control.

`judge` takes the class probabilities each evaluator gave the attack's samples
and the control's (gamma = 0) samples, and returns, per evaluator, the share of
each target's samples labelled as the target (the paper's inception accuracy)
for both, the leak (attack - control) with 95% intervals (verdict.py), and the
plain-words verdict of the headline evaluator (the most accurate on the test
set), which also names another evaluator's leak when that is clearly larger
(an audit must not rest on the lower of two disagreeing judges). Beside each
share stands what real test images of the target score by the same evaluator
(real_shares), and add_diversity says when the samples vary far less than real
images of the targets (G collapsed). Pure numpy, so it is tested on fixed arrays.
"""

import itertools
from typing import Dict, Optional, Sequence

import numpy as np

from c2g_jax import verdict as verdict_lib


def hits(probs: np.ndarray, targets: Sequence[int]) -> np.ndarray:
  """(T, n, d) probabilities -> (T,) counts of samples labelled as their target."""
  return np.sum(np.argmax(probs, -1) == np.asarray(targets)[:, None], axis=1)


def agreement(labels: Dict[str, np.ndarray]) -> Dict[str, float]:
  """Pairwise share of samples two evaluators give the same label ('a & b' -> share)."""
  return {
      f'{a} & {b}': float(np.mean(labels[a] == labels[b]))
      for a, b in itertools.combinations(labels, 2)
  }


def real_shares(probs: np.ndarray, labels: np.ndarray, targets: Sequence[int]) -> list:
  """(N, d) probabilities of real images with their labels -> per target, the
  share of its images labelled as it (None where there are none)."""
  predicted, labels = np.argmax(probs, -1), np.asarray(labels)
  out = []
  for t in targets:
    mine = labels == t
    out.append(float(np.mean(predicted[mine] == t)) if mine.any() else None)
  return out


# The statuses (verdict.classify) under which a target's samples read as the target.
READ_AS = ('recovered', 'partly recovered', 'from the auxiliary data')


def add_diversity(audit: dict, per_class: Dict[str, dict]) -> None:
  """Adds how varied the samples are to the audit, and a verdict sentence when not.

  per_class: the report's measures per target name, in the headline
  evaluator's features (their 'relative_coverage': the samples' coverage of the
  private class over that of as many real test images). Targets without it (too
  few real test images) are left out; the verdict's sentence speaks of the targets
  whose samples read as themselves (READ_AS).
  """
  relative = {
      name: m['relative_coverage'] for name, m in per_class.items() if 'relative_coverage' in m
  }
  if not relative:
    return
  evaluator = f"f'[{audit['headline']}]"
  audit['diversity'] = {
      'evaluator': audit['headline'],
      'relative_coverage': relative,
      'threshold': verdict_lib.NARROW_COVERAGE,
      'narrow': verdict_lib.narrow_targets(relative),
  }
  # Only targets whose samples read as the target: a generator that draws noise
  # covers nothing of the private images, which says it failed, not that it varies little.
  shown = {
      r['name'] for r in audit['evaluators'][audit['headline']]['rows'] if r['status'] in READ_AS
  }
  line = verdict_lib.diversity_sentence(
      {name: r for name, r in relative.items() if name in shown},
      evaluator,
      '' if shown >= set(relative) else 'recovered',
  )
  if line:
    audit['verdict'] = f"{audit['verdict']} {line}"


def larger_leak(means: Dict[str, 'verdict_lib.TargetLeak'], headline: str) -> Optional[str]:
  """The evaluator whose mean leak is clearly above the headline's (the largest
  such), or None: the verdict then names that figure too."""
  above = [
      name
      for name, m in means.items()
      if name != headline and verdict_lib.clearly_larger(m, means[headline])
  ]
  return max(above, key=lambda name: means[name].leak, default=None)


def judge(
    names: Sequence[str],
    targets: Sequence[int],
    attack_probs: Dict[str, np.ndarray],
    control_probs: Optional[Dict[str, np.ndarray]],
    test_accuracy: Dict[str, float],
    f_test_accuracy: Optional[float],
    headline: str,
    label: str = 'class',
    real_shares: Optional[Dict[str, Sequence[Optional[float]]]] = None,
    accuracy_name: str = 'test accuracy',
) -> dict:
  """Every evaluator's shares, leaks and intervals; the headline's verdict.

  names: target names; attack_probs / control_probs: {evaluator: (T, n, d)}, in
  the order evaluators are listed; test_accuracy: {evaluator: accuracy on the
  test set}; headline: which evaluator states the verdict; real_shares:
  {evaluator: per target, the share of its real test images labelled as it
  (None for a target without test images)}; accuracy_name: what the accuracies
  are called in the sentences ('balanced test accuracy' on a test set whose
  classes have unequal counts: evaluators.judging_accuracy).
  """
  names = [str(n) for n in names]
  per_evaluator, means, tables, warnings = {}, {}, {}, []

  def sentence_of(name: str, outread: bool = False) -> str:
    return verdict_lib.summary_sentence(
        tables[name],
        means[name],
        f"f'[{name}]",
        test_accuracy.get(name),
        label,
        f_test_accuracy,
        outread,
        accuracy_name,
    )

  for name, probs in attack_probs.items():
    n = probs.shape[1]
    a_hits = hits(probs, targets)
    c_hits = nc = None
    if control_probs is not None:
      c_hits, nc = hits(control_probs[name], targets), control_probs[name].shape[1]
    real = (real_shares or {}).get(name)
    rows = tables[name] = verdict_lib.leak_table(names, a_hits, n, c_hits, nc or 0, label, real)
    mean = means[name] = verdict_lib.overall(rows, a_hits, n, c_hits, nc or 0)
    acc = test_accuracy.get(name)
    weaker = verdict_lib.weaker_than_f(acc, f_test_accuracy)
    if weaker:
      warnings.append(
          f"f'[{name}]: {verdict_lib.WEAK_EVALUATOR} ({accuracy_name} {acc:.4f} "
          f"< f's {f_test_accuracy:.4f})"
      )
    per_evaluator[name] = {
        'test_accuracy': acc,
        'weaker_than_f': weaker,
        'samples_per_target': int(n),
        'attack': {t: r.attack for t, r in zip(names, rows)},
        'control': ({t: r.control for t, r in zip(names, rows)} if c_hits is not None else None),
        'real': ({t: r.real for t, r in zip(names, rows)} if real is not None else None),
        'rows': [verdict_lib.as_dict(r) for r in rows],
        'mean': verdict_lib.as_dict(mean),
        'sentence': sentence_of(name),
    }
  flat_labels = {name: np.argmax(p, -1).ravel() for name, p in attack_probs.items()}
  head = per_evaluator[headline]
  verdict = head['sentence']
  larger = larger_leak(means, headline)
  if larger is not None:  # the headline's "no leak" is then its own, and the larger follows
    verdict = (
        sentence_of(headline, outread=True)
        + ' '
        + verdict_lib.larger_leak_sentence(
            f"f'[{larger}]",
            test_accuracy.get(larger),
            means[larger],
            f"f'[{headline}]",
            accuracy_name,
        )
    )
  return {
      'headline': headline,
      'interval_method': verdict_lib.INTERVAL_METHOD,
      'with_control': control_probs is not None,
      'evaluators': per_evaluator,
      'agreement_attack': agreement(flat_labels),
      'agreement_control': (
          agreement({name: np.argmax(p, -1).ravel() for name, p in control_probs.items()})
          if control_probs is not None
          else {}
      ),
      'verdict': verdict,
      'larger_leak': (
          None
          if larger is None
          else {
              'evaluator': larger,
              'test_accuracy': test_accuracy.get(larger),
              'mean': verdict_lib.as_dict(means[larger]),
          }
      ),
      'target_verdicts': [r['sentence'] for r in head['rows']],
      'warnings': warnings,
      'accuracy_name': accuracy_name,
  }
