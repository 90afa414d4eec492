"""The attacker's surrogate of f: a second network trained on D_aux with f's labels.

At a large gamma G finds images that f labels as the target and no independent
network does (ORL's weak seeds: cyan textures f is sure of). A network of another
architecture that imitates f on the auxiliary images does not share all of f's
blind spots, so scoring G's images by both (attack.similarity and the final
selection) leaves G fewer ways to win by fooling f alone: the augmented-model
idea of Nguyen et al., "Re-thinking Model Inversion Attacks Against Deep Neural
Networks" (CVPR 2023). It uses f and D_aux only, never D_tr or the test set;
its test accuracy is measured for the report alone.
"""

import os

from absl import logging
import numpy as np

from c2g_jax import augment as augment_lib
from c2g_jax import checkpoint
from c2g_jax import classifier
from c2g_jax import networks

SURROGATE_DIR = 'surrogate'  # inside the attack's workdir
# Its seed is config.seed + SEED_OFFSET: apart from f (seed) and the evaluators
# (seed + 1 + i, and seed + 1000 k when trained again).
SEED_OFFSET = 500
# Epochs: enough passes that a small D_aux (ORL: 200 faces) still gets as many
# gradient steps as the evaluator's settings give a D_tr of this many images.
MIN_IMAGE_PASSES = 50_000


def labels(aux_probs: np.ndarray) -> np.ndarray:
  """f's label of each auxiliary image: what the surrogate learns to give."""
  return np.argmax(np.asarray(aux_probs), axis=-1).astype(np.int32)


def epochs_for(cfg_epochs: int, n_images: int) -> int:
  """The evaluator's epochs, raised so a small D_aux gets MIN_IMAGE_PASSES passes."""
  return max(int(cfg_epochs), -(-MIN_IMAGE_PASSES // max(int(n_images), 1)))


def train_or_load(config, problem, aux_probs: np.ndarray, directory: str):
  """(module, variables, metadata) of the surrogate in `directory`, trained there
  first (with config.evaluator's settings, on problem.aux_x labelled by f) when
  no finished checkpoint is there."""
  architecture = config.attack.surrogate
  if checkpoint.finished_step(directory) is not None:
    module, variables, meta = checkpoint.load_classifier(directory)
    if meta.get('architecture') != architecture:
      raise checkpoint.CheckpointError(
          f'{directory} holds a {meta.get("architecture")!r} surrogate, not the '
          f'{architecture!r} config.attack.surrogate asks for: move it aside or set '
          f'--config.attack.surrogate={meta.get("architecture")}'
      )
    logging.info('surrogate: loaded %s', directory)
    return module, variables, meta
  if os.path.isdir(directory):
    logging.warning('surrogate: %s holds no finished checkpoint: training it again', directory)
  cfg = config.evaluator
  value_range = networks.value_range(problem.dataset)
  module = networks.build_classifier(
      architecture, len(problem.label_names), problem.dataset, width=cfg.width
  )
  y = labels(aux_probs)
  epochs = epochs_for(cfg.epochs, len(problem.aux_x))
  seed = int(config.seed) + SEED_OFFSET
  variables = classifier.train(
      module,
      problem.aux_x,
      y,
      value_range,
      epochs=epochs,
      batch_size=cfg.batch_size,
      learning_rate=cfg.learning_rate,
      seed=seed,
      log=logging.info,
      name='surrogate',
      augment=augment_lib.preset(cfg.get('augment', 'none'), problem.dataset),
      cosine_schedule=cfg.get('cosine_schedule', False),
  )
  agreement = float(
      np.mean(np.argmax(classifier.predict(module, variables, problem.aux_x, value_range), -1) == y)
  )
  acc = (
      classifier.accuracy(module, variables, problem.test_x, problem.test_y, value_range)
      if len(problem.test_x)
      else float('nan')
  )
  meta = {
      **networks.release_metadata(architecture, cfg.width, problem.dataset, problem.label_names),
      # For the report only: the attack never reads the test set.
      'test_accuracy': acc,
      'agreement_with_f_on_aux': agreement,
      'train_images': int(len(problem.aux_x)),
      'epochs': epochs,
      'seed': seed,
  }
  checkpoint.save_classifier(directory, variables, meta)
  logging.info(
      'surrogate: %s on %d auxiliary images labelled by f (agrees with f on %.4f of them; '
      'test accuracy %.4f), saved to %s',
      architecture,
      len(problem.aux_x),
      agreement,
      acc,
      directory,
  )
  return checkpoint.load_classifier(directory)
