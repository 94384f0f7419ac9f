"""libjack talks on stderr: its messages go to vj's log at DEBUG instead.

libjack prints several lines each time a client fails to reach a server ("Cannot connect to server socket ...",
"jack server is not running ...", "JackShmReadWritePtr::~JackShmReadWritePtr ..."): once a second while vj
watches for a MIDI port or reopens a lost audio device with no JACK server there. vj already says what it means
for the show in one line of its own (no audio input, MIDI port gone, ...). libjack lets a program install its own
message handler; python-rtmidi carries a libjack of its own beside the system's, so each copy gets one.

ALSA's "ALSA lib seq_hw.c ... failed" (a machine with no sequencer) is not handled here: its handler is variadic,
and a ctypes callback for it crashed the process (seen under rtmidi). `control/midi.py` does not ask ALSA for MIDI
ports where there is no sequencer device instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import logging
import os

log = logging.getLogger(__name__)

_JACK_MESSAGE = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
_handlers: list = []                    # the ctypes callbacks must outlive the libraries' use of them
_quieted: set[str] = set()


def _jack_message(text: bytes) -> None:
    log.debug("libjack: %s", text.decode(errors="replace").strip())


def _jack_libraries() -> list[str]:
    found = [ctypes.util.find_library("jack") or "libjack.so.0"]
    try:  # python-rtmidi's own copy (a wheel's bundled libraries sit beside the package)
        import rtmidi

        found += glob.glob(os.path.join(os.path.dirname(rtmidi.__file__), "..", "python_rtmidi*", "libjack*.so*"))
    except ImportError:
        pass
    return found


def quiet_native_libraries() -> None:
    """Installs the handlers (idempotent; call in each process that loads the libraries)."""
    for path in _jack_libraries():
        if path in _quieted:
            continue
        try:
            lib = ctypes.CDLL(path)
            handler = _JACK_MESSAGE(_jack_message)
            lib.jack_set_error_function(handler)
            lib.jack_set_info_function(handler)
        except (OSError, AttributeError):  # no JACK here, or not this library: nothing to quiet
            continue
        _handlers.append(handler)
        _quieted.add(path)
