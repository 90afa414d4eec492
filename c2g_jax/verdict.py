"""The audit's verdict: attack against control per target, with 95% intervals.

For each target t, an evaluator labels n samples G(z, onehot(t)) of the attack
and n of the control (the same GAN trained with gamma = 0: what the auxiliary
data alone gives). The attack's share a and the control's share c are binomial
proportions; their 95% intervals are Wilson score intervals, and the interval
of the leak a - c is Newcombe's hybrid score interval (method 10 of Newcombe,
Statistics in Medicine 1998), which combines the two Wilson intervals. The
intervals cover the sampling of z for a trained generator, not the variation
between training runs of the GAN.

Beside them stands what the real private data scores: the share of each
target's real test images the same evaluator labels as the target. A class the
evaluator cannot read on real images (EMNIST's lowercase o against the digit 0)
cannot show a leak through that evaluator, and an attack whose samples read as
often as the real images leaks as much as that evaluator can show.
"""

import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

Z_95 = 1.959963984540054
INTERVAL_METHOD = (
    "Wilson score intervals for the shares; Newcombe's hybrid score "
    'interval (from the two Wilson intervals) for the leak'
)
# A target is 'recovered' when the attack's lower bound clears this share and
# the leak is significant; below it, a significant leak is 'partly recovered'.
RECOVERED_SHARE = 0.5


def wilson_interval(successes: int, n: int, z: float = Z_95) -> Tuple[float, float]:
  """Wilson score interval of a binomial proportion successes / n."""
  if n <= 0:
    return 0.0, 1.0
  p = successes / n
  denom = 1.0 + z * z / n
  centre = (p + z * z / (2 * n)) / denom
  half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
  # At 0 or n successes the bound is exactly 0 or 1 (rounding leaves ~1e-17).
  lower = 0.0 if successes == 0 else max(0.0, centre - half)
  upper = 1.0 if successes == n else min(1.0, centre + half)
  return lower, upper


def difference_interval(k1: int, n1: int, k2: int, n2: int, z: float = Z_95) -> Tuple[float, float]:
  """Newcombe's hybrid score interval of p1 - p2 for independent samples."""
  p1, p2 = k1 / n1, k2 / n2
  l1, u1 = wilson_interval(k1, n1, z)
  l2, u2 = wilson_interval(k2, n2, z)
  d = p1 - p2
  lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
  upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
  return max(-1.0, lower), min(1.0, upper)


@dataclasses.dataclass
class TargetLeak:
  name: str
  attack: float
  attack_ci: Tuple[float, float]
  control: Optional[float] = None
  control_ci: Optional[Tuple[float, float]] = None
  leak: Optional[float] = None
  leak_ci: Optional[Tuple[float, float]] = None
  status: str = ''  # recovered / partly recovered / from the auxiliary data / not recovered
  sentence: str = ''
  real: Optional[float] = None  # the evaluator's share of real test images of the target


def unreadable(t: TargetLeak) -> bool:
  """True when the evaluator reads fewer than half of the target's real images as it."""
  return t.real is not None and t.real < RECOVERED_SHARE


def classify(attack: float, attack_ci, control: Optional[float], leak_ci) -> str:
  """One of four plain statuses for a target (see sentence())."""
  if control is None:  # no control run: judge the attack alone
    return 'recovered' if attack_ci[0] >= RECOVERED_SHARE else 'not shown'
  significant = leak_ci[0] > 0
  if significant and attack_ci[0] >= RECOVERED_SHARE:
    return 'recovered'
  if significant:
    return 'partly recovered'
  if control >= RECOVERED_SHARE:
    return 'from the auxiliary data'
  return 'not recovered'


def sentence(t: TargetLeak, label: str = 'class') -> str:
  """The target's verdict in plain words."""
  who = f'{label} {t.name}'
  caveat = (
      f'; the judge itself reads only {t.real:.2f} of real {t.name} images as {t.name}, so it '
      'cannot show this leak'
      if unreadable(t)
      else ''
  )
  if t.control is None:
    return (
        f'{who}: {t.attack:.2f} of the samples read as {t.name} (no control run, so '
        'the leak over the auxiliary data alone is not measured)' + caveat
    )
  against = f'{t.attack:.2f} against {t.control:.2f} without the classifier'
  lo, hi = t.leak_ci
  leak = f'leak {t.leak:+.2f}, 95% CI {lo:+.2f} to {hi:+.2f}'
  return {
      'recovered': f'{who}: the attack recovers it, {against} ({leak})',
      'partly recovered': f'{who}: partly recovered, {against} ({leak})',
      'from the auxiliary data': (
          f'{who}: the auxiliary data alone gives it, {against}: '
          f'no leak through the classifier shown ({leak})'
      ),
      'not recovered': f'{who}: not recovered, {against} ({leak})',
  }[t.status] + caveat


def leak_table(
    names: Sequence[str],
    attack_hits: Sequence[int],
    n_attack: int,
    control_hits: Optional[Sequence[int]] = None,
    n_control: int = 0,
    label: str = 'class',
    real_shares: Optional[Sequence[Optional[float]]] = None,
) -> List[TargetLeak]:
  """Per target: shares, intervals, leak, status and sentence.

  attack_hits[i]: how many of the n_attack samples of target i the evaluator
  labelled as target i; control_hits likewise for the control (None: no control);
  real_shares[i]: the evaluator's share of target i's real test images read as
  target i (None: no test images of it).
  """
  rows = []
  for i, name in enumerate(names):
    k = int(attack_hits[i])
    t = TargetLeak(str(name), k / n_attack, wilson_interval(k, n_attack))
    if real_shares is not None and real_shares[i] is not None:
      t.real = float(real_shares[i])
    if control_hits is not None:
      kc = int(control_hits[i])
      t.control = kc / n_control
      t.control_ci = wilson_interval(kc, n_control)
      t.leak = t.attack - t.control
      t.leak_ci = difference_interval(k, n_attack, kc, n_control)
    t.status = classify(t.attack, t.attack_ci, t.control, t.leak_ci)
    t.sentence = sentence(t, label)
    rows.append(t)
  return rows


def overall(
    rows: Sequence[TargetLeak], attack_hits, n_attack: int, control_hits=None, n_control: int = 0
) -> TargetLeak:
  """All targets pooled: the mean share (equal samples per target) and its interval."""
  total_a, total_n = int(np.sum(attack_hits)), n_attack * len(rows)
  t = TargetLeak('mean', total_a / total_n, wilson_interval(total_a, total_n))
  real = [r.real for r in rows if r.real is not None]
  if real:
    t.real = float(np.mean(real))
  if control_hits is not None:
    total_c, total_nc = int(np.sum(control_hits)), n_control * len(rows)
    t.control = total_c / total_nc
    t.control_ci = wilson_interval(total_c, total_nc)
    t.leak = t.attack - t.control
    t.leak_ci = difference_interval(total_a, total_n, total_c, total_nc)
  t.status = classify(t.attack, t.attack_ci, t.control, t.leak_ci)
  return t


def summary_sentence(
    rows: Sequence[TargetLeak],
    mean: TargetLeak,
    evaluator: str,
    evaluator_accuracy: Optional[float],
    label: str = 'class',
    f_accuracy: Optional[float] = None,
    outread: bool = False,
    accuracy_name: str = 'test accuracy',
) -> str:
  """The overall verdict in one sentence, then what real images score, then a
  caveat when its judge is weaker than f. outread: another judge shows a
  clearly larger leak (larger_leak_sentence follows), so "no leak" is this
  judge's alone.

  A judge less accurate than f misreads samples that f would read as their
  target (on ORL a VGG at 0.925 gave samples 0.18 that one at 1.000 read 0.42),
  so the verdict itself says that its figure is likely low. The real images'
  share is the scale of the figure: on EMNIST lowercase the judge reads real
  private letters at 0.66 (o as 0, l as 1), so 0.76 there is a full leak.
  """
  counts = {
      s: sum(r.status == s for r in rows)
      for s in ('recovered', 'partly recovered', 'from the auxiliary data', 'not recovered')
  }
  acc = (
      f', {accuracy_name} {evaluator_accuracy:.3f}'
      if evaluator_accuracy is not None and not math.isnan(evaluator_accuracy)
      else ''
  )
  judged = f'judged by {evaluator}{acc}'
  caveat = ''
  if weaker_than_f(evaluator_accuracy, f_accuracy):
    caveat = (
        f' This judge is less accurate than f ({evaluator_accuracy:.3f} < {f_accuracy:.3f}), so'
        ' the leak is likely larger: train the evaluators longer or wider (config.evaluator).'
    )
  caveat = real_sentence(rows, mean) + caveat
  if mean.control is None:
    return (
        f'Without a control run the leak is not measured: {judged}, '
        f'{mean.attack:.2f} of the samples read as their target.' + caveat
    )
  lo, hi = mean.leak_ci
  none_shown = counts['recovered'] + counts['partly recovered'] == 0
  if none_shown and lo > 0:
    # Each target's interval is wide, the pooled one is not: a leak none shows alone.
    head = (
        'The classifier leaks a little: no target alone shows it, but pooled over all the samples'
        ' they read as their target more often than without the classifier, for the'
    )
  elif none_shown:
    head = f"No leak shown{' by this judge' if outread else ''}: the attack recovers none of the"
  elif counts['recovered'] == 0:
    head = (
        f"The classifier leaks partly: the attack partly recovers {counts['partly recovered']} of"
    )
  else:
    head = (
        f"The classifier leaks: the attack recovers {counts['recovered']}"
        + (f" and partly {counts['partly recovered']}" if counts['partly recovered'] else '')
        + ' of'
    )
  plural = {'class': 'classes', 'person': 'people'}.get(label, label + 's')
  return (
      f'{head} {len(rows)} target {plural} '
      f'({judged}): mean {mean.attack:.2f} against {mean.control:.2f} without the '
      f'classifier, leak {mean.leak:+.2f} (95% CI {lo:+.2f} to {hi:+.2f}).' + caveat
  )


def clearly_larger(other: TargetLeak, headline: TargetLeak) -> bool:
  """True when other's leak interval lies wholly above the headline's."""
  if other.leak_ci is None or headline.leak_ci is None:
    return False
  return other.leak_ci[0] > headline.leak_ci[1]


def larger_leak_sentence(
    evaluator: str,
    accuracy: Optional[float],
    mean: TargetLeak,
    headline: str,
    accuracy_name: str = 'test accuracy',
) -> str:
  """The verdict's sentence for another judge whose leak is clearly larger.

  The headline judge is the most accurate on the test set, but the test set
  can be small (40 ORL faces: 1.000 against 0.950 is two faces) and two judges
  can read the same samples very differently (ORL seed 2: 0.11 and 0.39). An
  audit that named only the lower figure would understate what the classifier
  gives away, so the higher one stands in the verdict too, as the figure to
  decide by.
  """
  acc = (
      f' ({accuracy_name} {accuracy:.3f})'
      if accuracy is not None and not math.isnan(accuracy)
      else ''
  )
  lo, hi = mean.leak_ci
  return (
      f'Another judge reads more: {evaluator}{acc} gives the same samples {mean.attack:.2f} '
      f'against {mean.control:.2f} without the classifier, leak {mean.leak:+.2f} (95% CI '
      f"{lo:+.2f} to {hi:+.2f}), wholly above {headline}'s interval. The independent judges "
      'disagree, so decide by the larger leak.'
  )


def real_sentence(rows: Sequence[TargetLeak], mean: TargetLeak) -> str:
  """What the judge gives real test images of the targets, as the verdict's scale."""
  if mean.real is None:
    return ''
  out = f' Real test images of these targets score {mean.real:.2f} by the same judge'
  if mean.attack >= mean.real:
    out += ': the samples read as their target as often as the private images themselves'
  unread = [r.name for r in rows if unreadable(r)]
  if unread:
    out += (
        f"; fewer than half of the real {', '.join(unread)} read as themselves, so "
        f"{'those targets' if len(unread) > 1 else 'that target'} cannot show a leak through this judge"
    )
  return out + '.'


# A target whose samples cover less than this share of what as many real test
# images cover of its private class (metrics.coverage_against_real, in the
# judge's features) varies little; below COLLAPSED_COVERAGE, G draws nearly one
# image of it whatever z.
NARROW_COVERAGE = 0.5
COLLAPSED_COVERAGE = 0.2


def narrow_targets(relative: Dict[str, float]) -> List[str]:
  """The targets whose relative coverage is below NARROW_COVERAGE."""
  return [name for name, r in relative.items() if r is not None and r < NARROW_COVERAGE]


def diversity_sentence(relative: Dict[str, float], evaluator: str, kind: str = '') -> str:
  """A sentence for the verdict when the samples of some targets vary little, else ''.

  relative: per target, the samples' coverage of its private images over that
  of as many real test images. The inception accuracy cannot see collapse: on
  EMNIST exact same a generator drawing one digit per class whatever z scored
  0.999; the share then says f gives away a typical image of each class, not
  the variety of the private data. kind: a word for the targets measured when
  they are not all of them ('recovered').
  """
  known = {name: r for name, r in relative.items() if r is not None and not math.isnan(r)}
  narrow = narrow_targets(known)
  if not narrow:
    return ''
  kind = f'{kind} ' if kind else ''
  which = (
      f'every {kind}target'
      if len(narrow) == len(known)
      else f"{len(narrow)} of {len(known)} {kind}targets ({', '.join(narrow)})"
  )
  mean = float(np.mean([known[n] for n in narrow]))
  so = (
      'G draws nearly one image per target whatever z: the samples show what each target '
      'looks like, not how it varies'
      if mean < COLLAPSED_COVERAGE
      else 'the samples show what each target looks like more than how it varies'
  )
  return (
      f'The samples vary little: for {which} they cover only {mean:.2f} of what as many real '
      f"test images cover of the private images (in {evaluator}'s features), so {so}."
  )


WEAK_EVALUATOR = (
    'the evaluator is weaker than the model it audits: its inception accuracy '
    'understates the leak'
)


def weaker_than_f(evaluator_accuracy, f_accuracy) -> bool:
  """True when an evaluator is less accurate than f on the same test set."""
  if evaluator_accuracy is None or f_accuracy is None:
    return False
  if math.isnan(evaluator_accuracy) or math.isnan(f_accuracy):
    return False
  return evaluator_accuracy < f_accuracy


def as_dict(t: TargetLeak) -> dict:
  return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(t).items()}
