# vj: `make demo` sets up and renders the demo video; `make test` sets up and runs the tests.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
OUT    ?= out

.PHONY: demo test bench soak setup system-deps clean

setup: system-deps $(VENV)/.installed

system-deps:
	@scripts/system_deps.sh

# Reinstalled when the dependencies change. torch comes from the registry (the CUDA build runs on a CPU too).
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --progress-bar off --no-compile -e ".[test,link,ndi]"
	@# Bytecode on every core (pip compiles on one: 40 s of the install, 16 s this way). It must be written now:
	@# where PYTHONDONTWRITEBYTECODE is set nothing writes it later, and torch then takes twice as long to import.
	@# Some packages ship files that are not Python 3 (templates, test data): their failures are not ours.
	$(BIN)/python -m compileall -q -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
		> /dev/null 2>&1 || true
	touch $@

demo: setup
	@mkdir -p $(OUT)
	$(BIN)/python examples/make_beat.py $(OUT)/demo.wav --seconds 12 --bpm 124
	$(BIN)/vj render $(OUT)/demo.wav --lrc examples/demo.lrc -o $(OUT)/demo.mp4 --fps 12 --size 384x384 \
		--frames-log $(OUT)/demo.frames.jsonl
	@command -v ffprobe >/dev/null && ffprobe -v error -show_entries stream=codec_type,codec_name,duration \
		-of compact=p=0 $(OUT)/demo.mp4 || true
	@echo "demo video: $(OUT)/demo.mp4"

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	@mkdir -p $(OUT)/bench
	$(BIN)/python scripts/bench_generator.py --out $(OUT)/bench/generator.json
	$(BIN)/python scripts/bench_guidance.py --out $(OUT)/bench/guidance.json
	$(BIN)/python scripts/bench_compositor.py --out $(OUT)/bench/compositor.json
	$(BIN)/python scripts/bench_audio.py --out $(OUT)/bench/audio.json
	$(BIN)/python scripts/bench_live.py --out $(OUT)/bench/live.json

soak: setup
	@mkdir -p $(OUT)/bench
	$(BIN)/python scripts/soak.py --seconds 1800 --out $(OUT)/bench/soak.json --keep $(OUT)/soak

clean:
	rm -rf $(OUT) .pytest_cache

# For the lent GPU machine, which has no network: `make wheels` (here) fetches into .whl/ and .gl/ what its image
# lacks; `make gpu-check` runs scripts/gpu_check.py there (carry .whl and .gl) or here, results in $(OUT)/gpu-check.
.PHONY: wheels gpu-check

wheels: $(VENV)/.installed
	@VENV=$(VENV) scripts/gpu_wheels.sh

gpu-check:
	@VENV=$(VENV) scripts/gpu_check.sh $(OUT)/gpu-check

# `make device-versions`: the CPU precision and engine tests and the device check's CPU run under the lent GPU
# machine's versions (Python 3.12, torch 2.11, its image's packages and the carried wheels' in .venv-device, vj run
# from the checkout as there), so that API drift shows here before a lease is spent. Not part of `make test` or CI.
.PHONY: device-versions

device-versions:
	@scripts/device_versions_check.sh $(OUT)/device-versions
