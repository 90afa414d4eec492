"""How much of a private class leaked: the paper's measures and the field's.

Pure functions of arrays (class probabilities, feature vectors); no models here.

Paper ("Classifier-to-Generator Attack", ICLR 2018 submission):
  - inception accuracy: the share of samples of target t the evaluator f' labels t
    (acc@1 below; acc@5 counts t among f''s five most probable classes);
  - false recognition (Appendix B): for each target, the non-target classes whose
    real images f labels as the target with probability above 0.9.
Field (model inversion / generative evaluation today), in f' penultimate features:
  - KNN distance to the nearest private image of the target class;
  - FID (Heusel et al. 2017) and KID (Binkowski et al. 2018);
  - precision, recall, density, coverage (Naeem et al. 2020), k = 3;
  - relative coverage: the samples' coverage of the private class over that of
    as many real held-out images; near 0 when G draws one image per target
    whatever z (collapse), which the inception accuracy cannot see.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

# --- accuracy of the evaluator on generated images ------------------------------------


def accuracy_at_k(probs: np.ndarray, targets: Sequence[int], k: int = 1) -> np.ndarray:
  """Per target, the share of its samples whose k most probable classes include it.

  probs: (T, n, d) the evaluator's class probabilities for n samples of each of the
  T targets; targets: (T,) class indices. Returns (T,). k=1 is inception accuracy.
  """
  probs = np.asarray(probs)
  targets = np.asarray(targets)
  k = min(k, probs.shape[-1])
  p_target = np.take_along_axis(probs, targets[:, None, None], axis=-1)[..., 0]
  # The target's rank is the number of classes ahead of it; equal probabilities
  # are ordered by class index, as argmax and top_k order them.
  idx = np.arange(probs.shape[-1])
  ahead = (probs > p_target[..., None]) | (
      (probs == p_target[..., None]) & (idx < targets[:, None, None])
  )
  return np.mean(np.sum(ahead, axis=-1) < k, axis=1)


def accuracy_table(
    probs: np.ndarray, targets: Sequence[int], names: Sequence[str], ks: Sequence[int] = (1, 5)
) -> Dict[str, dict]:
  """{'acc@k': {'per_class': {name: acc}, 'mean': m, 'std': s}} for each k."""
  out = {}
  for k in ks:
    acc = accuracy_at_k(probs, targets, k)
    out[f'acc@{k}'] = {
        'per_class': dict(zip(names, map(float, acc))),
        'mean': float(np.mean(acc)),
        'std': float(np.std(acc)),
    }
  return out


# --- false recognition (Appendix B) -----------------------------------------------------


def false_recognition(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    targets: Sequence[int],
    target_names: Sequence[str],
    threshold: float = 0.9,
    top: int = 5,
) -> Dict[str, List[Tuple[str, float]]]:
  """For each target, the `top` non-target classes most often taken for it by f.

  probs: (N, d) f's probabilities on real images; labels: (N,) the images' true
  classes as indices into class_names (any label space: the images may come from
  classes f was never trained on). targets index f's outputs; a class is the
  target itself when its name equals the target's name. The rate of class c is
  the share of c's images with f(x)[t] > threshold. Only classes with a positive
  rate are listed, most frequent first (ties by name).
  """
  probs = np.asarray(probs)
  labels = np.asarray(labels)
  table = {}
  for t, t_name in zip(targets, target_names):
    hit = probs[:, t] > threshold
    rates = []
    for c, c_name in enumerate(class_names):
      members = labels == c
      if c_name == t_name or not members.any():
        continue
      rate = float(np.mean(hit[members]))
      if rate > 0:
        rates.append((c_name, rate))
    rates.sort(key=lambda r: (-r[1], r[0]))
    table[t_name] = rates[:top]
  return table


# --- distances in feature space -----------------------------------------------------------


@jax.jit
def _sq_dists(a: jax.Array, b: jax.Array) -> jax.Array:
  d = jnp.sum(a * a, -1)[:, None] + jnp.sum(b * b, -1)[None, :] - 2.0 * a @ b.T
  return jnp.maximum(d, 0.0)


@jax.jit
def _nearest(a: jax.Array, b: jax.Array) -> jax.Array:
  # The expansion above picks the neighbour; the distance is then recomputed from
  # the difference, so a query that is in the reference set gets exactly 0.
  j = jnp.argmin(_sq_dists(a, b), axis=1)
  return jnp.sqrt(jnp.sum(jnp.square(a - b[j]), -1))


def _centred(a, b):
  # Centring on b's mean keeps |a|^2 + |b|^2 - 2ab from cancelling catastrophically.
  a = np.asarray(a, np.float32)
  b = np.asarray(b, np.float32)
  mu = b.mean(0) if len(b) else 0.0
  return a - mu, jnp.asarray(b - mu)


def pairwise_distances(a: np.ndarray, b: np.ndarray, block: int = 2048) -> np.ndarray:
  """Euclidean distances (len(a), len(b)), computed in blocks of rows of a."""
  a, b = _centred(a, b)
  out = [
      np.sqrt(np.asarray(_sq_dists(jnp.asarray(a[i : i + block]), b)))
      for i in range(0, len(a), block)
  ]
  return np.concatenate(out) if out else np.zeros((0, b.shape[0]), np.float32)


def knn_distance(queries: np.ndarray, reference: np.ndarray, block: int = 2048) -> np.ndarray:
  """Distance from each query to its nearest reference point, (len(queries),)."""
  a, b = _centred(queries, reference)
  out = [np.asarray(_nearest(jnp.asarray(a[i : i + block]), b)) for i in range(0, len(a), block)]
  return np.concatenate(out) if out else np.zeros((0,), np.float32)


def _kth_neighbour_radius(x: np.ndarray, k: int) -> np.ndarray:
  """Distance from each point to its k-th nearest other point of the same set."""
  d = pairwise_distances(x, x)
  # Column 0 of the sorted row is the point itself (distance 0).
  return np.sort(d, axis=1)[:, k]


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 3) -> Dict[str, float]:
  """Precision, recall, density and coverage of Naeem et al. (2020).

  Each real point owns a ball whose radius is the distance to its k-th nearest
  real neighbour (fake points likewise, for recall).
    precision: share of fake points inside at least one real ball;
    recall:    share of real points inside at least one fake ball;
    density:   (1/kM) * number of (fake, real ball) pairs with the fake inside;
    coverage:  share of real points whose ball holds at least one fake point.
  """
  real = np.asarray(real, np.float64)
  fake = np.asarray(fake, np.float64)
  if len(real) <= k or len(fake) <= k:
    raise ValueError(
        f'prdc needs more than k={k} real and fake points, got '
        f'{len(real)} and {len(fake)}: generate or load more images'
    )
  r_real = _kth_neighbour_radius(real, k)
  r_fake = _kth_neighbour_radius(fake, k)
  d = pairwise_distances(real, fake).astype(np.float64)  # (N real, M fake)
  inside_real = d <= r_real[:, None]
  return {
      'precision': float(np.mean(inside_real.any(axis=0))),
      'recall': float(np.mean((d <= r_fake[None, :]).any(axis=1))),
      'density': float(np.sum(inside_real) / (k * fake.shape[0])),
      'coverage': float(np.mean(d.min(axis=1) < r_real)),
  }


def _evenly(x: np.ndarray, m: int) -> np.ndarray:
  """m rows of x at evenly spaced positions (all of x when it has m or fewer)."""
  if len(x) <= m:
    return x
  return x[np.linspace(0, len(x) - 1, m).round().astype(int)]


def coverage_against_real(
    private: np.ndarray, generated: np.ndarray, real: np.ndarray, k: int = 3
) -> Dict[str, float]:
  """How much of a private class the samples cover, against real images of it.

  Coverage grows with the number of points, so both sets are cut to the same
  size m (the smaller of the two, taken at evenly spaced positions):
    coverage_samples: coverage of the private points by m samples;
    coverage_real:    the same for m real held-out images of the class;
    relative_coverage: their ratio: 1 when the samples cover the private class
      as well as real images do; near 0 when G draws one image whatever z.
  """
  m = min(len(generated), len(real))
  cov_samples = prdc(private, _evenly(np.asarray(generated), m), k=k)['coverage']
  cov_real = prdc(private, _evenly(np.asarray(real), m), k=k)['coverage']
  return {
      'coverage_samples': cov_samples,
      'coverage_real': cov_real,
      'relative_coverage': cov_samples / cov_real if cov_real > 0 else float('nan'),
  }


# --- FID and KID -------------------------------------------------------------------------------


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
  w, v = np.linalg.eigh(c)
  return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def fid(x: np.ndarray, y: np.ndarray) -> float:
  """Frechet distance between Gaussians fitted to two feature sets.

  ||mu_x - mu_y||^2 + Tr(C_x + C_y - 2 (C_x C_y)^(1/2)). The trace of the matrix
  square root is taken as sum sqrt(eig(C_x^(1/2) C_y C_x^(1/2))), a symmetric
  PSD matrix with the same eigenvalues as C_x C_y, so it stays real and stable.
  With fewer samples than feature dimensions the covariances are singular and
  FID is biased upwards: compare values only at equal sample sizes.
  """
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  mu_x, mu_y = x.mean(0), y.mean(0)
  c_x = np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])
  c_y = np.cov(y, rowvar=False).reshape(y.shape[1], y.shape[1])
  s = _psd_sqrt(c_x)
  eig = np.linalg.eigvalsh(s @ c_y @ s)
  tr_sqrt = np.sum(np.sqrt(np.clip(eig, 0, None)))
  value = np.sum((mu_x - mu_y) ** 2) + np.trace(c_x) + np.trace(c_y) - 2.0 * tr_sqrt
  return float(max(value, 0.0))


def _poly_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  return (a @ b.T / a.shape[1] + 1.0) ** 3


def mmd2_paired(x: np.ndarray, y: np.ndarray) -> float:
  """The U-statistic MMD^2_u of Gretton et al. (2012, eq. 3) for equal-size sets.

  (1/(m(m-1))) sum_{i != j} k(x_i,x_j) + k(y_i,y_j) - k(x_i,y_j) - k(x_j,y_i),
  with KID's cubic polynomial kernel. Unbiased, and exactly 0 when x is y.
  """
  m = len(x)
  k_xx, k_yy, k_xy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
  off = lambda k: np.sum(k) - np.trace(k)
  return float((off(k_xx) + off(k_yy) - off(k_xy) - off(k_xy.T)) / (m * (m - 1)))


def kid(
    x: np.ndarray, y: np.ndarray, subset_size: int = 1000, num_subsets: int = 50, seed: int = 0
) -> Tuple[float, float]:
  """Kernel Inception Distance: (mean, std) of MMD^2_u over random equal subsets.

  Subsets of size min(len(x), len(y), subset_size) are drawn without replacement
  from each set; when that size is both sets' full size, the sets are compared
  once as given (so KID of a set with itself is exactly 0).
  """
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  m = min(len(x), len(y), subset_size)
  if m < 2:
    raise ValueError(f'kid needs at least 2 points per set, got {len(x)} and {len(y)}')
  if m == len(x) == len(y):
    return mmd2_paired(x, y), 0.0
  rng = np.random.default_rng(seed)
  vals = [
      mmd2_paired(x[rng.choice(len(x), m, replace=False)], y[rng.choice(len(y), m, replace=False)])
      for _ in range(num_subsets)
  ]
  return float(np.mean(vals)), float(np.std(vals))


# --- per-class summary in f' features -----------------------------------------------------------


def feature_metrics(
    generated: np.ndarray,
    private: np.ndarray,
    aux: Optional[np.ndarray] = None,
    k: int = 3,
    kid_subset_size: int = 1000,
) -> Dict[str, float]:
  """Every feature-space measure for one target class.

  generated: (n, F) features of G(z, onehot(t)); private: (m, F) of D_tr's class t;
  aux: (N, F) of the adversary's images. Besides FID/KID/PRDC it reports
    knn_generated: mean distance from a generated image to its nearest private one;
    knn_aux_closest: the same mean for the n auxiliary images closest to the
      private class (what copying the best auxiliary look-alikes would achieve);
    knn_generated_to_aux: mean distance from a generated image to its nearest
      auxiliary one (small = the generator may just reproduce D_aux).
  """
  out = {'fid': fid(generated, private)}
  out['kid'], out['kid_std'] = kid(generated, private, subset_size=kid_subset_size)
  out.update(prdc(private, generated, k=k))
  out['knn_generated'] = float(np.mean(knn_distance(generated, private)))
  if aux is not None and len(aux):
    to_private = np.sort(knn_distance(aux, private))
    out['knn_aux_closest'] = float(np.mean(to_private[: len(generated)]))
    out['knn_generated_to_aux'] = float(np.mean(knn_distance(generated, aux)))
  return out


def summarize(per_class: Dict[str, Dict[str, float]]) -> Dict[str, Dict[str, float]]:
  """Mean and std over classes of every measure in {class: {measure: value}}."""
  keys = sorted({k for v in per_class.values() for k in v})
  out = {}
  for key in keys:
    vals = np.array([v[key] for v in per_class.values() if key in v], np.float64)
    out[key] = {'mean': float(np.mean(vals)), 'std': float(np.std(vals))}
  return out
