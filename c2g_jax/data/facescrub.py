"""FaceScrub (Ng & Winkler, 2014) through TFDS, prepared without TensorFlow.

FaceScrub is distributed as two lists of web URLs with face boxes; many URLs are
dead, so every user's copy differs. The `Facescrub` builder reads the copy a user
already has (its `manual_dir`) in one of two layouts:

  folders  cropped faces, one sub-folder per person: `actors/faces/<Name>/*`,
           `actresses/faces/<Name>/*`, or a flat `<Name>/*` (`_` in a folder name
           reads as a space). When a `faces` folder exists, only folders under
           one are read (the official download script keeps the uncropped
           originals beside them, under `images`).
  lists    the official `facescrub_actors.txt` / `facescrub_actresses.txt` at the
           top of manual_dir, with the original images downloaded: each face is
           cropped by its official box after checking its sha256.

Faces are stored as 64x64 RGB PNGs (encoded here with Pillow: a tfds `Image` fed
bytes never calls TensorFlow) with the person's name. Unreadable, mismatching or
missing files are skipped and counted; the counts are printed and kept in the
dataset's metadata.

The paper's split (Section 5.3, Appendix D) is made afterwards, in numpy:
`choose_targets` picks f's people, `split_images` gives each its images.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import importlib.resources
import io
import os
import unicodedata
from typing import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds
from tensorflow_datasets.core import constants as tfds_constants

from c2g_jax.data import DataError

IMAGE_SIZE = 64
IMAGE_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 3)
LIST_FILES = {'actors': 'facescrub_actors.txt', 'actresses': 'facescrub_actresses.txt'}
LAYOUTS = ('auto', 'folders', 'lists')
TARGETS_FILE = 'facescrub_targets.txt'
# Where facescrub_download.py puts originals: <manual_dir>/originals/<group>/<face_id>.<ext>
ORIGINALS_DIR = 'originals'

_CHUNK = 2048

_CITATION = r"""
@inproceedings{ng2014facescrub,
  title     = {A data-driven approach to cleaning large face datasets},
  author    = {Ng, Hong-Wei and Winkler, Stefan},
  booktitle = {IEEE International Conference on Image Processing (ICIP)},
  pages     = {343--347},
  year      = {2014},
}
"""


def image_extensions() -> frozenset[str]:
  """File extensions Pillow can open, lower case with the dot."""
  Image.init()
  return frozenset(ext.lower() for ext in Image.registered_extensions())


def person_name(folder_name: str) -> str:
  """'Aaron_Eckhart' -> 'Aaron Eckhart': how folder names map to people."""
  return ' '.join(folder_name.replace('_', ' ').split())


def name_key(name: str) -> str:
  """Names compare without case, accents, punctuation, spaces and underscores:
  'Freddy_Rodriguez', 'freddy rodríguez' and 'Samuel L. Jackson' vs
  'Samuel L Jackson' match (NFKD, combining marks dropped, alphanumerics kept)."""
  decomposed = unicodedata.normalize('NFKD', name)
  return ''.join(
      ch for ch in decomposed if not unicodedata.combining(ch) and ch.isalnum()
  ).casefold()


def alternatives(entry: str) -> list[str]:
  """The names a list entry matches: 'Paper spelling = FaceScrub name' gives both."""
  return [person_name(part) for part in entry.split('=') if part.strip()]


def to_face(img: Image.Image, box=None) -> np.ndarray:
  """Crops (optionally) and resizes a Pillow image to a 64x64 RGB uint8 array."""
  img = img.convert('RGB')
  if box is not None:
    img = img.crop(box)
  # Pillow's resize filters antialias when shrinking.
  return np.asarray(img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC), np.uint8)


def encode_png(face: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(face).save(buf, format='PNG')
  return buf.getvalue()


# --- the official lists ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ListEntry:
  """One row of facescrub_actors.txt / facescrub_actresses.txt."""

  group: str  # 'actors' or 'actresses'
  name: str
  image_id: str
  face_id: str
  url: str
  bbox: tuple[int, int, int, int]  # x1, y1, x2, y2 in the original image
  sha256: str  # lower-case hex of the original file; '' if not given

  @property
  def key(self) -> str:
    return f'{self.group}/{self.face_id}'


def parse_list(lines: Iterable[str], group: str) -> tuple[list[ListEntry], int]:
  """Rows of an official list -> (entries, number of malformed rows).

  Tab-separated: name, image_id, face_id, url, bbox 'x1,y1,x2,y2', sha256 (the
  last may be missing). A header row starting with 'name' is skipped.
  """
  entries, bad = [], 0
  for line in lines:
    line = line.rstrip('\r\n')
    if not line.strip() or line.lower().startswith('name\t'):
      continue
    fields = line.split('\t')
    try:
      name, image_id, face_id, url, bbox = (f.strip() for f in fields[:5])
      box = tuple(int(round(float(v))) for v in bbox.split(','))
      if len(box) != 4 or not name or not face_id or not url:
        raise ValueError(line)
    except ValueError:
      bad += 1
      continue
    sha = fields[5].strip().lower() if len(fields) > 5 else ''
    entries.append(ListEntry(group, name, image_id, face_id, url, box, sha))
  return entries, bad


def read_lists(directory: str) -> tuple[list[ListEntry], int]:
  """All entries of the official lists found in `directory`, and the malformed count."""
  entries, bad = [], 0
  for group, filename in LIST_FILES.items():
    path = os.path.join(directory, filename)
    if os.path.isfile(path):
      with open(path, encoding='utf-8', errors='replace') as f:
        e, b = parse_list(f, group)
      entries += e
      bad += b
  return entries, bad


def sha256_of(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def _index_originals(root: str) -> dict[str, list[str]]:
  """File stem -> paths, for every image outside `faces` folders."""
  exts = image_extensions()
  index = collections.defaultdict(list)
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames if d != 'faces')
    for f in sorted(filenames):
      stem, ext = os.path.splitext(f)
      if ext.lower() in exts:
        index[stem].append(os.path.join(dirpath, f))
  return index


def find_original(entry: ListEntry, index: dict[str, list[str]]) -> str | None:
  """The downloaded original of a list entry, or None.

  Looks for `<face_id>.*` (this project's download helper, under
  originals/<group>/) and `<Name>_<face_id>.*` (the official download script).
  """
  stems = (
      entry.face_id,
      f"{entry.name.replace(' ', '_')}_{entry.face_id}",
      f'{entry.name}_{entry.face_id}',
  )
  paths = [p for s in stems for p in index.get(s, ())]
  if len(paths) > 1:  # a face_id may repeat across the two lists
    in_group = [p for p in paths if entry.group in p.split(os.sep)]
    paths = in_group or paths
  return paths[0] if paths else None


# --- scanning a copy ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Item:
  """One face to write: where it comes from and how to cut it."""

  person: str
  group: str
  path: str
  box: tuple[int, int, int, int] | None = None
  sha256: str = ''


def detect_layout(manual_dir: str, layout: str = 'auto') -> str:
  if layout not in LAYOUTS:
    raise DataError(f'data.layout={layout!r} is not known: use one of {LAYOUTS}')
  if layout != 'auto':
    return layout
  has_list = any(os.path.isfile(os.path.join(manual_dir, f)) for f in LIST_FILES.values())
  return 'lists' if has_list else 'folders'


def scan_folders(root: str) -> list[Item]:
  """Every image in a per-person folder (the name of the folder holding it)."""
  exts = image_extensions()
  walk = [(d, sorted(ds), sorted(fs)) for d, ds, fs in os.walk(root)]
  under_faces = any('faces' in ds for _, ds, _ in walk)
  items = []
  for dirpath, _, filenames in sorted(walk):
    rel = os.path.relpath(dirpath, root)
    parts = [] if rel == '.' else rel.split(os.sep)
    if not parts or (under_faces and 'faces' not in parts[:-1]):
      continue
    group = next((g for g in LIST_FILES if g in parts[:-1]), '')
    for f in filenames:
      if os.path.splitext(f)[1].lower() in exts:
        items.append(Item(person_name(parts[-1]), group, os.path.join(dirpath, f)))
  return items


def scan_lists(root: str, counts: collections.Counter) -> list[Item]:
  """The list entries whose original is on disk; the others are counted as missing."""
  entries, bad = read_lists(root)
  counts['malformed list rows'] += bad
  counts['list entries'] += len(entries)
  index = _index_originals(root)
  items = []
  for e in entries:
    path = find_original(e, index)
    if path is None:
      counts['skipped: not downloaded'] += 1
    else:
      items.append(Item(person_name(e.name), e.group, path, e.bbox, e.sha256))
  return items


def read_face(item: Item, counts: collections.Counter) -> np.ndarray | None:
  """The 64x64 face of one item, or None (counted under the reason)."""
  try:
    with open(item.path, 'rb') as f:
      data = f.read()
  except OSError:
    counts['skipped: unreadable'] += 1
    return None
  if item.sha256 and sha256_of(data) != item.sha256:
    counts['skipped: sha256 mismatch'] += 1
    return None
  try:
    with Image.open(io.BytesIO(data)) as img:
      img.load()
      if item.box is not None:
        x1, y1, x2, y2 = item.box
        if not (0 <= x1 < x2 <= img.width and 0 <= y1 < y2 <= img.height):
          counts['skipped: box outside image'] += 1
          return None
      return to_face(img, item.box)
  except (OSError, ValueError, Image.DecompressionBombError):
    counts['skipped: unreadable'] += 1
    return None


def format_counts(counts: dict, layout: str, root: str) -> str:
  lines = [
      f'FaceScrub copy at {root} (layout {layout}): '
      f"{counts.get('images', 0)} faces of {counts.get('people', 0)} people"
  ]
  for k in sorted(counts):
    if k not in ('images', 'people') and counts[k]:
      lines.append(f'  {k}: {counts[k]}')
  return '\n'.join(lines)


# --- the TFDS builder --------------------------------------------------------------


class Facescrub(tfds.core.GeneratorBasedBuilder):
  """FaceScrub faces at 64x64 RGB, with the person's name; one 'train' split."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name='folders', description='cropped faces, a folder per person'),
      tfds.core.BuilderConfig(name='lists', description='official lists + downloaded originals'),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  FaceScrub images are copyrighted web photos (non-commercial research only) and
  cannot be downloaded by TFDS. Put your copy in one folder and pass it as
  data.manual_dir (main.py --config.data.manual_dir=DIR), in either layout:

  1. cropped faces, one sub-folder per person, e.g.
       DIR/actors/faces/Aaron_Eckhart/*.jpg  and  DIR/actresses/faces/<Name>/*.jpg
     or simply DIR/<Name>/*.jpg (any format Pillow reads);
  2. the official lists facescrub_actors.txt and facescrub_actresses.txt
     (from http://vintage.winklerbros.net/facescrub.html) at the top of DIR,
     with the original images downloaded beside them, e.g. by
       python -m c2g_jax.data.facescrub_download --lists_dir=DIR --out=DIR
     (which writes DIR/originals/<actors|actresses>/<face_id>.<ext>); the
     official download script's DIR/<group>/images/<Name>/<Name>_<face_id>.*
     is read too. Faces are cut by the official box after a sha256 check.

  Many URLs are dead: the builder skips what it cannot read and prints counts.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            'FaceScrub: face images of 530 actors and actresses '
            '(whatever part of it the user holds), resized to 64x64 RGB.'
        ),
        features=tfds.features.FeaturesDict(
            {
                'image': tfds.features.Image(shape=IMAGE_SHAPE, encoding_format='png'),
                'person': tfds.features.Text(),
                'group': tfds.features.Text(),
                'source': tfds.features.Text(),
            }
        ),
        homepage='http://vintage.winklerbros.net/facescrub.html',
        citation=_CITATION,
        metadata=tfds.core.MetadataDict(),
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    root = os.fspath(dl_manager.manual_dir)
    counts = collections.Counter()
    if self.builder_config.name == 'lists':
      items = scan_lists(root, counts)
    else:
      items = scan_folders(root)
    if not items:
      what = (
          'no downloaded originals matching facescrub_actors.txt / ' 'facescrub_actresses.txt'
          if self.builder_config.name == 'lists'
          else 'no per-person folders of images'
      )
      raise DataError(f'{root} holds {what}: see Facescrub.MANUAL_DOWNLOAD_INSTRUCTIONS')
    return {'train': self._generate_examples(root, items, counts)}

  def _generate_examples(self, root, items, counts) -> Iterator:
    people = set()
    key = 0
    for item in items:
      face = read_face(item, counts)
      if face is None:
        continue
      people.add(item.person)
      yield key, {
          'image': encode_png(face),
          'person': item.person,
          'group': item.group,
          'source': os.path.relpath(item.path, root),
      }
      key += 1
    counts['images'], counts['people'] = key, len(people)
    if not key:
      raise DataError(
          f'{root}: none of the {len(items)} image files could be used '
          f'({dict(counts)}): see Facescrub.MANUAL_DOWNLOAD_INSTRUCTIONS'
      )
    self.info.metadata.update({'counts': dict(counts), 'manual_dir': os.path.abspath(root)})
    print(format_counts(counts, self.builder_config.name, root), flush=True)


# --- loading ------------------------------------------------------------------------


@dataclasses.dataclass
class FaceData:
  images: np.ndarray  # (N, 64, 64, 3) uint8
  persons: np.ndarray  # (N,) str, the person of each image
  counts: dict  # what preparation found and skipped


def load_facescrub(manual_dir: str, data_dir: str | None = None, layout: str = 'auto') -> FaceData:
  """Prepares (once per manual_dir) and reads the user's FaceScrub copy."""
  if not manual_dir:
    raise DataError(
        'data.manual_dir is empty: set --config.data.manual_dir to the folder '
        'holding your FaceScrub copy (cropped faces or the official lists)'
    )
  manual_dir = os.path.abspath(os.path.expanduser(manual_dir))
  if not os.path.isdir(manual_dir):
    raise DataError(
        f'data.manual_dir={manual_dir} is not a folder: point it at your '
        'FaceScrub copy (cropped faces or the official lists)'
    )
  if not os.listdir(manual_dir):
    raise DataError(
        f'data.manual_dir={manual_dir} is empty: put your FaceScrub copy there '
        '(cropped faces or the official lists)'
    )
  layout = detect_layout(manual_dir, layout)
  data_dir = os.path.abspath(
      os.path.expanduser(data_dir) if data_dir else tfds_constants.get_default_data_dir()
  )
  builder = Facescrub(config=layout, data_dir=data_dir, file_format='array_record')
  modes = tfds.download.GenerateMode
  mode = None if builder.is_prepared() else modes.REUSE_DATASET_IF_EXISTS
  if mode is None and builder.info.metadata.get('manual_dir') != manual_dir:
    # One prepared copy per data_dir and layout: another manual_dir replaces it.
    print(
        f'FaceScrub under {builder.data_dir} was prepared from '
        f"{builder.info.metadata.get('manual_dir')}; preparing again from {manual_dir}",
        flush=True,
    )
    mode = modes.REUSE_CACHE_IF_EXISTS
  if mode is not None:
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir, download_mode=mode)
    )
    builder = Facescrub(config=layout, data_dir=data_dir, file_format='array_record')
  else:
    print(format_counts(builder.info.metadata.get('counts', {}), layout, manual_dir), flush=True)
  source = builder.as_data_source()['train']
  n = len(source)
  images = np.empty((n, *IMAGE_SHAPE), np.uint8)
  persons = []
  for start in range(0, n, _CHUNK):
    records = source.__getitems__(list(range(start, min(start + _CHUNK, n))))
    images[start : start + len(records)] = np.stack([r['image'] for r in records])
    persons += [_text(r['person']) for r in records]
  return FaceData(
      images, np.array(persons, dtype=object), dict(builder.info.metadata.get('counts', {}))
  )


def _text(v) -> str:
  return v.decode('utf-8') if isinstance(v, bytes) else str(v)


# --- the split ----------------------------------------------------------------------


def read_names(path: str) -> list[str]:
  """Names one per line; blank lines, '#' comments and '!' (auxiliary) lines are ignored."""
  return read_target_file(path)[0]


def read_target_file(path: str) -> tuple[list[str], list[str]]:
  """(targets, auxiliary): a line 'Name' is a target, '!Name' a person who must stay
  auxiliary; blank lines and '#' comments are ignored. A line 'A = B' is one person
  spelled A or B (kept as 'A = B'; see `alternatives`)."""
  targets, auxiliary = [], []
  with open(path, encoding='utf-8') as f:
    for line in f:
      line = line.split('#', 1)[0].strip()
      if line.startswith('!'):
        auxiliary.append(person_name(line[1:].strip()))
      elif line:
        targets.append(' = '.join(alternatives(line)))
  return targets, auxiliary


def packaged_targets() -> tuple[list[str], list[str]]:
  """(targets, auxiliary) of c2g_jax/data/facescrub_targets.txt: the paper's 100
  target people (its Appendix D) and the two its Figure 4 shows as auxiliary."""
  resource = importlib.resources.files('c2g_jax.data') / TARGETS_FILE
  with importlib.resources.as_file(resource) as path:
    return read_target_file(str(path))


PAPER_NUM_TARGETS = 100  # Section 5.3: 100 target people, 430 auxiliary


def choose_targets(
    persons: Sequence[str],
    listed: Sequence[str],
    num_targets: int = 0,
    log=print,
    *,
    auxiliary: Sequence[str] = (),
    fill: bool = False,
    seed: int = 0,
) -> list[str]:
  """f's people, in order, as the copy spells them. The rule:

  - the listed people present in the copy (matched by `name_key`, either side of
    an 'A = B' entry), in list order, the first `num_targets` of them when
    num_targets > 0 (a smaller split for partial copies). One line reports how
    many of the list matched and names every one missing; missing is not fatal;
  - with `fill` (the packaged Appendix D list): when fewer than num_targets (the
    paper's 100 when 0) listed people are present, the rest are drawn from the
    other people of the copy by a fixed permutation (`seed`) of their sorted
    names, never from `auxiliary`, and a line says how many were drawn. A draw,
    not the people with most images: the paper's D_tr and D_aux have about the
    same number of images per person (136 and 139). A copy too small for the
    split stops with one line naming the largest num_targets it allows;
  - without `fill` (the user's own list): exactly the listed people present.
  Everyone else is auxiliary. At least 2 targets and 1 auxiliary person must remain.
  """
  counts = collections.Counter(persons)
  by_key = {name_key(p): p for p in counts}
  present, missing = [], []
  for entry in listed:
    found = next((by_key[name_key(n)] for n in alternatives(entry) if name_key(n) in by_key), None)
    if found is None:
      missing.append(alternatives(entry)[-1])  # the FaceScrub spelling
    elif found not in present:
      present.append(found)
  log(
      f'targets list: {len(listed) - len(missing)} of the {len(listed)} listed people are '
      f'in this copy' + (f'; missing ({len(missing)}): {", ".join(missing)}' if missing else '')
  )
  want = num_targets if num_targets > 0 else (PAPER_NUM_TARGETS if fill else len(present))
  chosen = present[:want]
  if fill and len(chosen) < want:
    keep_out = {name_key(n) for n in auxiliary} | {name_key(p) for p in chosen}
    pool = sorted(p for p in counts if name_key(p) not in keep_out)
    # At most everyone drawable, leaving at least one person for D_aux.
    most = min(len(chosen) + len(pool), len(counts) - 1)
    if want > most:
      asked = f'data.num_targets={num_targets}' if num_targets > 0 else "the paper's 100"
      raise DataError(
          f'this copy has {len(counts)} people, too few for {asked} target people '
          f'and an auxiliary set: set --config.data.num_targets to at most {most}'
      )
    order = np.random.default_rng(seed).permutation(len(pool))
    drawn = [pool[i] for i in order[: want - len(chosen)]]
    log(
        f'targets: {len(chosen)} of the listed people, {len(drawn)} drawn from the other '
        f'{len(pool)} people of this copy (seed {seed}) to make {want}; the split differs '
        "from the paper's by the drawn people"
    )
    chosen = chosen + drawn
  elif num_targets > len(present):
    log(f'num_targets={num_targets} but only {len(present)} listed people are present')
  if len(chosen) < 2:
    raise DataError(
        f'only {len(chosen)} target people are in this copy: f needs at least 2; '
        'check data.targets_file against the person names of your copy'
    )
  if len(chosen) >= len(counts):
    raise DataError(
        f'all {len(counts)} people of this copy are targets, none is left for '
        'D_aux: lower data.num_targets'
    )
  return list(chosen)


@dataclasses.dataclass
class FaceSplit:
  private_idx: np.ndarray  # rows of f's training images (D_tr)
  private_y: np.ndarray  # their class, an index into label_names
  test_idx: np.ndarray
  test_y: np.ndarray
  aux_idx: np.ndarray  # rows of every other person's images (D_aux)
  label_names: list


def split_images(
    persons: Sequence, label_names: Sequence, test_fraction: float = 0.1, seed: int = 0
) -> FaceSplit:
  """Mutually exclusive split: targets' images -> D_tr and test, the rest -> D_aux.

  Per target person, a fixed permutation (seed) puts round(n * test_fraction)
  images (at least 1 when n >= 2) into test and the rest into D_tr.
  """
  persons = np.asarray(persons, dtype=object)
  perm = np.random.default_rng(seed).permutation(len(persons))
  label_of = {p: i for i, p in enumerate(label_names)}
  private, test = [], []
  for i, p in enumerate(label_names):
    rows = perm[persons[perm] == p]
    n_test = 0 if len(rows) < 2 else max(1, int(round(len(rows) * test_fraction)))
    private += [(r, i) for r in rows[n_test:]]
    test += [(r, i) for r in rows[:n_test]]
  is_target = np.array([p in label_of for p in persons], bool)
  aux = np.flatnonzero(~is_target)
  as_arrays = lambda pairs: (
      np.array([r for r, _ in pairs], np.int64),
      np.array([y for _, y in pairs], np.int32),
  )
  (p_idx, p_y), (t_idx, t_y) = as_arrays(private), as_arrays(test)
  return FaceSplit(p_idx, p_y, t_idx, t_y, aux, list(label_names))
