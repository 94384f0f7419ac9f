#!/usr/bin/env bash
# Installs the Debian packages vj needs (as root, with apt), or says exactly which are missing.
# OpenGL through Mesa (EGL headless, GLX under Xvfb), PortAudio, a JACK server for real audio/MIDI ports in tests,
# liblo's oscsend/oscdump (an OSC client that is not ours), ffmpeg's ffprobe to check rendered videos, and fonts
# for the HUD that cover accented Latin, Greek, Cyrillic, CJK and (in outline) emoji: prompts come in every language.
set -u
packages=(xvfb libegl1 libegl-mesa0 libgl1-mesa-dri libportaudio2 jackd2 liblo-tools ffmpeg
          fonts-dejavu-core fonts-droid-fallback fonts-symbola)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null && exit 0
  echo "apt-get failed to install: ${missing[*]}" >&2
  exit 1
fi
echo "missing system packages: ${missing[*]}" >&2
echo "install them with: sudo apt-get install ${missing[*]}" >&2
echo "(continuing: the parts of vj and of its tests that need them will say so)" >&2
exit 0
