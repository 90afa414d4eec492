"""Downloads the FaceScrub originals named in the official lists (for online users).

  python -m c2g_jax.data.facescrub_download --lists_dir=DIR --out=DIR [--workers=16]

Reads facescrub_actors.txt / facescrub_actresses.txt from --lists_dir (get them
from http://vintage.winklerbros.net/facescrub.html), fetches every URL in
parallel and writes DIR/originals/<actors|actresses>/<face_id>.<ext>, the layout
the `Facescrub` builder reads (the lists are copied into --out too, so
--config.data.manual_dir=DIR is all the attack needs).

Resumable: a file already on disk is not fetched again, and links that failed
(dead, timed out, or serving bytes whose sha256 differs from the list's) are
recorded in DIR/originals/failed.tsv and skipped on the next run unless
--retry_failed. Files are written under a temporary name and renamed, so an
interrupted run never leaves half an image. Ends with a summary.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import shutil
import sys
import threading
import urllib.parse
import urllib.request
from typing import Callable, Iterable

from c2g_jax.data import facescrub

FAILED_FILE = 'failed.tsv'
_USER_AGENT = 'Mozilla/5.0 (c2g_jax facescrub downloader)'


def originals_dir(out: str) -> str:
  return os.path.join(out, facescrub.ORIGINALS_DIR)


def extension_of(url: str) -> str:
  """The URL's image extension when Pillow knows it, else '.jpg' (Pillow reads by content)."""
  ext = os.path.splitext(urllib.parse.urlparse(url).path)[1].lower()
  return ext if ext in facescrub.image_extensions() else '.jpg'


def target_path(out: str, entry: facescrub.ListEntry) -> str:
  return os.path.join(originals_dir(out), entry.group, entry.face_id + extension_of(entry.url))


def downloaded_keys(out: str) -> set[str]:
  """'<group>/<face_id>' of every original already on disk (temporary files excluded)."""
  keys = set()
  for group in facescrub.LIST_FILES:
    d = os.path.join(originals_dir(out), group)
    if os.path.isdir(d):
      keys.update(
          f'{group}/{os.path.splitext(f)[0]}' for f in os.listdir(d) if not f.endswith('.part')
      )
  return keys


def read_failed(out: str) -> dict[str, str]:
  """key -> reason of the links that failed before (last reason wins)."""
  path = os.path.join(originals_dir(out), FAILED_FILE)
  failed = {}
  if os.path.isfile(path):
    with open(path, encoding='utf-8') as f:
      for line in f:
        key, _, reason = line.rstrip('\n').partition('\t')
        if key:
          failed[key] = reason
  return failed


@dataclasses.dataclass
class Plan:
  todo: list  # entries to fetch
  already: int  # on disk from an earlier run
  failed_before: int  # skipped: failed in an earlier run


def plan(entries: Iterable[facescrub.ListEntry], out: str, retry_failed: bool = False) -> Plan:
  done, failed = downloaded_keys(out), read_failed(out)
  todo, already, skipped, seen = [], 0, 0, set()
  for e in entries:
    if e.key in seen:
      continue
    seen.add(e.key)
    if e.key in done:
      already += 1
    elif e.key in failed and not retry_failed:
      skipped += 1
    else:
      todo.append(e)
  return Plan(todo, already, skipped)


def fetch_url(url: str, timeout: float) -> bytes:
  request = urllib.request.Request(url, headers={'User-Agent': _USER_AGENT})
  with urllib.request.urlopen(request, timeout=timeout) as response:
    return response.read()


def download_all(
    entries: Iterable[facescrub.ListEntry],
    out: str,
    *,
    fetch: Callable[[str, float], bytes] = fetch_url,
    workers: int = 16,
    timeout: float = 10.0,
    retry_failed: bool = False,
    log: Callable[[str], None] = print,
) -> collections.Counter:
  """Fetches what is not on disk yet; returns counts by outcome."""
  p = plan(entries, out, retry_failed)
  summary = collections.Counter(
      {'already on disk': p.already, 'skipped: failed before': p.failed_before}
  )
  for group in facescrub.LIST_FILES:
    os.makedirs(os.path.join(originals_dir(out), group), exist_ok=True)
  lock = threading.Lock()
  failed_log = open(os.path.join(originals_dir(out), FAILED_FILE), 'a', encoding='utf-8')

  def one(entry):
    try:
      data = fetch(entry.url, timeout)
    except Exception as e:  # dead links fail in many ways: HTTP, DNS, TLS, timeouts
      return entry, f'dead: {type(e).__name__}'
    if not data:
      return entry, 'dead: empty'
    if entry.sha256 and facescrub.sha256_of(data) != entry.sha256:
      return entry, 'sha256 mismatch'
    path = target_path(out, entry)
    with open(path + '.part', 'wb') as f:
      f.write(data)
    os.replace(path + '.part', path)
    return entry, ''

  try:
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
      for i, (entry, reason) in enumerate(pool.map(one, p.todo), 1):
        with lock:
          if reason:
            summary['failed: ' + reason.split(':')[0]] += 1
            failed_log.write(f'{entry.key}\t{reason}\n')
            failed_log.flush()
          else:
            summary['downloaded'] += 1
        if i % 1000 == 0:
          log(f'{i}/{len(p.todo)} fetched')
  finally:
    failed_log.close()
  return summary


def format_summary(summary: collections.Counter, total: int) -> str:
  lines = [f'{total} faces in the lists']
  lines += [f'  {k}: {v}' for k, v in sorted(summary.items()) if v]
  return '\n'.join(lines)


def copy_lists(lists_dir: str, out: str) -> None:
  """Puts the lists next to the originals, where the builder looks for them."""
  os.makedirs(out, exist_ok=True)
  for filename in facescrub.LIST_FILES.values():
    src, dst = os.path.join(lists_dir, filename), os.path.join(out, filename)
    if os.path.isfile(src) and os.path.abspath(src) != os.path.abspath(dst):
      shutil.copyfile(src, dst)


def main(argv=None) -> int:
  import argparse

  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument(
      '--lists_dir',
      required=True,
      help='folder holding facescrub_actors.txt / facescrub_actresses.txt',
  )
  parser.add_argument('--out', required=True, help='the manual_dir to fill')
  parser.add_argument('--workers', type=int, default=16)
  parser.add_argument('--timeout', type=float, default=10.0, help='seconds per URL')
  parser.add_argument('--retry_failed', action='store_true')
  args = parser.parse_args(argv)
  entries, bad = facescrub.read_lists(args.lists_dir)
  if not entries:
    print(
        f'no entries in {args.lists_dir}: it must hold facescrub_actors.txt and/or '
        'facescrub_actresses.txt',
        file=sys.stderr,
    )
    return 1
  os.makedirs(args.out, exist_ok=True)
  copy_lists(args.lists_dir, args.out)
  summary = download_all(
      entries, args.out, workers=args.workers, timeout=args.timeout, retry_failed=args.retry_failed
  )
  if bad:
    summary['malformed list rows'] = bad
  print(format_summary(summary, len({e.key for e in entries})))
  print(f'next: python main.py --config=configs/facescrub.py --config.data.manual_dir={args.out}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
