#!/usr/bin/env bash
# Renders a run's HTML report in headless Chromium, to see the page as a reader does.
#
# Usage:
#   docs/screenshot_report.sh REPORT [OUT] [HEIGHT] [TILE]
#     REPORT  the page, e.g. <workdir>/report/index.html (or the report/ folder)
#     OUT     the screenshot, default ./report.png
#     HEIGHT  window height in pixels, default 16000: Chromium has no full-page flag,
#             so a tall window stands in for one (the blank bottom is trimmed)
#     TILE    if > 0 (default 1400), also writes OUT_1.png, OUT_2.png, ... of that
#             height each, which are easier to read than one very tall image
#   Width is 1280 (SCREENSHOT_WIDTH overrides); CHROMIUM names the browser binary.
#
# Needs Chromium (Debian: apt-get install -y chromium) and, for trimming and tiles,
# Python with Pillow (the project's venv has it). No test uses this script.
set -euo pipefail
if [[ $# -lt 1 ]]; then sed -n '2,16p' "$0"; exit 2; fi
page=$1
[[ -d $page ]] && page=$page/index.html
out=${2:-report.png}
height=${3:-16000}
tile=${4:-1400}
width=${SCREENSHOT_WIDTH:-1280}
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome)}
page=$(cd "$(dirname "$page")" && pwd)/$(basename "$page")
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --run-all-compositor-stages-before-draw --virtual-time-budget=5000 \
  --window-size="$width,$height" --screenshot="$out" "file://$page" 2>/dev/null
python3 - "$out" "$tile" <<'PY'
import sys
try:
  from PIL import Image, ImageChops
except ImportError:
  sys.exit(0)
out, tile = sys.argv[1], int(sys.argv[2])
img = Image.open(out).convert('RGB')
bg = Image.new('RGB', img.size, img.getpixel((img.width - 1, img.height - 1)))
box = ImageChops.difference(img, bg).getbbox()
if box:
  img = img.crop((0, 0, img.width, min(img.height, box[3] + 40)))
  img.save(out)
if tile > 0:
  for i, top in enumerate(range(0, img.height, tile), 1):
    img.crop((0, top, img.width, min(img.height, top + tile))).save(
        out[:-4] + f'_{i}.png' if out.endswith('.png') else f'{out}_{i}.png')
  print(f'{out}: {img.width}x{img.height}, {i} tiles')
else:
  print(f'{out}: {img.width}x{img.height}')
PY
