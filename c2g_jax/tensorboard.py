"""TensorBoard logging through tensorboardX (no TensorFlow needed).

`Tee` is what training uses: every metrics record also becomes TensorBoard
scalars, sample grids become images, and the run's final per-target table
becomes markdown text.
"""

import io
import time
from typing import Dict, Mapping, Optional

import numpy as np
from PIL import Image
import tensorboardX

# The training metrics a run logs, under TensorBoard tags grouped by section.
TRAIN_SCALARS = {
    'critic_loss': 'critic/loss',
    'wasserstein': 'critic/wasserstein',
    'gradient_penalty': 'critic/gradient_penalty',
    'generator_loss': 'generator/loss',
    'similarity': 'generator/similarity',
    'gamma': 'generator/gamma',
    'iterations_per_sec': 'speed/iterations_per_sec',
}


def _pixels(image) -> np.ndarray:
  """A uint8 (H, W, C) array from a PNG path, PNG bytes or a (H, W[, C]) array."""
  if isinstance(image, str):
    with open(image, 'rb') as f:
      image = f.read()
  if isinstance(image, (bytes, bytearray)):
    pil = Image.open(io.BytesIO(bytes(image)))
    image = np.asarray(pil.convert('RGBA' if 'A' in pil.mode else 'RGB'))
  arr = np.asarray(image, np.uint8)
  return arr[..., None] if arr.ndim == 2 else arr


class SummaryWriter:
  """Writes a new `events.out.tfevents.*` file under `logdir`.

  purge_step: a resumed run passes the first step it will write again; the
  events a killed run wrote at that step or later (past its last checkpoint)
  are then hidden from TensorBoard, so no step shows twice.
  """

  def __init__(self, logdir: str, purge_step: Optional[int] = None):
    # tensorboardX names files by the second and opens them 'wb': a writer opened
    # in the same second as another (the report's after training) would erase it.
    # A nanosecond suffix keeps names unique and in time order, which is the order
    # TensorBoard reads them (and applies purges) in. flush_secs: a live
    # TensorBoard sees progress within seconds, not minutes.
    self._writer = tensorboardX.SummaryWriter(
        logdir, purge_step=purge_step, flush_secs=10, filename_suffix=f'.{time.time_ns()}'
    )
    self._writer.flush()  # the purge marker is on disk even if this run dies early

  def scalars(
      self, step: int, values: Mapping[str, float], tags: Optional[Dict[str, str]] = None
  ) -> None:
    """Logs values {name: number}; names in `tags` (default TRAIN_SCALARS) are renamed."""
    tags = TRAIN_SCALARS if tags is None else tags
    for name, value in values.items():
      if np.ndim(value) == 0 and np.issubdtype(np.asarray(value).dtype, np.number):
        self._writer.add_scalar(tags.get(name, name), float(value), int(step))

  def image(self, tag: str, image, step: int) -> None:
    """Logs a PNG file path, PNG bytes, or a uint8 (H, W[, C]) array."""
    self._writer.add_image(tag, _pixels(image), int(step), dataformats='HWC')

  def text(self, tag: str, markdown: str, step: int) -> None:
    """Logs markdown (TensorBoard's Text tab renders tables)."""
    self._writer.add_text(tag, markdown, int(step))

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class Tee:
  """A metrics log (anything with write(record)/close()) that also feeds TensorBoard.

  Each record {step, name: value} becomes scalars at that step; `image` logs a
  sample grid, `text` markdown. resume_step: the step the run restored (0 for a
  fresh start); what an earlier run logged past it is purged.
  """

  def __init__(self, log, logdir: str, resume_step: int = 0):
    self._log = log
    self.writer = SummaryWriter(logdir, purge_step=int(resume_step) + 1)

  def write(self, record: dict) -> None:
    self._log.write(record)
    self.writer.scalars(record['step'], {k: v for k, v in record.items() if k != 'step'})

  def image(self, tag: str, image, step: int) -> None:
    self.writer.image(tag, image, step)

  def text(self, tag: str, markdown: str, step: int) -> None:
    self.writer.text(tag, markdown, step)

  def close(self) -> None:
    self._log.close()
    self.writer.close()
