"""Ableton Link in: the session's tempo, beat and transport as `Tempo` readings (the optional `aalink` package).

A follower: vj never sets the session's tempo, beat or transport. (Like every Link app it is a member of the
session, though, and Link keeps the older of two sessions that meet: a peer that enables Link after vj has been
alone on the network for a while adopts vj's session, at Link's starting 120 BPM. Enable Link on the rig first.)
Link aligns the phase within the bar (`quantum` beats), not the count of bars: vj's beat 0 is a downbeat of the
session, its bar numbers are its own.

aalink is asyncio-based: its `Link` lives in an event loop on a thread of its own (`vj-link`), which reads the
session every `POLL_S` into an immutable `Tempo`; `read()` returns the newest one and never waits. The beat is
read between two `perf_counter()` calls and stamped with their midpoint: Link's clock is the host's monotonic
clock, so a reading extrapolated with `Tempo.beat_at` stays on the session's grid to within microseconds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from vj.control.tempo import Tempo
from vj.errors import UserError

log = logging.getLogger(__name__)

POLL_S = 0.01                           # how often the session is read (a tempo change reaches vj this late)
START_BPM = 120.0                       # the tempo of vj's own session until it meets a peer (never proposed)


class LinkUnavailable(UserError):
    """aalink is not installed."""


class LinkFollower:
    name = "link"

    def __init__(self, quantum: float = 4.0):  # beats per bar: where the session's downbeats are
        try:
            import aalink
        except ImportError:
            raise LinkUnavailable("control.tempo_source = \"link\" needs Ableton Link: pip install 'vj[link]' "
                                  "(aalink, GPL-3.0-or-later)") from None
        self._aalink, self.quantum = aalink, quantum
        self._reading = Tempo(0.0, 0.0, time.perf_counter(), False, self.name, quantum)
        self.peers = 0                  # other apps in the session
        self._seen_playing = False
        self._stop = threading.Event()
        self._up = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._follow()), name="vj-link", daemon=True)
        self._thread.start()
        self._up.wait(5.0)
        if self._error is not None:
            raise LinkUnavailable(f"Ableton Link did not start: {self._error}")

    async def _follow(self) -> None:
        try:
            link = self._aalink.Link(START_BPM)  # in the running loop: aalink calls back into it
            link.quantum = self.quantum
            link.start_stop_sync_enabled = True  # receive the transport (a follower never sends it)
            link.enabled = True
        except Exception as e:  # noqa: BLE001  said by the constructor, in the caller's thread
            self._error = e
            self._up.set()
            return
        self._up.set()
        log.info("Ableton Link: following the session on the local network")
        try:
            while not self._stop.is_set():
                self._publish(link)
                await asyncio.sleep(POLL_S)
        finally:
            link.enabled = False

    def _publish(self, link) -> None:
        peers = link.num_peers
        before = time.perf_counter()
        beat = link.beat
        at = (before + time.perf_counter()) / 2
        playing = link.playing
        # Start/stop sync is optional in Link: a peer that never shares its transport leaves the session "stopped"
        # for good. Until the session has been seen playing, its grid counts as running.
        self._seen_playing = self._seen_playing or playing
        if peers != self.peers:
            log.info("Ableton Link: %d peer%s", peers, "" if peers == 1 else "s")
        self.peers = peers
        if peers == 0:  # alone: vj's own session has nothing to follow
            self._reading = Tempo(0.0, beat, at, False, self.name, self.quantum)
        else:
            self._reading = Tempo(link.tempo, beat, at, playing or not self._seen_playing, self.name, self.quantum)

    def read(self) -> Tempo:
        return self._reading

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
