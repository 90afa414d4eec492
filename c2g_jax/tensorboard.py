"""TensorBoard event files written without TensorFlow (or the tensorboard package).

An event file is a TFRecord stream of serialized `Event` protobufs:
  record = uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
(little endian). We encode the few protobuf fields TensorBoard reads by hand:
  Event   { double wall_time = 1; int64 step = 2; string file_version = 3;
            Summary summary = 5; }
  Summary { repeated Value value = 1; }
  Value   { string tag = 1; float simple_value = 2; Image image = 4; }
  Image   { int32 height = 1; int32 width = 2; int32 colorspace = 3;
            bytes encoded_image_string = 4; }
`read_events` decodes the same subset, so tests can check a file round trip.
"""
import io
import os
import socket
import struct
import time
from typing import Dict, Iterator, List, Mapping, Optional

import numpy as np
from PIL import Image

# --- crc32c (Castagnoli), as TFRecord frames use it --------------------------------------


def _crc_table() -> List[int]:
  table = []
  for n in range(256):
    c = n
    for _ in range(8):
      c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    table.append(c)
  return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
  crc = 0xFFFFFFFF
  table = _TABLE
  for b in data:
    crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
  """One TFRecord record around `data`."""
  length = struct.pack('<Q', len(data))
  return (length + struct.pack('<I', masked_crc32c(length)) + data
          + struct.pack('<I', masked_crc32c(data)))


def read_records(path: str) -> Iterator[bytes]:
  """The records of a TFRecord file; raises ValueError on a bad checksum."""
  with open(path, 'rb') as f:
    while True:
      header = f.read(12)
      if not header:
        return
      if len(header) < 12:
        raise ValueError(f'{path}: truncated record header')
      length_bytes, length_crc = header[:8], struct.unpack('<I', header[8:])[0]
      if masked_crc32c(length_bytes) != length_crc:
        raise ValueError(f'{path}: bad length checksum')
      data = f.read(struct.unpack('<Q', length_bytes)[0])
      (data_crc,) = struct.unpack('<I', f.read(4))
      if masked_crc32c(data) != data_crc:
        raise ValueError(f'{path}: bad data checksum')
      yield data


# --- protobuf wire format, the few field kinds we need ------------------------------------

def _varint(n: int) -> bytes:
  n &= (1 << 64) - 1   # negative int64s are sent as their two's complement
  out = bytearray()
  while True:
    byte = n & 0x7F
    n >>= 7
    if n:
      out.append(byte | 0x80)
    else:
      out.append(byte)
      return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
  return _varint((field << 3) | wire_type)


def _int_field(field: int, value: int) -> bytes:
  return _key(field, 0) + _varint(value)


def _bytes_field(field: int, value: bytes) -> bytes:
  return _key(field, 2) + _varint(len(value)) + value


def _double_field(field: int, value: float) -> bytes:
  return _key(field, 1) + struct.pack('<d', value)


def _float_field(field: int, value: float) -> bytes:
  return _key(field, 5) + struct.pack('<f', value)


def encode_event(wall_time: float, step: int, summary: Optional[bytes] = None,
                 file_version: Optional[str] = None) -> bytes:
  out = _double_field(1, wall_time) + _int_field(2, step)
  if file_version is not None:
    out += _bytes_field(3, file_version.encode())
  if summary is not None:
    out += _bytes_field(5, summary)
  return out


def scalar_value(tag: str, value: float) -> bytes:
  return _bytes_field(1, tag.encode()) + _float_field(2, float(value))


def image_value(tag: str, png: bytes, height: int, width: int, channels: int) -> bytes:
  image = (_int_field(1, height) + _int_field(2, width) + _int_field(3, channels)
           + _bytes_field(4, png))
  return _bytes_field(1, tag.encode()) + _bytes_field(4, image)


def summary(values: List[bytes]) -> bytes:
  return b''.join(_bytes_field(1, v) for v in values)


def decode_fields(data: bytes) -> List[tuple]:
  """(field number, wire type, value) triples of one message, in order."""
  out, i = [], 0
  while i < len(data):
    key, i = _read_varint(data, i)
    field, wire = key >> 3, key & 7
    if wire == 0:
      value, i = _read_varint(data, i)
    elif wire == 1:
      value, i = data[i:i + 8], i + 8
    elif wire == 2:
      n, i = _read_varint(data, i)
      value, i = data[i:i + n], i + n
    elif wire == 5:
      value, i = data[i:i + 4], i + 4
    else:
      raise ValueError(f'unsupported protobuf wire type {wire}')
    out.append((field, wire, value))
  return out


def _read_varint(data: bytes, i: int):
  shift = result = 0
  while True:
    b = data[i]
    i += 1
    result |= (b & 0x7F) << shift
    shift += 7
    if not b & 0x80:
      return result, i


def read_events(path: str) -> List[dict]:
  """Decodes our event files: [{'wall_time', 'step', 'file_version'?, 'values'?}].

  values: {tag: float} for scalars and {tag: {'height', 'width', 'colorspace',
  'png'}} for images.
  """
  events = []
  for record in read_records(path):
    event = {'step': 0}
    for field, _, value in decode_fields(record):
      if field == 1:
        event['wall_time'] = struct.unpack('<d', value)[0]
      elif field == 2:
        event['step'] = value
      elif field == 3:
        event['file_version'] = value.decode()
      elif field == 5:
        event['values'] = _decode_summary(value)
    events.append(event)
  return events


def _decode_summary(data: bytes) -> dict:
  values = {}
  for _, _, value in decode_fields(data):
    tag, content = None, None
    for field, _, v in decode_fields(value):
      if field == 1:
        tag = v.decode()
      elif field == 2:
        content = struct.unpack('<f', v)[0]
      elif field == 4:
        parts = {f: v2 for f, _, v2 in decode_fields(v)}
        content = {'height': parts.get(1, 0), 'width': parts.get(2, 0),
                   'colorspace': parts.get(3, 0), 'png': parts.get(4, b'')}
    values[tag] = content
  return values


# --- the writer ------------------------------------------------------------------------------

# The training metrics a run logs, under TensorBoard tags grouped by section.
TRAIN_SCALARS = {
    'critic_loss': 'critic/loss', 'wasserstein': 'critic/wasserstein',
    'gradient_penalty': 'critic/gradient_penalty', 'generator_loss': 'generator/loss',
    'similarity': 'generator/similarity', 'gamma': 'generator/gamma',
    'iterations_per_sec': 'speed/iterations_per_sec',
}


class SummaryWriter:
  """Appends events to a new `events.out.tfevents.*` file under `logdir`.

  A resumed run opens a fresh file in the same directory; TensorBoard merges
  them, later steps overwriting nothing.
  """

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    name = f'events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}'
    self.path = os.path.join(logdir, name)
    self._f = open(self.path, 'ab')
    self._write(encode_event(time.time(), 0, file_version='brain.Event:2'))

  def _write(self, event: bytes) -> None:
    self._f.write(frame(event))
    self._f.flush()

  def scalars(self, step: int, values: Mapping[str, float],
              tags: Optional[Dict[str, str]] = None) -> None:
    """Logs values {name: number}; names in `tags` (default TRAIN_SCALARS) are renamed."""
    tags = TRAIN_SCALARS if tags is None else tags
    vals = [scalar_value(tags.get(k, k), v) for k, v in values.items()
            if np.isscalar(v) or np.ndim(v) == 0]
    self._write(encode_event(time.time(), int(step), summary(vals)))

  def image(self, tag: str, image, step: int) -> None:
    """Logs a PNG file path, PNG bytes, or a uint8 (H, W[, C]) array."""
    if isinstance(image, str):
      with open(image, 'rb') as f:
        image = f.read()
    if isinstance(image, (bytes, bytearray)):
      png = bytes(image)
      pil = Image.open(io.BytesIO(png))
    else:
      arr = np.asarray(image, np.uint8)
      pil = Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[-1] == 1 else arr)
      buf = io.BytesIO()
      pil.save(buf, format='PNG')
      png = buf.getvalue()
    channels = {'L': 1, 'LA': 2, 'RGB': 3, 'RGBA': 4}.get(pil.mode, 3)
    value = image_value(tag, png, pil.height, pil.width, channels)
    self._write(encode_event(time.time(), int(step), summary([value])))

  def close(self) -> None:
    self._f.close()


class Tee:
  """A metrics log (anything with write(record)/close()) that also feeds TensorBoard.

  Each record {step, name: value} becomes scalars at that step; `image` logs a
  sample grid. Training code keeps calling write/close as before.
  """

  def __init__(self, log, logdir: str):
    self._log = log
    self.writer = SummaryWriter(logdir)

  def write(self, record: dict) -> None:
    self._log.write(record)
    self.writer.scalars(record['step'], {k: v for k, v in record.items() if k != 'step'})

  def image(self, tag: str, image, step: int) -> None:
    self.writer.image(tag, image, step)

  def close(self) -> None:
    self._log.close()
    self.writer.close()
