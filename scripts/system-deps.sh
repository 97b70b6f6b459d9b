#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages VideoMind needs when they are absent: ffmpeg (decoding, muxing),
# espeak-ng (narration for generated videos), a TrueType font (on-screen text), python3-venv.
# Uses apt-get directly as root, sudo otherwise; when neither works it prints the exact command and fails.
set -euo pipefail

need=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
"${PYTHON:-python3}" -c "import ensurepip, venv" >/dev/null 2>&1 || need+=(python3-venv)

[ ${#need[@]} -eq 0 ] && exit 0

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${need[*]}"
echo "videomind: installing system packages: ${need[*]}"
if [ "$(id -u)" = 0 ]; then
    sh -c "$cmd" >/tmp/videomind-apt.log 2>&1 || { tail -20 /tmp/videomind-apt.log; exit 1; }
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo sh -c "$cmd" >/tmp/videomind-apt.log 2>&1 || { tail -20 /tmp/videomind-apt.log; exit 1; }
else
    echo "videomind: cannot install system packages without root. Run this, then repeat the make command:" >&2
    echo "    sudo sh -c '$cmd'" >&2
    exit 1
fi
