"""A small real face experiment: the AT&T/ORL faces (40 people, 10 images each).

  python main.py --config=configs/orl.py:cpu --workdir=runs/orl

Mutually exclusive like the paper's FaceScrub run: f (and f') are trained on
people s1..s20 (8 images each, 2 held out for test), D_aux holds the other 20
people. Faces are resized from 112x92 grey to 64x64 and repeated to RGB, so the
FaceScrub networks are used. SIZE: cpu (default; minutes), tiny (tests), paper.
The attack runs the 'faces' recipe (recipes.py); --config.attack.recipe=strong or
=paper runs the others.
"""

from configs import facescrub


def get_config(arg=None):
  size = arg or 'cpu'
  c = facescrub.face_config('orl', size)
  c.data.orl_path = ''  # '' = ../shared/data/orl_faces/orl_faces_112x92.npz beside the repo
  c.data.num_targets = 20
  c.data.test_fraction = 0.2
  # 160 training images: small batches and more epochs than FaceScrub's 10.
  for m in (c.classifier, c.evaluator):
    m.batch_size = 32
    m.epochs = {'paper': 60, 'cpu': 40, 'tiny': 2}[size]
  if size != 'tiny':
    # 'strong' with blurred views and grey output: G cannot then win f's vote with
    # colour or fine textures (recipes.py; docs/ablation.md, "Blurred views").
    c.attack.recipe = 'faces'
  return c
