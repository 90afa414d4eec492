"""FaceScrub through TFDS (both layouts), the paper's split, the download helper's
bookkeeping, and a tiny end-to-end face attack on the real ORL faces. Offline."""

import collections
import importlib.util
import json
import os

import numpy as np
from PIL import Image
import pytest

from c2g_jax.data import DataError
from c2g_jax.data import facescrub as fs
from c2g_jax.data import facescrub_download as dl
from c2g_jax.data import problems

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORL = os.path.join(REPO, '..', 'shared', 'data', 'orl_faces', 'orl_faces_112x92.npz')

RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 160, 0), (255, 255, 255)


def load_config(name, arg):
  spec = importlib.util.spec_from_file_location(f'cfg_{name}', os.path.join(REPO, 'configs', name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def solid(path, color, size=(50, 60)):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.new('RGB', size, color).save(path)


# Five people, each its own colour and image count (most images: Carol).
PEOPLE = {
    'Alice_Adams': ((200, 30, 30), 3),
    'Bob_Brown': ((30, 200, 30), 4),
    'Carol_Cruz': ((30, 30, 200), 6),
    'Dan_Dunn': ((200, 200, 30), 2),
    'Eve_Evans': ((30, 200, 200), 5),
}


@pytest.fixture(scope='module')
def cropped_copy(tmp_path_factory):
  """actors/faces/<Name>/*.jpg + actresses/faces/..., with traps the builder must skip."""
  root = tmp_path_factory.mktemp('facescrub_cropped')
  for i, (name, (color, n)) in enumerate(PEOPLE.items()):
    group = 'actors' if i % 2 == 0 else 'actresses'
    for j in range(n):
      solid(str(root / group / 'faces' / name / f'{name}_{j}.jpg'), color, (40 + j, 55))
    # Uncropped originals beside the faces: not faces, must not be read.
    solid(str(root / group / 'images' / name / f'{name}_orig.jpg'), (0, 0, 0))
  (root / 'actors' / 'faces' / 'Alice_Adams' / 'broken.jpg').write_bytes(b'not a jpeg')
  (root / 'actors' / 'faces' / 'Alice_Adams' / 'notes.txt').write_text('ignored')
  return root


@pytest.fixture(scope='module')
def cropped(cropped_copy, tmp_path_factory):
  return fs.load_facescrub(str(cropped_copy), str(tmp_path_factory.mktemp('tfds')))


def test_builder_reads_cropped_folders(cropped):
  assert cropped.images.shape == (sum(n for _, n in PEOPLE.values()), 64, 64, 3)
  assert cropped.images.dtype == np.uint8
  assert cropped.counts == {'images': 20, 'people': 5, 'skipped: unreadable': 1}
  counts = collections.Counter(cropped.persons)
  assert counts == {name.replace('_', ' '): n for name, (_, n) in PEOPLE.items()}
  for name, (color, _) in PEOPLE.items():
    faces = cropped.images[cropped.persons == name.replace('_', ' ')]
    np.testing.assert_allclose(faces.reshape(-1, 3).mean(0), color, atol=4)


def test_flat_layout_and_reprepare_for_another_copy(cropped_copy, tmp_path):
  flat = tmp_path / 'flat'
  solid(str(flat / 'Zed_Zane' / 'a.png'), RED)
  solid(str(flat / 'Zed_Zane' / 'b.bmp'), RED)
  solid(str(flat / 'Yan_Yu' / 'c.gif'), BLUE)
  data_dir = str(tmp_path / 'tfds')
  data = fs.load_facescrub(str(flat), data_dir)
  assert sorted(collections.Counter(data.persons).items()) == [('Yan Yu', 1), ('Zed Zane', 2)]
  np.testing.assert_array_equal(data.images[data.persons == 'Zed Zane'][0, 0, 0], RED)
  # The same data_dir asked for another copy is prepared again, not reused.
  again = fs.load_facescrub(str(cropped_copy), data_dir)
  assert again.counts['people'] == 5


def test_missing_or_empty_manual_dir_is_one_line_error(tmp_path):
  for bad in ('', str(tmp_path / 'nope')):
    with pytest.raises(DataError, match='manual_dir') as e:
      fs.load_facescrub(bad, str(tmp_path / 'tfds'))
    assert '\n' not in str(e.value)
  (tmp_path / 'empty').mkdir()
  with pytest.raises(DataError, match='is empty'):
    fs.load_facescrub(str(tmp_path / 'empty'), str(tmp_path / 'tfds'))
  (tmp_path / 'empty' / 'README').write_text('no faces here')
  with pytest.raises(DataError, match='no per-person folders') as e:
    fs.load_facescrub(str(tmp_path / 'empty'), str(tmp_path / 'tfds'))
  assert '\n' not in str(e.value)


# --- the official lists -----------------------------------------------------------


def two_colour(path, size, box, inside, outside):
  """An original whose face box is `inside` and everything else `outside`."""
  img = Image.new('RGB', size, outside)
  img.paste(Image.new('RGB', (box[2] - box[0], box[3] - box[1]), inside), box[:2])
  os.makedirs(os.path.dirname(path), exist_ok=True)
  img.save(path)
  with open(path, 'rb') as f:
    return fs.sha256_of(f.read())


def split_left_right(path, size, x_split, left, right):
  img = Image.new('RGB', size, right)
  img.paste(Image.new('RGB', (x_split, size[1]), left), (0, 0))
  img.save(path)
  with open(path, 'rb') as f:
    return fs.sha256_of(f.read())


@pytest.fixture(scope='module')
def official_copy(tmp_path_factory):
  root = tmp_path_factory.mktemp('facescrub_lists')
  orig = root / 'originals' / 'actors'
  orig.mkdir(parents=True)
  rows = ['name\timage_id\tface_id\turl\tbbox\tsha256']
  # 1: face box red inside blue; sha256 right.
  sha = two_colour(str(orig / '1.png'), (100, 80), (10, 20, 50, 60), RED, BLUE)
  rows.append(f'Ann Actor\t11\t1\thttp://x/1.png\t10,20,50,60\t{sha}')
  # 2: box straddles a green|white edge at x=30: left of the face green, right white.
  sha2 = split_left_right(str(orig / '2.png'), (90, 90), 30, GREEN, WHITE)
  rows.append(f'Ann Actor\t12\t2\thttp://x/2.png\t10,10,50,50\t{sha2.upper()}')
  # 3: right file, wrong sha256 -> skipped.
  two_colour(str(orig / '3.png'), (60, 60), (0, 0, 30, 30), RED, BLUE)
  rows.append(f'Ann Actor\t13\t3\thttp://x/3.png\t0,0,30,30\t{"0" * 64}')
  # 4: no sha256 column -> accepted unchecked.
  two_colour(str(orig / '4.png'), (60, 60), (5, 5, 45, 45), BLUE, RED)
  rows.append('Bo Actor\t14\t4\thttp://x/4.png\t5,5,45,45')
  # 5: never downloaded.
  rows.append(f'Bo Actor\t15\t5\thttp://x/5.png\t0,0,10,10\t{"1" * 64}')
  # 6: garbage bytes, sha256 of the garbage -> unreadable.
  (orig / '6.jpg').write_bytes(b'garbage')
  rows.append(f'Bo Actor\t16\t6\thttp://x/6.jpg\t0,0,10,10\t{fs.sha256_of(b"garbage")}')
  # 7: box outside the image.
  two_colour(str(orig / '7.png'), (20, 20), (0, 0, 10, 10), RED, BLUE)
  rows.append('Bo Actor\t17\t7\thttp://x/7.png\t0,0,30,30\t')
  rows.append('a malformed row')
  (root / 'facescrub_actors.txt').write_text('\n'.join(rows) + '\n')
  # The official download script's layout: <group>/images/<Name>/<Name>_<face_id>.*
  d = root / 'actresses' / 'images' / 'Cy_Actress'
  sha8 = two_colour(str(d / 'Cy_Actress_8.jpeg'), (64, 64), (0, 0, 64, 64), GREEN, GREEN)
  (root / 'facescrub_actresses.txt').write_text(
      f'name\timage_id\tface_id\turl\tbbox\tsha256\n'
      f'Cy Actress\t18\t8\thttp://x/8.jpeg\t0,0,64,64\t{sha8}\n'
  )
  return root


def test_parse_list_skips_header_and_counts_malformed():
  entries, bad = fs.parse_list(
      [
          'name\timage_id\tface_id\turl\tbbox\tsha256',
          'A B\t1\t2\thttp://u/a.jpg\t1,2,3.6,4\tABC',
          '',
          'A B\t1\tx\thttp://u\tnot,a,box',
          'too\tfew',
      ],
      'actors',
  )
  assert bad == 2
  assert entries == [fs.ListEntry('actors', 'A B', '1', '2', 'http://u/a.jpg', (1, 2, 4, 4), 'abc')]
  assert entries[0].key == 'actors/2'


def test_builder_crops_official_boxes_and_checks_sha256(official_copy, tmp_path):
  data = fs.load_facescrub(str(official_copy), str(tmp_path / 'tfds'))
  assert data.counts == {
      'images': 4,
      'people': 3,
      'list entries': 8,
      'malformed list rows': 1,
      'skipped: not downloaded': 1,
      'skipped: sha256 mismatch': 1,
      'skipped: unreadable': 1,
      'skipped: box outside image': 1,
  }
  assert list(data.persons) == ['Ann Actor', 'Ann Actor', 'Bo Actor', 'Cy Actress']
  # Cropping by the box leaves only the inside colour.
  assert np.all(data.images[0] == RED)
  assert np.all(data.images[2] == BLUE)
  # Box x 10..50 over an edge at x=30: the left half of the face is green.
  assert np.all(data.images[1][:, :28] == GREEN) and np.all(data.images[1][:, 36:] == WHITE)
  np.testing.assert_allclose(data.images[3].reshape(-1, 3).mean(0), GREEN, atol=3)


# --- the split --------------------------------------------------------------------


def test_choose_targets_with_list_reports_missing_and_takes_first_n():
  persons = ['A'] * 5 + ['B'] * 3 + ['C'] * 9 + ['D'] * 2
  log = []
  # Names match ignoring case and underscores; absent ones are reported in one line.
  assert fs.choose_targets(persons, ['b', 'Zed', 'C', 'a'], 0, log.append) == ['B', 'C', 'A']
  assert log[0] == 'targets list: 3 of the 4 listed people are in this copy; missing (1): Zed'
  assert fs.choose_targets(persons, ['B', 'Zed', 'C', 'A'], 2, log.append) == ['B', 'C']
  with pytest.raises(DataError, match='at least 2'):
    fs.choose_targets(persons, ['A', 'Zed'], 0, log.append)
  with pytest.raises(DataError, match='none is left for D_aux'):
    fs.choose_targets(persons, ['A', 'B', 'C', 'D'], 0, log.append)


def test_choose_targets_fills_from_a_fixed_draw_never_taking_auxiliary():
  persons = [f'P{i:02d}' for i in range(20) for _ in range(3)] + ['Star'] * 2
  log = []
  first = fs.choose_targets(
      persons, ['star', 'Absent One'], 6, log.append, auxiliary=['P03', 'p04'], fill=True, seed=0
  )
  assert first[0] == 'Star' and len(first) == 6 and len(set(first)) == 6
  assert 'P03' not in first and 'P04' not in first
  assert any('1 of the listed people, 5 drawn from the other 18' in line for line in log)
  # The same copy, listed in another order, gives the same split; another seed another.
  shuffled = list(reversed(persons))
  assert (
      fs.choose_targets(
          shuffled, ['Star'], 6, log.append, auxiliary=['P03', 'P04'], fill=True, seed=0
      )
      == first
  )
  assert (
      fs.choose_targets(
          persons, ['Star'], 6, log.append, auxiliary=['P03', 'P04'], fill=True, seed=1
      )
      != first
  )
  # Without num_targets the draw fills to the paper's 100: too many for 21 people, and
  # the error names the largest split this copy allows (one person stays auxiliary).
  with pytest.raises(DataError, match="21 people, too few for the paper's 100 .* at most 20$"):
    fs.choose_targets(persons, ['Star'], 0, log.append, fill=True)
  # The two named auxiliary people stay in D_aux: 19 of the other 19 can be targets.
  with pytest.raises(DataError, match='num_targets=20 .* at most 19$'):
    fs.choose_targets(persons, ['Star'], 20, log.append, auxiliary=['P03', 'P04'], fill=True)
  assert (
      len(fs.choose_targets(persons, ['Star'], 19, log.append, auxiliary=['P03', 'P04'], fill=True))
      == 19
  )
  # A user's own list is used as is: no draw.
  assert fs.choose_targets(persons, ['Star', 'P01'], 6, log.append) == ['Star', 'P01']


def test_split_images_is_mutually_exclusive_and_fixed():
  persons = np.array(['A'] * 10 + ['B'] * 1 + ['C'] * 7 + ['D'] * 4, object)
  s = fs.split_images(persons, ['A', 'B', 'C'], test_fraction=0.2, seed=3)
  assert s.label_names == ['A', 'B', 'C']
  # Per person: round(0.2 n), at least 1 when n >= 2; all of B's one image trains.
  assert collections.Counter(s.test_y.tolist()) == {0: 2, 2: 1}
  assert collections.Counter(s.private_y.tolist()) == {0: 8, 1: 1, 2: 6}
  np.testing.assert_array_equal(persons[s.private_idx], np.array(['A', 'B', 'C'])[s.private_y])
  np.testing.assert_array_equal(persons[s.test_idx], np.array(['A', 'B', 'C'])[s.test_y])
  assert set(persons[s.aux_idx]) == {'D'} and len(s.aux_idx) == 4
  everything = np.concatenate([s.private_idx, s.test_idx, s.aux_idx])
  assert sorted(everything) == list(range(len(persons)))
  again = fs.split_images(persons, ['A', 'B', 'C'], 0.2, seed=3)
  np.testing.assert_array_equal(again.test_idx, s.test_idx)


def test_targets_file_and_packaged_list(tmp_path):
  path = tmp_path / 'targets.txt'
  path.write_text('# comment\nBrad_Pitt\n\n  Keanu Reeves  # trailing comment\n')
  assert fs.read_names(str(path)) == ['Brad Pitt', 'Keanu Reeves']
  path.write_text('Brad Pitt\n!Aaron_Eckhart\n')
  assert fs.read_target_file(str(path)) == (['Brad Pitt'], ['Aaron Eckhart'])
  path.write_text('Robert Di_Niro = Robert De Niro\n')
  assert fs.read_target_file(str(path)) == (['Robert Di Niro = Robert De Niro'], [])
  targets, auxiliary = fs.packaged_targets()
  # Appendix D: 100 people, in the paper's order, Figure 4's people among them.
  assert len(targets) == 100 and len({fs.name_key(t) for t in targets}) == 100
  assert targets[:3] == ['Matt Damon', 'Jim Carrey', 'Tom Hanks'] and targets[-1] == 'Margaret Cho'
  assert {'Brad Pitt', 'Keanu Reeves', 'Nicolas Cage', 'Marg Helgenberger'} <= set(targets)
  assert 'Freddy Rodrguez = Freddy Rodríguez' in targets
  assert 'Robert Di Niro = Robert De Niro' in targets
  assert set(auxiliary) == {'Aaron Eckhart', 'Ben Kingsley'}
  assert not {fs.name_key(a) for a in auxiliary} & {fs.name_key(t) for t in targets}


def test_name_key_ignores_case_accents_punctuation_and_spaces():
  assert fs.name_key('Freddy Rodríguez') == fs.name_key('freddy_rodriguez') == 'freddyrodriguez'
  assert fs.name_key('Samuel L. Jackson') == fs.name_key('Samuel_L_Jackson')
  assert fs.name_key("Olivia d'Abo") == fs.name_key('OLIVIA DABO')
  assert fs.name_key('Adrianne León') != fs.name_key('Adrianne Len')  # hence the alias
  assert fs.alternatives('Adrianne Len = Adrianne León') == ['Adrianne Len', 'Adrianne León']


# Appendix D people as a user's copy may spell them (folder names), and others.
APPENDIX_D_IN_COPY = {
    'Brad_Pitt': 'Brad Pitt',
    'freddy_rodriguez': 'freddy rodriguez',
    'Robert De Niro': 'Robert De Niro',
    'Adrianne León': 'Adrianne León',
    'Samuel_L_Jackson': 'Samuel L Jackson',
    'TAMALA JONES': 'TAMALA JONES',
}
OTHERS_IN_COPY = ['Aaron_Eckhart', 'Ben_Kingsley', 'Zed_Zane', 'Yan_Yu', 'Xia_Xu']


@pytest.fixture(scope='module')
def appendix_d_copy(tmp_path_factory):
  root = tmp_path_factory.mktemp('appendix_d_copy')
  for i, folder in enumerate(list(APPENDIX_D_IN_COPY) + OTHERS_IN_COPY):
    for j in range(3):
      solid(str(root / folder / f'{j}.png'), (20 * i, 100, 10 * j))
  return root


def test_packaged_appendix_d_list_matches_a_copy_and_reports_missing(
    appendix_d_copy, tmp_path, capsys
):
  c = load_config('facescrub.py', 'tiny')
  c.data.manual_dir = str(appendix_d_copy)
  c.data.data_dir = str(tmp_path / 'tfds')
  c.data.num_targets = 0
  # The paper's 100 cannot be had from 11 people: one line with the largest split.
  with pytest.raises(DataError, match="11 people, too few for the paper's 100 .* at most 9$"):
    problems.load_problem(c)
  report = [l for l in capsys.readouterr().out.splitlines() if l.startswith('targets list:')]
  assert len(report) == 1
  assert report[0].startswith(
      'targets list: 6 of the 100 listed people are in this copy; '
      'missing (94): Matt Damon, Jim Carrey, Tom Hanks, Al Pacino, '
  )
  # Missing ones are named as FaceScrub spells them; the six found are not named.
  assert 'Freddy Rodríguez' not in report[0] and 'Robert De Niro' not in report[0]
  assert 'Marg Helgenberger' in report[0]
  # 8 targets: the six listed (in list order, as the copy spells them) and two drawn,
  # never the two people Figure 4 shows as auxiliary.
  c.data.num_targets = 8
  p = problems.load_problem(c)
  out = capsys.readouterr().out
  assert p.label_names[:6] == [
      'Brad Pitt',
      'freddy rodriguez',
      'Robert De Niro',
      'Samuel L Jackson',
      'Adrianne León',
      'TAMALA JONES',
  ]
  assert set(p.label_names[6:]) <= {'Zed Zane', 'Yan Yu', 'Xia Xu'}
  assert '6 of the listed people, 2 drawn from the other 3 people' in out
  assert len(p.aux_x) == 3 * 3


def test_facescrub_problem_from_config(cropped_copy, tmp_path):
  targets = tmp_path / 'mine.txt'
  targets.write_text('Eve Evans\nNobody Here\nBob_Brown\nCarol Cruz\n')
  c = load_config('facescrub.py', 'tiny')
  c.data.manual_dir = str(cropped_copy)
  c.data.data_dir = str(tmp_path / 'tfds')
  c.data.targets_file = str(targets)
  c.data.num_targets = 2
  c.data.test_fraction = 0.25
  c.targets = 'Bob Brown'
  p = problems.load_problem(c)
  assert p.dataset == 'facescrub' and p.label_names == ['Eve Evans', 'Bob Brown']
  assert p.target_ids == [1]
  assert len(p.private_x) + len(p.test_x) == 5 + 4 and len(p.test_x) == 2
  assert len(p.aux_x) == 3 + 6 + 2 and p.aux_x.shape[1:] == (64, 64, 3)
  paper = load_config('facescrub.py', None)
  assert (paper.attack.steps, paper.attack.gamma_increment, paper.attack.gamma_max) == (
      130_000,
      1e-4,
      10.0,
  )


# --- the download helper's bookkeeping (no network: fetch is a local function) --------


def test_download_is_resumable_and_skips_dead_links(tmp_path):
  payload = {f'http://h/{i}.png': f'image-{i}'.encode() for i in range(5)}
  entries = [
      fs.ListEntry(
          'actors',
          'P Q',
          str(i),
          str(i),
          f'http://h/{i}.png',
          (0, 0, 1, 1),
          fs.sha256_of(payload[f'http://h/{i}.png']),
      )
      for i in range(4)
  ]
  entries.append(
      fs.ListEntry('actresses', 'R S', '9', '4', 'http://h/4.png', (0, 0, 1, 1), '0' * 64)
  )  # the server now sends other bytes
  entries.append(fs.ListEntry('actresses', 'R S', '9', '5', 'http://h/dead.jpg', (0, 0, 1, 1), ''))
  calls = []

  def fetch(url, timeout):
    calls.append(url)
    if url not in payload:
      raise OSError('HTTP Error 404')
    return payload[url]

  out = str(tmp_path / 'copy')
  summary = dl.download_all(entries, out, fetch=fetch, workers=3, log=lambda _: None)
  assert summary == {
      'downloaded': 4,
      'failed: dead': 1,
      'failed: sha256 mismatch': 1,
      'already on disk': 0,
      'skipped: failed before': 0,
  }
  with open(os.path.join(out, 'originals', 'actors', '2.png'), 'rb') as f:
    assert f.read() == b'image-2'
  assert dl.downloaded_keys(out) == {'actors/0', 'actors/1', 'actors/2', 'actors/3'}
  assert dl.read_failed(out) == {'actresses/4': 'sha256 mismatch', 'actresses/5': 'dead: OSError'}
  # A second run fetches nothing; --retry_failed fetches only the failed ones.
  calls.clear()
  p = dl.plan(entries, out)
  assert (len(p.todo), p.already, p.failed_before) == (0, 4, 2)
  summary = dl.download_all(entries, out, fetch=fetch, log=lambda _: None)
  assert calls == [] and summary['already on disk'] == 4
  dl.download_all(entries, out, fetch=fetch, retry_failed=True, log=lambda _: None)
  assert sorted(calls) == ['http://h/4.png', 'http://h/dead.jpg']
  assert dl.extension_of('http://a/b/c.JPEG?x=1') == '.jpeg'
  assert dl.extension_of('http://a/b/photo.php') == '.jpg'


def test_downloaded_originals_feed_the_builder(tmp_path):
  lists = tmp_path / 'lists'
  lists.mkdir()
  src = tmp_path / 'web'
  sha = two_colour(str(src / 'a.png'), (50, 50), (10, 10, 40, 40), RED, BLUE)
  sha_b = two_colour(str(src / 'b.png'), (50, 50), (0, 0, 50, 50), BLUE, BLUE)
  (lists / 'facescrub_actors.txt').write_text(
      f'name\timage_id\tface_id\turl\tbbox\tsha256\nA A\t1\t7\thttp://w/a.png\t10,10,40,40\t{sha}\n'
      f'B B\t2\t8\thttp://w/b.png\t0,0,50,50\t{sha_b}\n'
  )
  out = tmp_path / 'copy'
  entries, _ = fs.read_lists(str(lists))
  dl.copy_lists(str(lists), str(out))
  fetch = lambda url, timeout: (src / os.path.basename(url)).read_bytes()
  dl.download_all(entries, str(out), fetch=fetch, log=lambda _: None)
  data = fs.load_facescrub(str(out), str(tmp_path / 'tfds'))
  assert list(data.persons) == ['A A', 'B B'] and np.all(data.images[0] == RED)


# --- ORL: a small real face set, end to end ------------------------------------------

needs_orl = pytest.mark.skipif(not os.path.isfile(ORL), reason='../shared/data/orl_faces absent')


@needs_orl
def test_orl_problem_is_mutually_exclusive():
  c = load_config('orl.py', 'tiny')
  p = problems.load_problem(c)
  assert p.dataset == 'facescrub' and p.label_names == [f's{i}' for i in range(1, 21)]
  assert (len(p.private_x), len(p.test_x), len(p.aux_x)) == (160, 40, 200)
  assert p.aux_x.shape[1:] == (64, 64, 3) and p.aux_x.dtype == np.uint8
  # Grey repeated to RGB.
  assert np.array_equal(p.aux_x[..., 0], p.aux_x[..., 2])
  assert collections.Counter(p.test_y.tolist()) == {i: 2 for i in range(20)}
  # D_aux holds exactly the faces of s21..s40: none equals a face of f's people.
  images, persons = problems.load_orl()
  aux_rows = {images[i].tobytes() for i in np.flatnonzero([int(q[1:]) > 20 for q in persons])}
  assert {x.tobytes() for x in p.aux_x} == aux_rows


@needs_orl
def test_orl_face_attack_end_to_end(tmp_path):
  from c2g_jax import train

  c = load_config('orl.py', 'tiny')
  workdir = str(tmp_path / 'run')
  # The publisher trains f on s1..s20 and releases it; the audit gets it as a
  # checkpoint, and (to keep this test short: one classifier compile) as f' too.
  released = str(tmp_path / 'released_f')
  train.publish(c.classifier, problems.load_problem(c), released, c.seed, 'f')
  c.classifier.checkpoint = c.evaluators = released
  c.attack.conv_impl = 'xla'  # compiles faster; the impls agree (test_networks)
  c.sample_every_steps = 1000  # only the final grid
  c.targets = 's3,s20'
  c.attack.recipe = 'faces'  # ORL's recipe at every other size
  results = train.train_and_evaluate(c, workdir)
  with open(os.path.join(workdir, 'results.json')) as f:
    saved = json.load(f)
  assert sorted(saved['inception_accuracy']) == ['s20', 's3']
  assert all(0.0 <= v <= 1.0 for v in saved['inception_accuracy'].values())
  assert saved['f_test_accuracy'] == saved['evaluator_test_accuracy']
  # Faces get the same audit: the control, the leak with intervals, verdicts per person.
  assert [r['name'] for r in saved['leak']['per_target']] == ['s3', 's20']
  assert saved['target_verdicts'][0].startswith('person s3: ')
  assert os.path.isfile(os.path.join(workdir, 'control', 'samples.png'))
  assert results['steps'] == c.attack.steps
  grid = Image.open(os.path.join(workdir, 'samples.png'))
  assert grid.mode == 'RGB' and grid.height == 3 * 64 * 2  # 2 targets + the prior row
  # The faces recipe on grey auxiliary faces: G's samples, and the control's, are grey.
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['attack']['recipe_values']['grey_output'] == 'auto'
  for folder in (workdir, os.path.join(workdir, 'control')):
    pixels = np.asarray(Image.open(os.path.join(folder, 'samples.png')).convert('RGB'))
    assert np.array_equal(pixels[..., 0], pixels[..., 1])
