#!/usr/bin/env bash
# Runs vj's CPU precision and engine tests, and the device check's CPU smoke run, under the lent GPU machine's
# versions (Python 3.12, torch 2.11 and the other packages its image has, plus the wheels scripts/gpu_wheels.sh
# carries there), so that API drift is found here, before a lease is spent. The project itself runs on Python 3.11
# and torch 2.14/2.15 (.venv, `make setup`); this is a separate check, not part of `make test` or CI.
#
#   scripts/device_versions_check.sh [DIR]      (`make device-versions`; results in DIR, default out/device-versions)
#
# It makes .venv-device (once; again when the pins below change) with python3.12 and the device's versions, then
# runs, with vj NOT installed and PYTHONPATH set to this checkout (as on the device):
#   1. a byte-compile of vj/, scripts/ and tests/, an import of every vj module, and a look-up of every torch.a.b name
#      that they spell out (tests/cuda and the CUDA-only paths included) and of the keywords their calls pass;
#   2. the CPU tests named in TESTS below (precision, guidance, StyleGAN3, engine worker, device check);
#   3. python scripts/gpu_check.py --out DIR/gpu-check (the CPU smoke run of the device check).
# Exits 0 when all pass, 1 when one fails, 2 when the environment could not be made. Everything printed is also in
# DIR/device_versions.log, and the summary in DIR/summary.txt.
#
# Where a device run has printed its versions (scripts/gpu_check.sh logs a '== versions: name=ver ...' line),
# DEVICE_VERSIONS_LOG=path/to/gpu_check.log pins every package that line names to its version there.
# DEVICE_VERSIONS_QUICK=1 runs step 1 alone (seconds); DEVICE_VERSIONS_TESTS="tests/x.py ..." runs those tests
# instead of TESTS; DEVICE_PYTHON=/path/to/python3.12 chooses the interpreter. Install: torch 2.11's CUDA build from
# the registry with its NVIDIA libraries, about 5 GB (the CUDA build runs on a CPU too, as the device's build does).
# Time: step 1 about 10 s; the tests about 14 min on this project's 2-core machine beside another test run (27 min
# beside several), the device check's CPU run under 2 min.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
REPO=$PWD

DIR=${1:-out/device-versions}
VENV=${DEVICE_VENV:-.venv-device}
mkdir -p "$DIR" && DIR=$(cd "$DIR" && pwd) || exit 2

# What the device image has, as the first device run (2026-12-04, an H200: Python 3.12.3, torch 2.11.0+cu130) logged
# it (scripts/gpu_check.sh's '== versions:' line; the device docs' pip list agrees where it names them).
device_pins=(torch==2.11.0 torchvision==0.26.0 numpy==2.5.2 scipy==1.18.1 safetensors==0.8.0 huggingface-hub==1.33.0
             timm==1.0.29 pillow==12.3.0 regex==2026.9.3 tqdm==4.70.1 typing-extensions==4.16.0)
# In the image too, version not logged: whatever the registry gives beside the pins (printed in the summary).
device_unpinned=(packaging pytest hypothesis scikit-image pytest-timeout pytest-xdist pytest-mock)
# What scripts/gpu_wheels.sh carries (its `wanted`, av included), pinned as it pins them: to .venv's versions; the
# wheels in .whl/ themselves when it has been run.
carried=(open_clip_torch ftfy wcwidth moderngl glcontext glfw python-rtmidi sounddevice soundfile cffi pycparser
         python-osc mir_eval decorator av)
# The CPU tests of the hot path (precision, CLIP guidance, StyleGAN3 synthesis, the engine worker) and the device
# check's; tests/cuda is collected only where CUDA is: here it is imported and its torch names looked up, not run.
TESTS=(tests/test_precision.py tests/test_guidance.py tests/test_stylegan3.py tests/test_winograd.py
       tests/test_checkpoints.py tests/test_worker.py tests/test_gpu_check.py)
read -ra TESTS <<<"${DEVICE_VERSIONS_TESTS:-${TESTS[*]}}"   # DEVICE_VERSIONS_TESTS="tests/a.py ...": others
# Tests that need what the device lacks as much as this check does: an X display (Xvfb, for a glfw window).
DESELECT=(tests/test_checkpoints.py::test_live_show_with_a_truncated_checkpoint_stops_with_one_line)

norm() { tr '[:upper:]' '[:lower:]' | sed -E 's/[-_.]+/_/g'; }

find_python() {
  local p
  for p in "${DEVICE_PYTHON:-}" python3.12; do
    [ -n "$p" ] && "$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null &&
      { command -v "$p"; return; }
  done
  # pyenv: its shim answers only for the versions made current; the interpreters themselves are there.
  local root; root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for p in $(ls -d "$root"/versions/3.12*/bin/python3.12 2>/dev/null | sort -V -r); do
    "$p" -c 'pass' 2>/dev/null && { echo "$p"; return; }
  done
  return 1
}

# name==version for each carried package: from .whl/ (what travels), else .venv (what gpu_wheels.sh pins to).
carried_pins() {
  local freeze="" name n ver f
  shopt -s nullglob nocaseglob
  [ -x .venv/bin/python ] && freeze=$(.venv/bin/python -m pip freeze --all 2>/dev/null)
  for name in "${carried[@]}"; do
    n=$(norm <<<"$name") ver=""
    for f in .whl/*.whl; do
      f=${f#.whl/}; [ "$(norm <<<"${f%%-*}")" = "$n" ] && { ver=$(cut -d- -f2 <<<"$f"); break; }
    done
    [ -n "$ver" ] ||
      ver=$(awk -F'==' -v n="$n" 'NF == 2 {p = tolower($1); gsub(/[-_.]+/, "_", p); if (p == n) print $2}' <<<"$freeze")
    if [ -n "$ver" ]; then echo "$name==$ver"; else echo "$name"; fi
  done
}

# name==version for each package on the '== versions:' line of a device run's gpu_check.log.
logged_pins() {
  [ -n "${DEVICE_VERSIONS_LOG:-}" ] || return 0
  [ -f "$DEVICE_VERSIONS_LOG" ] || { echo "DEVICE_VERSIONS_LOG=$DEVICE_VERSIONS_LOG: no such file" >&2; return 1; }
  # A local label (torch's +cu130) is left out: the registry's wheels have none.
  grep -m1 '^== versions:' "$DEVICE_VERSIONS_LOG" | sed 's/^== versions: *//' | tr ' ' '\n' |
    sed -n 's/^\([^=]*\)=\([^+]*\).*$/\1==\2/p'
}

make_venv() {
  local py reqs stamp=$VENV/.device-installed
  py=$(find_python) || { echo "no Python 3.12 here (set DEVICE_PYTHON)"; return 2; }
  # Later pins of a name win: the device's logged versions over the known ones, those over the carried ones.
  reqs=$( { printf '%s\n' "${device_unpinned[@]}"; carried_pins; printf '%s\n' "${device_pins[@]}"; logged_pins; } |
          awk '{n = tolower($0); sub(/[=<>!~ ].*/, "", n); gsub(/[-_.]+/, "_", n); v[n] = $0
                if (!(n in o)) {o[n] = ++k; ord[k] = n}}
               END {for (i = 1; i <= k; i++) print v[ord[i]]}') || return 2
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$py"$'\n'"$reqs" ]; then
    echo "== $VENV is up to date ($("$VENV/bin/python" --version))"
    return 0
  fi
  echo "== making $VENV with $py ($("$py" --version)); requirements:"; echo "$reqs" | sed 's/^/   /'
  rm -rf "$VENV" && "$py" -m venv "$VENV" || return 2
  # torch's CUDA build (what the device runs) from the registry; this machine's pip cap (/etc/xdg/pip, torch at most
  # 2.14.1) admits 2.11.
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --progress-bar off --no-compile \
    --only-binary=:all: $reqs 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "installing the device's versions failed"; return 2; }
  # Bytecode on every core now (as make setup does): torch imports twice as slowly without it.
  "$VENV/bin/python" -m compileall -q -j 0 \
    "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null 2>&1
  printf '%s\n%s' "$py" "$reqs" >"$stamp"
}

declare -a results=()
failed=0
note=""
step() {   # step NAME COMMAND...: runs it, records pass/fail with its time (and the note the command left)
  local name=$1 t=$SECONDS rc; shift
  echo; echo "== $name"
  note=""
  "$@"; rc=$?
  if [ $rc -eq 0 ]; then results+=("PASS  $name ($((SECONDS - t)) s)")
  else results+=("FAIL  $name (exit $rc, $((SECONDS - t)) s)"); failed=1; fi
  [ -z "$note" ] || results+=("      $note")
  return 0
}

imports() {
  "$PY" - <<'EOF'
import importlib, importlib.util, pkgutil, sys, traceback
from pathlib import Path
import vj
sys.path.insert(0, "tests")  # as pytest puts it (the tests import conftest)
bad = 0
names = ["vj", *(m.name for m in pkgutil.walk_packages(vj.__path__, "vj.")),
         *sorted(map(str, Path("tests/cuda").glob("test_*.py")))]
for name in names:
    try:
        if name.endswith(".py"):  # CUDA tests: not collected without CUDA, so imported here
            spec = importlib.util.spec_from_file_location(Path(name).stem, name)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        else:
            importlib.import_module(name)
    except Exception:
        bad += 1
        print(f"import {name} FAILED:\n{traceback.format_exc(limit=3)}", file=sys.stderr)
print(f"{len(names) - bad}/{len(names)} vj modules and CUDA test files import")
sys.exit(1 if bad else 0)
EOF
}

pytest_run() {   # the tests, their log in DIR/pytest.log; pytest's last line goes into the summary
  local rc
  "$PY" -m pytest -q -p no:cacheprovider --durations=15 "${DESELECT[@]/#/--deselect=}" "${TESTS[@]}" 2>&1 |
    tee "$DIR/pytest.log"
  rc=${PIPESTATUS[0]}
  note="pytest: $(grep -E '(passed|failed|error).* in [0-9.]+s' "$DIR/pytest.log" | tail -1 | tr -d '=' |
                  sed -E 's/^ +| +$//g')"
  return "$rc"
}

torch_api() {   # every torch.a.b name that vj/, scripts/ and tests/ spell out resolves, and their calls' keywords exist
  "$PY" - vj scripts tests <<'EOF'
import ast, importlib, inspect, sys
from pathlib import Path
import torch

def resolve(chain):
    obj = importlib.import_module(chain[0])
    for i, part in enumerate(chain[1:], 1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            try:  # a submodule not imported by its parent
                obj = importlib.import_module(".".join(chain[: i + 1]))
            except ImportError:
                raise AttributeError(".".join(chain[: i + 1])) from None
    return obj

def dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr); node = node.value
    if isinstance(node, ast.Name) and node.id == "torch":
        return ["torch", *reversed(parts)]
    return None

bad, names, calls = [], set(), 0
for root in sys.argv[1:]:
    for path in sorted(Path(root).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        seen = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and (chain := dotted(node)) and id(node) not in seen:
                # only the longest chain: skip the inner attributes of this one
                inner = node.value
                while isinstance(inner, ast.Attribute):
                    seen.add(id(inner)); inner = inner.value
                names.add(tuple(chain))
            if isinstance(node, ast.Call) and (chain := dotted(node.func)) and node.keywords:
                calls += 1
                try:
                    sig = inspect.signature(resolve(chain))
                except (AttributeError, TypeError, ValueError):
                    continue  # missing: reported below; builtins without a signature: not checkable
                params = sig.parameters
                if any(p.kind is p.VAR_KEYWORD for p in params.values()):
                    continue
                for kw in node.keywords:
                    if kw.arg is not None and kw.arg not in params:
                        bad.append(f"{path}:{node.lineno}: {'.'.join(chain)}() takes no keyword {kw.arg!r}")
for chain in sorted(names):
    try:
        resolve(list(chain))
    except AttributeError as e:
        bad.append(f"{'.'.join(chain)}: this torch has no {e}")
print("\n".join(bad) if bad else "", end="\n" if bad else "")
print(f"{len(names)} torch names and {calls} keyword calls checked against torch {torch.__version__}: "
      f"{len(bad)} missing")
sys.exit(1 if bad else 0)
EOF
}

main() {
  local start=$SECONDS
  echo "== device_versions_check.sh $(date -u +%FT%TZ), results in $DIR"
  make_venv || return 2
  PY=$REPO/$VENV/bin/python
  export PYTHONPATH=$REPO PYTHONUNBUFFERED=1   # vj is not installed: it runs from this checkout, as on the device
  # Where the suite's engines cache (latent banks, weights), kept apart from .venv's runs.
  export VJ_CACHE=$REPO/.pytest_cache/vj-cache-device-versions
  local versions
  versions=$("$PY" - <<'EOF'
import sys, torch, importlib.metadata as md
print("==", sys.version.split()[0], "torch", torch.__version__, "cuda build", torch.version.cuda,
      "cuda available:", torch.cuda.is_available())
print("== vj from:", __import__("vj").__file__)
names = ["torch", "torchvision", "numpy", "scipy", "safetensors", "huggingface-hub", "timm", "open_clip_torch",
         "pillow", "regex", "tqdm", "moderngl", "av", "pytest", "hypothesis", "scikit-image", "triton"]
print("== versions:", " ".join(f"{n}={md.version(n)}" for n in names))
EOF
) || { echo "$versions"; echo "torch does not import in $VENV"; return 2; }
  echo "$versions"
  step "byte-compile vj/ scripts/ tests/ (py3.12)" "$PY" -m compileall -q vj scripts tests
  step "import every vj module and tests/cuda/*.py" imports
  step "torch names and keywords used (CUDA-only code included)" torch_api
  if [ "${DEVICE_VERSIONS_QUICK:-0}" = 1 ]; then
    results+=("SKIP  the tests and the device check's CPU run (DEVICE_VERSIONS_QUICK=1)")
  else
    step "pytest ${TESTS[*]} (${#DESELECT[@]} deselected: no X display)" pytest_run
    step "scripts/gpu_check.py (CPU smoke run)" "$PY" scripts/gpu_check.py --out "$DIR/gpu-check"
  fi
  {
    echo
    echo "== summary, under the device's versions (vj from this checkout, not installed)"
    grep -v '^== vj from' <<<"$versions"
    printf '%s\n' "${results[@]}"
    if [ $failed = 0 ]; then echo "ALL PASSED in $((SECONDS - start)) s"
    else echo "FAILED (see above) after $((SECONDS - start)) s"; fi
  } | tee "$DIR/summary.txt"
  return $failed
}

# At low priority throughout: this machine's two cores are shared with other test runs.
renice -n 10 $$ >/dev/null 2>&1
main 2>&1 | tee "$DIR/device_versions.log"
exit "${PIPESTATUS[0]}"
