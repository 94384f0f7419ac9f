#!/usr/bin/env bash
# Fetches, here (where the package registries are reachable), what the lent GPU machine lacks to run vj, so that it
# can travel with the working tree (`carry: [".whl", ".gl"]`): that machine has no network at all.
#   .whl/        the wheels of every vj dependency its image does not have, for its python3 (CPython 3.12,
#                manylinux x86-64), --no-deps, one version each, pinned to what .venv (CI's environment) has.
#   .gl/*.deb    the GL/EGL/Vulkan loaders (glvnd) the device README names; scripts/gpu_check.sh unpacks them into /.
#   .gl/audio/   PortAudio and the libraries it and python-rtmidi load (ALSA, JACK); gpu_check.sh copies them into
#                / without overwriting anything already there, since these may already exist in another version.
# Idempotent: what is already downloaded is kept. Everything that travels must stay under 64 MiB; this fails over 48.
# Set VJ_WHEELS_NO_AV=1 to leave out PyAV (about 34 MiB): vj's video rendering and recording then fail to import.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY="$VENV/bin/python"
WHL=.whl
GL=.gl
LIMIT_MIB=48

# vj's runtime and test dependencies (pyproject.toml), and theirs, that the nvidia-h200 image lacks
# (see the device docs' "Python packages already there" list).
wanted=(open_clip_torch ftfy wcwidth moderngl glcontext glfw python-rtmidi sounddevice soundfile cffi pycparser
        python-osc mir_eval decorator)
left_out=""
if [ "${VJ_WHEELS_NO_AV:-0}" = 1 ]; then left_out=av; else wanted+=(av); fi
# What the carried wheels and vj itself import from the image (checked below, at least by name; gpu_check.sh
# checks the versions there).
device_has="torch torchvision numpy scipy safetensors tqdm pillow regex huggingface-hub timm typing-extensions
            pytest hypothesis"
# The device's python3: CPython 3.12 on glibc x86-64. pip matches manylinux_2_N tags exactly, so list the usual ones.
target=(--only-binary=:all: --python-version 3.12 --implementation cp
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
gl_debs=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
# python-sounddevice loads libportaudio at import; that needs libasound and libjack (-> libdb); rtmidi needs libasound.
audio_debs=(libportaudio2 libasound2 libasound2-data libjack-jackd2-0 libdb5.3)

[ -x "$PY" ] || { echo "no $PY: run 'make setup' first (the wheels are pinned to its versions)" >&2; exit 2; }

norm() { tr '[:upper:]' '[:lower:]' | sed -E 's/[-_.]+/_/g'; }   # wheel file names spell project names this way

# --- wheels, pinned to .venv's versions ---
mkdir -p "$WHL"
shopt -s nullglob nocaseglob nocasematch   # wheel names may differ in case from pip freeze's
freeze=$("$PY" -m pip freeze --all 2>/dev/null)
keep=()
for name in "${wanted[@]}"; do
  n=$(norm <<<"$name")
  ver=$(awk -F'==' -v n="$n" 'NF == 2 {p = tolower($1); gsub(/[-_.]+/, "_", p); if (p == n) print $2}' <<<"$freeze")
  [ -n "$ver" ] || { echo "$name is not installed in $VENV: cannot pin it" >&2; exit 1; }
  keep+=("$n-$ver")
  have=("$WHL/$n-$ver"-*.whl)
  [ ${#have[@]} -eq 0 ] || continue
  # Another version of it would stop the install on the device: drop it first.
  for old in "$WHL/$n"-*.whl; do echo "removing $old"; rm -f "$old"; done
  echo "downloading $name==$ver"
  "$PY" -m pip download -q --no-deps "${target[@]}" -d "$WHL" "$name==$ver" 2>&1 \
    | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
done
# Wheels no longer wanted (say, av after VJ_WHEELS_NO_AV=1) would still travel and install: drop them.
for f in "$WHL"/*.whl; do
  ok=0
  for k in "${keep[@]}"; do [[ "$f" == "$WHL/$k"-* ]] && ok=1; done
  [ $ok = 1 ] || { echo "removing $f (not wanted)"; rm -f "$f"; }
done

# --- the wheel set is self-consistent: one version each, installable for cp312 manylinux, and every requirement
# (markers evaluated for the device's python) is either carried or in the image ---
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip install -q --dry-run --no-index --no-deps --ignore-installed --target "$tmp" "${target[@]}" "$WHL"/*.whl
DEVICE_HAS="$device_has" LEFT_OUT="$left_out" "$PY" - "$WHL" <<'EOF'
import os, re, sys, zipfile
from pathlib import Path
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

env = {"python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
       "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
       "platform_machine": "x86_64", "os_name": "posix", "extra": ""}
carried, reqs = {}, []
for whl in sorted(Path(sys.argv[1]).glob("*.whl")):
    with zipfile.ZipFile(whl) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    name = canonicalize_name(re.search(r"^Name: (.+)$", meta, re.M).group(1).strip())
    if name in carried:
        sys.exit(f"two versions of {name} in {sys.argv[1]}")
    carried[name] = Version(re.search(r"^Version: (.+)$", meta, re.M).group(1).strip())
    reqs += [(name, Requirement(r)) for r in re.findall(r"^Requires-Dist: (.+)$", meta, re.M)]
import tomllib
for r in tomllib.loads(Path("pyproject.toml").read_text())["project"]["dependencies"]:
    reqs.append(("vj", Requirement(r)))
device = {canonicalize_name(n) for n in os.environ["DEVICE_HAS"].split()}
left_out = {canonicalize_name(n) for n in os.environ["LEFT_OUT"].split()}
bad = 0
for who, r in reqs:
    if r.marker and not r.marker.evaluate(env):
        continue
    n = canonicalize_name(r.name)
    if n in carried:
        if not r.specifier.contains(carried[n], prereleases=True):
            print(f"{who} needs {r}, carried {n} {carried[n]}"); bad += 1
    elif n in left_out:
        print(f"left out on purpose: {n} ({who} needs {r})")
    elif n not in device:
        print(f"{who} needs {r}: neither carried nor in the device image"); bad += 1
if bad:
    sys.exit(1)
print(f"wheel set consistent: {len(carried)} wheels, {len(reqs)} requirements checked for cp312 manylinux x86-64")
EOF

# --- debs (README recipe: an amd64 package list of its own, so this works from any host architecture) ---
need=()
for p in "${gl_debs[@]}"; do have=("$GL/${p}"_*.deb); [ ${#have[@]} -gt 0 ] || need+=("$p"); done
need_audio=()
for p in "${audio_debs[@]}"; do have=("$GL/audio/${p}"_*.deb); [ ${#have[@]} -gt 0 ] || need_audio+=("$p"); done
if [ ${#need[@]} -gt 0 ] || [ ${#need_audio[@]} -gt 0 ]; then
  mkdir -p "$GL/audio" /tmp/amd64/partial
  o=(-q -oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64
     -oAPT::Sandbox::User=root)   # root: _apt cannot write into this checkout
  apt-get "${o[@]}" update
  [ ${#need[@]} -eq 0 ] || (cd "$GL" && apt-get "${o[@]}" download "${need[@]}")
  [ ${#need_audio[@]} -eq 0 ] || (cd "$GL/audio" && apt-get "${o[@]}" download "${need_audio[@]}")
fi

# --- what travels ---
du -h "$WHL"/*.whl "$GL"/*.deb "$GL"/audio/*.deb
bytes=$(du -cb "$WHL" "$GL" | tail -1 | cut -f1)
echo "total .whl + .gl: $(awk -v b="$bytes" 'BEGIN {printf "%.1f MiB", b / 1048576}') (limit $LIMIT_MIB MiB)"
[ "$bytes" -le $((LIMIT_MIB * 1048576)) ] || { echo "too big to travel with the working tree" >&2; exit 1; }
