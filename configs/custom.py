"""Audit your own classifier with your own images (bring your own).

  python main.py --config=configs/custom.py:SIZE \
      --config.classifier.checkpoint=mypkg.model:released \
      --config.data.aux_dir=/path/to/public/images \
      --config.data.private_dir=/path/to/training/images \
      --config.targets=alice,bob

classifier.checkpoint: the classifier to audit, an Orbax checkpoint folder
written by c2g_jax.checkpoint.save_classifier, or 'package.module:function'
returning (apply_fn, params, metadata) (see c2g_jax/byo.py). Its input shape
picks the generator: (28, 28, 1) -> the EMNIST networks, (64, 64, 3) -> the
FaceScrub ones. data.aux_dir: any folder of images (recursive, any format
Pillow reads), converted to f's input shape. data.private_dir (optional): your
labelled images, a sub-folder per class named like f's classes; they train the
independent evaluators and measure test accuracies. Without it, give released
evaluators in config.evaluators (checkpoint folders or 'package.module:function',
comma-separated). targets: names or indices of f's classes; '' = all.
Everything is checked before training starts.
SIZE: paper (default; 20k steps), cpu, tiny.
"""

import ml_collections

from configs import default


def get_config(arg=None):
  size = default.check_size(arg or 'paper', arg)
  c = default.base_config()
  c.dataset = 'custom'
  c.setting = 'custom'
  c.targets = ''
  c.data = ml_collections.ConfigDict()
  c.data.aux_dir = ''
  c.data.private_dir = ''
  c.data.test_fraction = 0.1
  default.apply_size(c, size)
  return c
