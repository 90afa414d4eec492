"""Judges trained and ranked class by class (config.evaluator.balance_classes).

On EMNIST's own mix a judge trained on its plain draw read real s as 5 and
understated the rare targets' leak; these tests check the balanced draw, the
balanced accuracy, the training switch and how judges are ranked.
"""

import jax
import numpy as np
import pytest

from c2g_jax import audit
from c2g_jax import classifier
from c2g_jax import evaluators
from c2g_jax import networks
from shared_helpers import printout_numbers


def test_balanced_draw_by_hand():
  labels = np.array([0, 0, 1, 1, 1, 1, 1, 1, 3, 3])  # class 2 absent
  p = classifier.balanced_draw(labels)
  # 1 / (classes present * count): 1 / (3 * 2) for 0 and 3, 1 / (3 * 6) for 1
  np.testing.assert_allclose(p, [1 / 6] * 2 + [1 / 18] * 6 + [1 / 6] * 2)
  assert p.sum() == pytest.approx(1.0)
  for c in (0, 1, 3):
    assert p[labels == c].sum() == pytest.approx(1 / 3)


def test_equal_counts_draw_as_before():
  assert classifier.balanced_draw(np.array([0, 1, 2, 0, 1, 2])) is None
  assert classifier.balanced_draw(np.array([2, 2, 5, 5])) is None  # absent classes
  assert classifier.equal_counts(np.array([3, 3, 1, 1]))
  assert not classifier.equal_counts(np.array([3, 3, 1]))


def _fixed_predictions(monkeypatch, predicted):
  def predict(module, variables, images_u8, value_range, batch_size=1000):
    return np.eye(4, dtype=np.float32)[np.asarray(predicted)]

  monkeypatch.setattr(classifier, 'predict', predict)


def test_balanced_accuracy_is_the_mean_of_per_class_accuracies(monkeypatch):
  labels = np.array([0] * 8 + [1] * 2)
  predicted = np.array([0] * 8 + [0, 1])  # every 0 right, half of the 1s
  _fixed_predictions(monkeypatch, predicted)
  x = np.zeros((10, 2, 2, 1), np.uint8)
  assert classifier.accuracy(None, None, x, labels, (0, 1)) == pytest.approx(0.9)
  assert classifier.balanced_accuracy(None, None, x, labels, (0, 1)) == pytest.approx(0.75)


def test_balanced_accuracy_on_equal_counts_is_the_plain_accuracy(monkeypatch):
  labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
  predicted = np.array([0, 0, 1, 1, 1, 1, 0, 2, 2])
  _fixed_predictions(monkeypatch, predicted)
  x = np.zeros((9, 2, 2, 1), np.uint8)
  plain = classifier.accuracy(None, None, x, labels, (0, 1))
  assert classifier.balanced_accuracy(None, None, x, labels, (0, 1)) == plain == 7 / 9


def _data(counts, seed=0):
  rng = np.random.default_rng(seed)
  y = np.repeat(np.arange(len(counts)), counts)
  x = rng.integers(0, 60, (len(y), 28, 28, 1), dtype=np.uint8)
  for c in range(len(counts)):  # each class a bright square in its own place
    x[y == c, 4 + 6 * c : 10 + 6 * c, 4:10] = 255
  return x, y


def _train(x, y, balance, log=lambda s: None):
  module = networks.build_classifier('classifier', int(y.max()) + 1, 'emnist', width=0.125)
  return classifier.train(
      module,
      x,
      y,
      (0.0, 1.0),
      epochs=2,
      batch_size=16,
      seed=0,
      log=log,
      validation_fraction=0.2,
      balance_classes=balance,
  )


def test_balancing_equal_classes_changes_nothing():
  x, y = _data([24, 24, 24])
  plain, balanced = _train(x, y, False), _train(x, y, True)
  for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(balanced)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_balancing_unequal_classes_trains_another_judge_and_says_how_it_chose():
  x, y = _data([60, 8])
  lines = []
  plain, balanced = _train(x, y, False), _train(x, y, True, lines.append)
  assert any(
      not np.array_equal(np.asarray(a), np.asarray(b))
      for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(balanced))
  )
  assert all('validation balanced accuracy' in l for l in lines if 'epoch' in l)


def test_judges_are_ranked_by_balanced_accuracy_and_fall_back_to_plain():
  common = {'test_accuracy': 0.912, 'balanced_test_accuracy': 0.755}
  rare = {'test_accuracy': 0.879, 'balanced_test_accuracy': 0.845}
  assert evaluators.headline([('common', common), ('rare', rare)]) == 'rare'
  assert evaluators.judging_accuracy(rare) == 0.845
  stored = {'test_accuracy': 0.9}  # metadata written before balanced accuracies
  assert evaluators.judging_accuracy(stored) == 0.9
  assert evaluators.headline([('stored', stored), ('rare', rare)]) == 'stored'


def test_the_verdict_names_the_accuracy_it_ranks_by():
  names, targets = ['s', 'o'], [0, 1]
  probs = np.zeros((2, 10, 2), np.float32)
  probs[0, :, 0] = probs[1, :, 1] = 1.0
  control = np.full((2, 10, 2), 0.5, np.float32)
  control[..., 0] += 0.1
  out = audit.judge(
      names,
      targets,
      {'vgg': probs},
      {'vgg': control},
      {'vgg': 0.845},
      0.75,
      'vgg',
      accuracy_name='balanced test accuracy',
  )
  assert "judged by f'[vgg], balanced test accuracy 0.845" in out['verdict']
  plain = audit.judge(names, targets, {'vgg': probs}, {'vgg': control}, {'vgg': 0.9}, 0.8, 'vgg')
  assert "judged by f'[vgg], test accuracy 0.900" in plain['verdict']


def _printed(f_balanced, judge_balanced, accuracy_name):
  from c2g_jax import report
  from c2g_jax.train import format_results

  names = ['s', 'o']
  probs = lambda labels: np.eye(2)[np.asarray(labels)]
  judged = audit.judge(
      names,
      [0, 1],
      {'vgg': probs([[0, 0, 0, 1], [1, 1, 1, 1]])},
      {'vgg': probs([[1, 1, 1, 1], [0, 0, 1, 1]])},
      {'vgg': judge_balanced},
      f_balanced,
      'vgg',
      accuracy_name=accuracy_name,
  )
  evaluated = {
      k: dict(
          v,
          validation_accuracy=None,
          architecture='vgg',
          test_accuracy=0.9,
          balanced_test_accuracy=judge_balanced,
      )
      for k, v in judged['evaluators'].items()
  }
  numbers = printout_numbers(names, [0.75, 1.0], [1.0, 1.0])
  results = {
      'setting': 's',
      'steps': 4,
      'f_test_accuracy': 0.95,
      'f_balanced_test_accuracy': f_balanced,
      'samples_per_target': 4,
      **report.summary(numbers, 'page', dict(judged, evaluators=evaluated)),
  }
  return format_results(results).splitlines()


def test_the_printout_shows_balanced_accuracies_where_they_differ():
  lines = _printed(0.75, 0.845, 'balanced test accuracy')
  assert any(
      l.startswith('f test accuracy 0.9500 (balanced 0.7500); evaluators (balanced test accuracy;')
      for l in lines
  )
  assert any(l.startswith("f'[vgg] 0.8450*") for l in lines)
  assert lines[-1].endswith('the most accurate evaluator on the test set (balanced)')
  # Equal class counts: balanced is plain, and the printout reads as it always did.
  lines = _printed(0.95, 0.9, 'test accuracy')
  assert any(l.startswith('f test accuracy 0.9500; evaluators (test accuracy;') for l in lines)
  assert any(l.startswith("f'[vgg] 0.9000*") for l in lines)
  assert lines[-1].endswith('the most accurate evaluator on the test set')


def test_auto_balances_where_the_targets_are_rarer_than_the_average_class():
  # Lowercase ME's shape: 4 digits of 500, 3 letters of 125; the letters are the targets.
  y = np.repeat(np.arange(7), [500, 500, 500, 500, 125, 125, 125])
  assert evaluators.balance_classes('auto', y, [4, 5, 6])  # 125 < 339
  assert not evaluators.balance_classes('auto', y, [0, 1, 2, 3])  # digits: 500 > 339
  assert evaluators.balance_classes('auto', y, [0, 4])  # a digit and a letter: 312.5 < 339
  equal = np.repeat(np.arange(4), 50)
  assert not evaluators.balance_classes('auto', equal, [0, 1])  # equal counts: never
  assert evaluators.balance_classes('on', y, [0, 1]) and evaluators.balance_classes(
      'on', equal, [0]
  )
  assert not evaluators.balance_classes('off', y, [4, 5, 6])
  with pytest.raises(Exception, match="balance_classes='yes' is not one of"):
    evaluators.balance_classes('yes', y, [4])


def test_a_bad_balance_mode_is_refused_in_one_line_naming_the_key():
  import ml_collections

  from c2g_jax import checks

  ok = ml_collections.ConfigDict({'evaluator': {'balance_classes': 'auto'}})
  checks.check_config(ok)
  bad = ml_collections.ConfigDict({'evaluator': {'balance_classes': 'yes'}})
  with pytest.raises(checks.ConfigError) as e:
    checks.check_config(bad)
  assert str(e.value).startswith("config.evaluator.balance_classes='yes' is not one of (")
  assert '\n' not in str(e.value)
