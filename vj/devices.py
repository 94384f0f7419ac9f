"""`vj devices`: what this machine offers a show (audio devices, MIDI ports, OpenGL, CUDA), each probed safely."""

from __future__ import annotations

import os
from typing import Callable

from vj.control.midi import ALSA_SEQUENCER


def _audio() -> list[str]:
    import sounddevice

    lines = []
    for index, dev in enumerate(sounddevice.query_devices()):
        host = sounddevice.query_hostapis(dev["hostapi"])["name"]
        lines.append(f"{index}: {dev['name']} ({host}; in {dev['max_input_channels']}, out "
                     f"{dev['max_output_channels']}, {dev['default_samplerate']:.0f} Hz)")
    return lines or ["(no audio devices)"]


def _midi() -> list[str]:
    import rtmidi

    lines = []
    for api in rtmidi.get_compiled_api():
        name = rtmidi.get_api_display_name(api)
        if api == rtmidi.API_LINUX_ALSA and not os.path.exists(ALSA_SEQUENCER):
            lines.append(f"{name}: unavailable (no sequencer: {ALSA_SEQUENCER} is missing)")
            continue
        try:
            midi_in = rtmidi.MidiIn(api)
        except rtmidi.SystemError as e:
            lines.append(f"{name}: unavailable ({e})")
            continue
        ports = midi_in.get_ports()
        lines.append(f"{name}: " + (", ".join(f"{i}: {p}" for i, p in enumerate(ports)) if ports else "(no input ports)"))
        midi_in.delete()
    return lines or ["(no MIDI API compiled in)"]


def _opengl() -> list[str]:
    from vj.render.compositor import headless_context

    ctx = headless_context()
    try:
        return [f"{ctx.info['GL_RENDERER']} (OpenGL {ctx.info['GL_VERSION']}, headless EGL)"]
    finally:
        ctx.release()


def _cuda() -> list[str]:
    import torch

    if not torch.cuda.is_available():
        return [f"(none; torch {torch.__version__} runs on the CPU)"]
    return [f"{i}: {torch.cuda.get_device_name(i)} ({torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB)"
            for i in range(torch.cuda.device_count())]


PROBES: dict[str, Callable[[], list[str]]] = {"audio": _audio, "midi": _midi, "opengl": _opengl, "cuda": _cuda}


def describe_devices() -> dict[str, list[str]]:
    out = {}
    for section, probe in PROBES.items():
        try:
            out[section] = probe()
        except Exception as e:  # noqa: BLE001  a missing driver or library must not hide the other sections
            out[section] = [f"unavailable: {type(e).__name__}: {e}"]
    return out
