#!/usr/bin/env bash
# The system packages sonic-catalog needs beside its Python environment, installed with apt when
# run as root on a Debian/Ubuntu machine; otherwise it names what is missing and the command.
#
#   bash infra/system-packages.sh run    # what `make demo` and renders need
#   bash infra/system-packages.sh test   # ... and what the tests need too (`make test`, CI)
#
# Called by the Makefile's demo/test targets and by .ci/run; it installs nothing already there.
set -euo pipefail
purpose="${1:-run}"
missing=""
# espeak-ng: captions are aligned by synthesizing the script with its library (libespeak-ng1).
command -v espeak-ng >/dev/null || missing="$missing espeak-ng"
# Burned-in captions (sonic_model/captions/burn.py): fontconfig finds the Noto fonts for libass
# (Latin, Cyrillic, Greek, Arabic, Hebrew, Devanagari, Thai: fonts-noto-core; Chinese,
# Japanese, Korean: fonts-noto-cjk). Never downloaded at run time.
command -v fc-list >/dev/null || missing="$missing fontconfig"
fc-list "Noto Sans Arabic" 2>/dev/null | grep -q . || missing="$missing fonts-noto-core"
fc-list "Noto Sans CJK SC" 2>/dev/null | grep -q . || missing="$missing fonts-noto-cjk"
if [ "$purpose" = test ]; then
    # chromium: the QA-report test looks at report.html in a headless browser.
    command -v chromium >/dev/null || missing="$missing chromium"
    # ffmpeg/ffprobe: tests compare our audio paths with the ffmpeg CLI's (the project itself uses
    # imageio-ffmpeg's bundled binary, so users need no system ffmpeg).
    command -v ffmpeg >/dev/null || missing="$missing ffmpeg"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing system packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    exit 0
fi
echo "sonic-catalog needs these system packages:$missing" >&2
echo "install them with: sudo apt-get install --no-install-recommends$missing" >&2
# Renders without captions work without them (a row with a script then ends with an error naming
# the package); the tests do not.
[ "$purpose" = test ] && exit 1
exit 0
