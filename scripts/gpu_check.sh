#!/usr/bin/env bash
# Runs scripts/gpu_check.py with its results in DIR (first argument, default out/gpu-check; more arguments go to
# gpu_check.py, e.g. --only 'guided step') and everything printed
# also in DIR/gpu_check.log; exits with the Python script's exit code (2 when it could not be started). On the GPU
# machine the whole of it, setup included, takes VJ_CHECK_TOTAL_S (420 s; the device's command limit is 600), and a
# hard stop 40 s after that ends a check whose own watchdog did not. Works:
#  - here, in $VENV (default .venv, made by `make setup`, run first if missing);
#  - on the lent GPU machine, which has no network and no .venv: `make wheels` (here) put what its image lacks into
#    .whl/ and .gl/, which the run names in `carry`; they are installed first, as the device README says.
# Results go into DIR itself, not below it: the device returns files at most 2 folders under $OUT, 8 at most.
set -uo pipefail

DIR=${1:-out/gpu-check}
CHECK_ARGS=("${@:2}")
mkdir -p "$DIR" && DIR=$(cd "$DIR" && pwd) || exit 2
cd "$(dirname "$0")/.." || exit 2
SITE=/tmp/vj-site   # the carried wheels go here, outside the image's own site-packages
EGL_VENDOR=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json

setup_device() {
  echo "== device: $(uname -m), $(python3 --version 2>&1) at $(command -v python3)"
  python3 -c 'import torch; print("torch", torch.__version__, "cuda available:", torch.cuda.is_available())'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  if [ -d .gl ]; then
    # GL/EGL/Vulkan loaders (glvnd), unpacked into / as the device README says; the NVIDIA driver supplies the rest.
    for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
    # PortAudio, ALSA, JACK: the image may have some in another version, so only files not already there are
    # added, and existing folders (and links to folders, such as /lib) are left as they are.
    for f in .gl/audio/*.deb; do
      [ -e "$f" ] || continue
      dpkg-deb --fsys-tarfile "$f" | tar -x -C / --skip-old-files --keep-directory-symlink
    done
    ldconfig
    echo "== linker cache: $(ldconfig -p | grep -oE 'lib(EGL|GL|vulkan|portaudio|asound|jack)\.so\.[0-9]+' | sort -u | tr '\n' ' ')"
  fi
  if [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] && [ -f "$EGL_VENDOR" ]; then
    export __EGL_VENDOR_LIBRARY_FILENAMES=$EGL_VENDOR   # so EGL finds the NVIDIA driver
  fi
  # --no-index: nothing may be fetched there (it would hang, not fail); --no-deps: the rest comes with the image.
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-index --no-deps \
    --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || { echo "installing .whl/*.whl failed"; return 2; }
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"   # vj itself is not installed: it runs from here
  # Each import on its own, so one that crashes does not hide the others (all at once: the machine has the cores,
  # and one at a time they took a minute of the budget); a failure is reported, not fatal.
  for m in open_clip moderngl glfw pythonosc rtmidi safetensors scipy av sounddevice soundfile mir_eval vj; do
    { err=$(timeout 120 python3 -c "import $m" 2>&1) || echo "import $m FAILED: $(tail -n 1 <<<"$err")"; } &
  done
  wait
  # The carried wheels' and vj's requirements against what the image has (versions there are not known here).
  python3 - "$SITE" <<'EOF' || echo "requirement check failed (ignored: information only)"
import sys, tomllib
from importlib import metadata
from packaging.requirements import Requirement

reqs = [("vj", r) for r in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]]
for d in metadata.distributions(path=[sys.argv[1]]):
    reqs += [(d.metadata["Name"], r) for r in d.requires or []]
versions = {}
for who, spec in reqs:
    r = Requirement(spec)
    if r.marker and not r.marker.evaluate({"extra": ""}):
        continue
    try:
        versions[r.name.lower()] = v = metadata.version(r.name)
    except metadata.PackageNotFoundError:
        print(f"requirement MISSING: {who} needs {spec}")
        continue
    if not r.specifier.contains(v, prereleases=True):
        print(f"requirement NOT MET: {who} needs {spec}, found {r.name} {v}")
print("== versions:", " ".join(f"{n}={v}" for n, v in sorted(versions.items())))
EOF
  return 0
}

main() {
  local start=$SECONDS py budget=
  echo "== gpu_check.sh $(date -u +%FT%TZ), results in $DIR"
  local venv=${VENV:-.venv}
  if [ -x "$venv/bin/python" ]; then
    py=$venv/bin/python
  elif command -v nvidia-smi >/dev/null; then
    # A GPU and no .venv (never carried): the lent machine. No network there, so never `make setup` (it would hang).
    [ -d .whl ] || { echo "no .whl/ here: run 'make wheels' beforehand and name .whl and .gl in carry"; return 2; }
    setup_device || return 2
    py=python3
    # The device tool stops a command after 600 s; the check gets what the setup left of VJ_CHECK_TOTAL_S.
    budget=$(( ${VJ_CHECK_TOTAL_S:-420} - (SECONDS - start) ))
  else
    make setup VENV="$venv" || return 2
    py=$venv/bin/python
  fi
  if [ ! -f scripts/gpu_check.py ]; then
    echo "scripts/gpu_check.py does not exist yet: nothing to run"
    return 2
  fi
  local stop=()
  [ -z "$budget" ] || stop=(timeout -k 10 $((budget + 40)))
  PYTHONUNBUFFERED=1 "${stop[@]}" "$py" scripts/gpu_check.py --out "$DIR" ${budget:+--budget-s "$budget"} \
    "${CHECK_ARGS[@]}"
  local rc=$?
  echo "== gpu_check.py exited $rc after $((SECONDS - start)) s (with the setup)"
  return $rc
}

main 2>&1 | tee "$DIR/gpu_check.log"
exit "${PIPESTATUS[0]}"
