"""Attacker-side recipes (config.attack.recipe) and the values a run used.

'strong', the default, is the strongest measured (docs/ablation.md; on the
default CPU run, mean inception accuracy by the headline evaluator without /
with selection: paper 0.700 / 0.864, views 0.864 / 0.953, max margin 0.950 /
0.967, both 1.000 / 1.000, all at the same control 0.098; lowercase: paper
0.480, strong 0.829): f scores 9 random warps of each G(z, y), the
expectation-over-transformation trick, so G cannot win f's vote with pixel
patterns a small shift destroys (9 views: the Monte-Carlo noise of the f term
over the transforms drops 3x); the similarity is f's logit margin, whose push
does not fade once f is confident; a quarter of each batch asks G for
onehot(c), what it is asked for after training, which the KDE prior seldom
draws for targets no auxiliary image resembles (lowercase at `medium`: 0.763 ->
0.833); and the final selection keeps the 1 in 4 draws f is surest of. 'faces'
is 'strong' with each of f's views blurred by up to 2 pixels and G's images made
grey where every auxiliary face is grey: on ORL at CPU size G otherwise wins f's
vote with colours and dotted textures the judges mostly do not read as the person
(over seven seed runs it lifted the headline judge at six, the weakest most: 0.11
-> 0.24 and 0.12 -> 0.33); on characters the blur costs 0.024 (their strokes are
2 pixels wide), so 'strong' stays the characters' recipe. 'paper' is the
paper's loss exactly. A recipe sets only the keys left at the paper's values, so
--config.attack.similarity_views=4 still wins over it. One-hot rows and grey
output change the GAN, so the control keeps them (train.control_config).

A recipe is a name whose meaning may change as better attacks are measured, so
every run records the values its recipe gave (`RECORD`, written into its
config.json by workdir.py): a run started under an older 'strong' is then not
resumed silently under a newer one. Runs stored before the record existed are
read with `BEFORE_RECORD`, the recipes as they were until then.

Plain Python (no JAX), so workdir.py can resolve a stored config cheaply.
"""

from typing import Mapping

# The paper's value of every key a recipe may set (attack.Hyper's defaults).
PAPER_VALUES = {
    'similarity_views': 1,
    'similarity': 'log_likelihood',
    'onehot_share': 0.0,
    'selection_pool': 1,
    'view_blur': 0.0,
    'grey_output': 'off',
}

_STRONG = {
    'similarity_views': 9,
    'similarity': 'max_margin',
    'onehot_share': 0.25,
    'selection_pool': 4,
}

RECIPES = {
    'paper': {},
    'strong': _STRONG,
    'faces': {**_STRONG, 'view_blur': 2.0, 'grey_output': 'auto'},
}

# The recipes of runs stored without RECORD (b0acefd to this record's commit):
# 'strong' had no one-hot rows until 70e816d; 'views' existed from 33eb1ad to
# 3ebe3b3. A run stored from 70e816d until the record reads as the older
# 'strong' and is refused with the flags that continue it (workdir.py).
BEFORE_RECORD = {
    'paper': {},
    'strong': {'similarity_views': 9, 'similarity': 'max_margin', 'selection_pool': 4},
    'views': {'similarity_views': 9, 'selection_pool': 4},
}

RECORD = 'recipe_values'  # config.json's attack.recipe_values: what the recipe gave


def resolve(attack_cfg: Mapping, recipes: Mapping = RECIPES) -> dict:
  """{key: value} for every key of PAPER_VALUES: the recipe's value where
  attack_cfg leaves the key at the paper's value (or lacks it), else cfg's.

  An unknown recipe sets nothing here; attack.Hyper.from_config refuses it.
  """
  table = recipes.get(attack_cfg.get('recipe', 'paper'), {})
  out = {}
  for key, paper in PAPER_VALUES.items():
    value = attack_cfg.get(key, paper)
    out[key] = table[key] if value == paper and key in table else value
  return out


def continue_flags(values: Mapping) -> str:
  """Flags that give `values` under today's code: recipe=paper and each key set
  explicitly (paper then sets nothing), for continuing a run as it ran."""
  flags = ['--config.attack.recipe=paper']
  flags += [f'--config.attack.{k}={v}' for k, v in values.items() if v != PAPER_VALUES.get(k)]
  return ' '.join(flags)
