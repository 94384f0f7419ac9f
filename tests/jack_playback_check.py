"""Run by test_audio_jack.py: rehearsal playback on a JACK dummy server; the server is killed mid-track (the
track is followed silently, reported) and started again (playback resumes by itself); the show clock never stops
or jumps. Prints one JSON line of what it saw. This process never loads PortAudio: only the playback child does.
conftest (and torch with it) is imported under __main__ only: each child imports this script again (multiprocessing's
spawn), and with torch took some 5 s to start, as long as a reopened device is given (OPEN_TIMEOUT_S)."""

from __future__ import annotations

import threading
import time

from vj.audio.playback import Playback
from vj.audio.testsignals import drum_pattern


def check(jackd) -> dict:
    pattern = drum_pattern(120, 30, seed=0)
    player = Playback(pattern.samples, pattern.sample_rate, 256, device="system").start()
    seen: dict = {"started": player.status, "lost_at_start": player.lost}
    clocks: list[tuple[float, float]] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            clocks.append((time.perf_counter(), player.clock))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    time.sleep(2.0)
    jackd.kill()  # the audio server dies mid-track
    seen["lost_reported"] = wait_for(lambda: player.lost, 5.0)
    seen["status_when_lost"] = player.status
    written = player.ring.written
    time.sleep(2.0)
    seen["analysis_fed_while_lost_s"] = (player.ring.written - written) / pattern.sample_rate
    jackd.start()  # ... and comes back, under the same name
    seen["reopened"] = wait_for(lambda: not player.lost, 20.0)
    seen["status_after"] = player.status
    time.sleep(1.5)
    sampling.set()
    sampler.join()
    player.seek(1.0)
    seen["clock_after_seek"] = wait_for(lambda: abs(player.clock - 1.0) < 0.1, 2.0)
    player.stop()
    seen["clock_steps"] = [(b[1] - a[1], b[0] - a[0]) for a, b in zip(clocks, clocks[1:])]
    return seen


if __name__ == "__main__":
    from conftest import run_check_on_own_jack, wait_for  # here: not in each child (see above)

    run_check_on_own_jack(check)
