"""The verdict's statistics and words: intervals by hand, the leak table from fixed arrays."""

import math

import numpy as np
import pytest

from c2g_jax import audit
from c2g_jax import verdict


def test_wilson_interval_matches_hand_computation():
  # 85 of 100, z = 1.96: centre (0.85 + 1.96^2/200) / (1 + 1.96^2/100),
  # half-width 1.96 sqrt(0.85*0.15/100 + 1.96^2/40000) / (1 + 1.96^2/100).
  z = 1.959963984540054
  denom = 1 + z * z / 100
  centre = (0.85 + z * z / 200) / denom
  half = z * math.sqrt(0.85 * 0.15 / 100 + z * z / 40000) / denom
  lo, hi = verdict.wilson_interval(85, 100)
  assert lo == pytest.approx(centre - half, abs=1e-12)
  assert hi == pytest.approx(centre + half, abs=1e-12)
  # The textbook value (Newcombe 1998, Table I: 81/263 -> 0.2553 to 0.3662).
  lo, hi = verdict.wilson_interval(81, 263)
  assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)


def test_wilson_interval_at_the_edges_stays_in_0_1_and_is_not_degenerate():
  lo, hi = verdict.wilson_interval(0, 50)
  assert lo == 0.0 and 0.05 < hi < 0.1  # 0/50 still admits a few percent
  lo, hi = verdict.wilson_interval(50, 50)
  assert hi == 1.0 and 0.9 < lo < 0.95


def test_newcombe_difference_interval_matches_the_published_example():
  # Newcombe (1998), Table II, example (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339.
  lo, hi = verdict.difference_interval(56, 70, 48, 80)
  assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)
  # Example (e): 5/56 - 0/29: -0.0381 to 0.1926 (a zero cell).
  lo, hi = verdict.difference_interval(5, 56, 0, 29)
  assert (round(lo, 4), round(hi, 4)) == (-0.0381, 0.1926)


def test_leak_table_statuses_and_sentences():
  names = ['0', '1', '2', '3']
  # 0: recovered; 1: partly; 2: the control alone gives it; 3: nothing.
  attack = [850, 300, 620, 20]
  control = [70, 50, 600, 15]
  rows = verdict.leak_table(names, attack, 1000, control, 1000)
  assert [r.status for r in rows] == [
      'recovered',
      'partly recovered',
      'from the auxiliary data',
      'not recovered',
  ]
  assert rows[0].leak == pytest.approx(0.78)
  assert rows[0].sentence.startswith(
      'class 0: the attack recovers it, 0.85 against 0.07 ' 'without the classifier'
  )
  assert rows[0].leak_ci == pytest.approx(verdict.difference_interval(850, 1000, 70, 1000))
  assert 'no leak through the classifier' in rows[2].sentence
  mean = verdict.overall(rows, attack, 1000, control, 1000)
  assert mean.attack == pytest.approx(np.mean(attack) / 1000)
  assert mean.control == pytest.approx(np.mean(control) / 1000)
  text = verdict.summary_sentence(rows, mean, "f'[vgg]", 0.99)
  assert text.startswith(
      'The classifier leaks: the attack recovers 1 and partly 1 of 4 ' 'target classes'
  )
  assert "f'[vgg], test accuracy 0.990" in text
  assert 'less accurate than f' not in text
  assert verdict.summary_sentence(rows, mean, "f'[vgg]", 0.99, f_accuracy=0.99) == text
  # A judge weaker than f says so in the verdict itself: its figure is likely low.
  weak = verdict.summary_sentence(rows, mean, "f'[vgg]", 0.925, f_accuracy=0.975)
  assert weak.startswith(text.replace('0.990', '0.925'))
  assert weak.endswith(
      ' This judge is less accurate than f (0.925 < 0.975), so the leak is likely larger: '
      'train the evaluators longer or wider (config.evaluator).'
  )


def test_no_leak_and_no_control_sentences():
  rows = verdict.leak_table(['a', 'b'], [10, 12], 100, [9, 14], 100, label='person')
  mean = verdict.overall(rows, [10, 12], 100, [9, 14], 100)
  assert verdict.summary_sentence(rows, mean, 'e', None, 'person').startswith(
      'No leak shown: the attack recovers none of the 2 target people'
  )
  # No target alone is significant but the pooled leak is: the verdict must not say "no leak".
  rows = verdict.leak_table(['a', 'b'], [10, 10], 100, [4, 4], 100, label='person')
  assert [r.status for r in rows] == ['not recovered'] * 2
  mean = verdict.overall(rows, [10, 10], 100, [4, 4], 100)
  lo, hi = verdict.difference_interval(20, 200, 8, 200)
  assert mean.leak_ci == pytest.approx((lo, hi)) and lo > 0
  assert verdict.summary_sentence(rows, mean, 'e', None, 'person') == (
      'The classifier leaks a little: no target alone shows it, but pooled over all the samples'
      ' they read as their target more often than without the classifier, for the 2 target'
      f' people (judged by e): mean 0.10 against 0.04 without the classifier, leak +0.06 (95% CI'
      f' {lo:+.2f} to {hi:+.2f}).'
  )
  # "No leak shown" by a judge weaker than f is the verdict most likely wrong.
  assert 'less accurate than f' in verdict.summary_sentence(
      rows, mean, 'e', 0.5, 'person', f_accuracy=0.9
  )
  rows = verdict.leak_table(['a'], [90], 100)
  assert rows[0].control is None and rows[0].status == 'recovered'
  assert 'no control run' in rows[0].sentence
  mean = verdict.overall(rows, [90], 100)
  assert verdict.summary_sentence(rows, mean, 'e', 0.5, f_accuracy=0.9).endswith(
      '(0.500 < 0.900), so the leak is likely larger: train the evaluators longer or wider '
      '(config.evaluator).'
  )


def _probs(labels, d):
  """(T, n) labels -> one-hot (T, n, d) probabilities."""
  return np.eye(d)[np.asarray(labels)]


def test_judge_from_fixed_arrays():
  # Two targets (classes 0 and 2 of 3), 4 samples each.
  attack_a = _probs([[0, 0, 0, 1], [2, 2, 1, 1]], 3)
  attack_b = _probs([[0, 0, 1, 1], [2, 2, 2, 1]], 3)
  control = _probs([[1, 1, 1, 0], [1, 1, 1, 1]], 3)
  out = audit.judge(
      ['zero', 'two'],
      [0, 2],
      {'a': attack_a, 'b': attack_b},
      {'a': control, 'b': control},
      {'a': 0.9, 'b': 0.95},
      0.93,
      'b',
      real_shares={'a': [1.0, 0.25], 'b': [0.5, None]},
  )
  a, b = out['evaluators']['a'], out['evaluators']['b']
  # Each evaluator's real shares stand beside its own rows.
  assert a['real'] == {'zero': 1.0, 'two': 0.25} and a['mean']['real'] == 0.625
  assert b['real'] == {'zero': 0.5, 'two': None} and b['mean']['real'] == 0.5
  assert 'Real test images of these targets score 0.50' in out['verdict']
  assert a['attack'] == {'zero': 0.75, 'two': 0.5}
  assert b['attack'] == {'zero': 0.5, 'two': 0.75}
  assert a['control'] == {'zero': 0.25, 'two': 0.0}
  assert b['mean']['leak'] == pytest.approx(0.625 - 0.125)
  # a is less accurate than f: one warning line naming it.
  assert a['weaker_than_f'] and not b['weaker_than_f']
  assert len(out['warnings']) == 1 and out['warnings'][0].startswith(
      "f'[a]: the evaluator is weaker than the model it audits: its inception accuracy "
      'understates the leak'
  )
  assert out['headline'] == 'b' and out['verdict'] == b['sentence']
  # Agreement: 6 of the 8 attack samples get the same label from a and b.
  assert out['agreement_attack'] == {'a & b': 0.75}
  assert out['agreement_control'] == {'a & b': 1.0}
  # Diversity in the headline's features: 'two' collapsed (0.1), 'zero' did not (0.9).
  before = out['verdict']
  for row in out['evaluators']['b']['rows']:  # as if recovered (4 samples cannot show it)
    row['status'] = 'recovered'
  audit.add_diversity(
      out, {'zero': {'relative_coverage': 0.9, 'fid': 1.0}, 'two': {'relative_coverage': 0.1}}
  )
  assert out['diversity'] == {
      'evaluator': 'b',
      'relative_coverage': {'zero': 0.9, 'two': 0.1},
      'threshold': 0.5,
      'narrow': ['two'],
  }
  assert out['verdict'] == (
      f'{before} The samples vary little: for 1 of 2 targets (two) they cover only 0.10 of'
      " what as many real test images cover of the private images (in f'[b]'s features), so"
      ' G draws nearly one image per target whatever z: the samples show what each target'
      ' looks like, not how it varies.'
  )
  # A target whose samples do not read as it (noise as D_aux) covers nothing of the private
  # images because G failed, not because it varies little: recorded, left out of the verdict.
  out['verdict'] = before
  out['evaluators']['b']['rows'][1]['status'] = 'not recovered'
  audit.add_diversity(
      out, {'zero': {'relative_coverage': 0.9, 'fid': 1.0}, 'two': {'relative_coverage': 0.0}}
  )
  assert out['diversity']['narrow'] == ['two'] and out['verdict'] == before
  out['evaluators']['b']['rows'][0]['status'] = 'partly recovered'
  audit.add_diversity(out, {'zero': {'relative_coverage': 0.2}, 'two': {'relative_coverage': 0.0}})
  assert out['verdict'].startswith(f'{before} The samples vary little: for every recovered target')
  assert 'cover only 0.20 of' in out['verdict']
  # Without the measure (too few real test images) the audit is left as it was.
  out.pop('diversity')
  audit.add_diversity(out, {'zero': {'fid': 1.0}})
  assert 'diversity' not in out


def _reads(share, n=400):
  """Two targets (classes 0 and 1 of 3), n samples each, a share of each read as it."""
  k = round(share * n)
  return _probs([[t] * k + [2] * (n - k) for t in (0, 1)], 3)


def test_verdict_names_another_judge_whose_leak_is_clearly_larger():
  # ORL seed 2's shape: the most accurate judge reads 0.12, another 0.40 of the same samples.
  control = {name: _reads(0.05) for name in ('head', 'close', 'high')}
  out = audit.judge(
      ['zero', 'one'],
      [0, 1],
      {'head': _reads(0.12), 'close': _reads(0.15), 'high': _reads(0.40)},
      control,
      {'head': 1.0, 'close': 0.975, 'high': 0.95},
      1.0,
      'head',
      label='person',
  )
  head = out['evaluators']['head']
  assert head['sentence'].startswith('The classifier leaks partly')
  assert out['headline'] == 'head' and out['verdict'].startswith(head['sentence'])
  # 'close' reads more too, but its interval overlaps the headline's: not named.
  lo, hi = verdict.difference_interval(320, 800, 40, 800)
  assert out['larger_leak'] == {
      'evaluator': 'high',
      'test_accuracy': 0.95,
      'mean': out['evaluators']['high']['mean'],
  }
  assert out['evaluators']['high']['mean']['leak_ci'] == pytest.approx([lo, hi])
  assert out['verdict'] == (
      f"{head['sentence']} Another judge reads more: f'[high] (test accuracy 0.950) gives the same"
      f' samples 0.40 against 0.05 without the classifier, leak +0.35 (95% CI {lo:+.2f} to'
      f" {hi:+.2f}), wholly above f'[head]'s interval. The independent judges disagree, so"
      ' decide by the larger leak.'
  )
  head_hi = head['mean']['leak_ci'][1]
  assert out['evaluators']['close']['mean']['leak_ci'][0] <= head_hi < lo
  # Without the far judge, or when the headline itself reads most, the verdict is its own.
  for judges, headline in ((('head', 'close'), 'head'), (('head', 'high'), 'high')):
    out = audit.judge(
        ['zero', 'one'],
        [0, 1],
        {n: _reads({'head': 0.12, 'close': 0.15, 'high': 0.4}[n]) for n in judges},
        {n: control[n] for n in judges},
        {n: 1.0 for n in judges},
        1.0,
        headline,
    )
    assert out['larger_leak'] is None
    assert out['verdict'] == out['evaluators'][headline]['sentence']
  # A headline that shows no leak says the "no" is its own when another judge shows one.
  out = audit.judge(
      ['zero', 'one'],
      [0, 1],
      {'head': _reads(0.06), 'high': _reads(0.40)},
      {n: control[n] for n in ('head', 'high')},
      {'head': 1.0, 'high': 0.95},
      1.0,
      'head',
      label='person',
  )
  assert out['evaluators']['head']['sentence'].startswith('No leak shown: the attack')
  assert out['verdict'].startswith(
      'No leak shown by this judge: the attack recovers none of the 2 target people (judged by'
      " f'[head], test accuracy 1.000)"
  )
  assert out['larger_leak']['evaluator'] == 'high' and 'Another judge reads more' in out['verdict']
  # Without a control there is no leak to compare.
  out = audit.judge(
      ['zero', 'one'], [0, 1], {'head': _reads(0.10), 'high': _reads(0.40)}, None, {}, None, 'head'
  )
  assert out['larger_leak'] is None


def test_diversity_sentence_only_when_samples_cover_less_than_half_as_much():
  assert verdict.diversity_sentence({'0': 0.9, '1': 0.5, '2': float('nan')}, 'e') == ''
  assert verdict.diversity_sentence({}, 'e') == ''
  # Every target with a measure is narrow; the mean is of the narrow ones (0.35),
  # above COLLAPSED_COVERAGE: they vary less, but G has not collapsed.
  line = verdict.diversity_sentence({'0': 0.4, '1': 0.3, '2': float('nan')}, "f'[vgg]")
  assert line == (
      'The samples vary little: for every target they cover only 0.35 of what as many real'
      " test images cover of the private images (in f'[vgg]'s features), so the samples show"
      ' what each target looks like more than how it varies.'
  )
  assert verdict.narrow_targets({'0': 0.49, '1': 0.5, '2': None}) == ['0']


def test_weaker_than_f_ignores_missing_accuracies():
  assert verdict.weaker_than_f(0.9, 0.95)
  assert not verdict.weaker_than_f(0.95, 0.95)
  assert not verdict.weaker_than_f(float('nan'), 0.95)
  assert not verdict.weaker_than_f(None, 0.95)


def test_real_images_scale_the_verdict_and_flag_targets_the_judge_cannot_read():
  names = ['a', 'l', 'o', 'x']
  attack, control = [900, 10, 0, 700], [30, 5, 0, 20]
  # The judge reads real a at 0.95, real l at 0.30 and real o at 0.00; x has no test images.
  rows = verdict.leak_table(names, attack, 1000, control, 1000, real_shares=[0.95, 0.3, 0.0, None])
  assert [r.real for r in rows] == [0.95, 0.3, 0.0, None]
  assert [verdict.unreadable(r) for r in rows] == [False, True, True, False]
  assert rows[0].sentence == (
      'class a: the attack recovers it, 0.90 against 0.03 without the classifier '
      '(leak +0.87, 95% CI +0.85 to +0.89)'
  )
  assert rows[2].sentence == (
      'class o: not recovered, 0.00 against 0.00 without the classifier (leak +0.00, 95% CI '
      '-0.00 to +0.00); the judge itself reads only 0.00 of real o images as o, so it cannot '
      'show this leak'
  )
  mean = verdict.overall(rows, attack, 1000, control, 1000)
  assert mean.real == pytest.approx((0.95 + 0.3 + 0.0) / 3)  # targets without images left out
  text = verdict.summary_sentence(rows, mean, "f'[vgg]", 0.99)
  # The samples (0.40) read as their target less often than real images (0.42).
  assert text.endswith(
      '(95% CI +0.37 to +0.40). Real test images of these targets score 0.42 by the same '
      'judge; fewer than half of the real l, o read as themselves, so those targets cannot '
      'show a leak through this judge.'
  )
  # Samples read at least as often as the real images: the leak is complete for this judge.
  rows = verdict.leak_table(['a'], [900], 1000, [30], 1000, real_shares=[0.8])
  mean = verdict.overall(rows, [900], 1000, [30], 1000)
  assert verdict.summary_sentence(rows, mean, 'e', None).endswith(
      ' Real test images of these targets score 0.80 by the same judge: the samples read as '
      'their target as often as the private images themselves.'
  )
  # It comes before the weak-judge caveat, and without real shares nothing is added.
  both = verdict.summary_sentence(rows, mean, 'e', 0.5, f_accuracy=0.9)
  assert both.index('Real test images') < both.index('This judge is less accurate')
  plain = verdict.leak_table(['a'], [900], 1000, [30], 1000)
  assert 'Real test' not in verdict.summary_sentence(
      plain, verdict.overall(plain, [900], 1000, [30], 1000), 'e', None
  )


def test_real_shares_from_fixed_arrays():
  labels = np.array([0, 0, 0, 0, 2, 2, 1])
  probs = _probs([0, 0, 1, 0, 2, 0, 1], 3)
  # Target 0: 3 of its 4 images read as 0; target 2: 1 of 2; target 3: no images.
  assert audit.real_shares(probs, labels, [0, 2, 3]) == [0.75, 0.5, None]


def test_headline_is_the_most_accurate_judge_and_ties_go_to_the_higher_reading():
  from c2g_jax import evaluators

  metas = [('resnet', {'test_accuracy': 0.925}), ('vgg', {'test_accuracy': 0.925})]
  # Equally accurate on the test set: the one reading more samples as their target speaks.
  assert evaluators.headline(metas, {'resnet': 0.20, 'vgg': 0.39}) == 'vgg'
  assert evaluators.headline(metas, {'resnet': 0.39, 'vgg': 0.20}) == 'resnet'
  assert evaluators.headline(metas) == 'resnet'  # no readings: the first listed
  # Accuracy comes first: a weaker judge never heads the verdict by reading more.
  metas[0] = ('resnet', {'test_accuracy': 0.95})
  assert evaluators.headline(metas, {'resnet': 0.20, 'vgg': 0.39}) == 'resnet'
  # Without test accuracies (no test images) the first listed.
  assert evaluators.headline([('a', {'test_accuracy': float('nan')}), ('b', {})], {'b': 1.0}) == 'a'
