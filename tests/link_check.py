"""Run by test_tempo.py inside a network namespace of its own with only loopback up (Link multicasts: it must never
reach a real network from the tests): a Link peer of the test's own (aalink, in a child process) sets 128 BPM;
vj's `LinkFollower` joins; the peer starts, changes the tempo, stops and starts again. What the follower read,
beside what the peer said at the same perf_counter instants, is printed as one JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from vj.control.link import LinkFollower

PEER = """
import asyncio, sys, time
import aalink

async def main():
    link = aalink.Link(128.0)
    link.quantum = 4
    link.start_stop_sync_enabled = True
    link.enabled = True
    loop = asyncio.get_running_loop()
    print("up", flush=True)
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command, *args = line.split()
        if command == "tempo":
            link.tempo = float(args[0])
        elif command == "play":
            link.playing = args[0] == "1"
        before = time.perf_counter()
        beat = link.beat
        at = (before + time.perf_counter()) / 2
        print(at, beat, link.tempo, int(link.playing), link.num_peers, flush=True)

asyncio.run(main())
"""


class Peer:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", PEER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout.readline().strip() == "up"

    def say(self, command: str) -> dict:
        """Sends a command ("beat", "tempo 140", "play 0"); what the peer's session was just after it."""
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        at, beat, tempo, playing, peers = self.proc.stdout.readline().split()
        return {"at": float(at), "beat": float(beat), "bpm": float(tempo), "playing": playing == "1",
                "peers": int(peers)}

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=5)


def phase_errors_ms(peer: Peer, follower: LinkFollower, count: int = 5) -> list[float]:
    """The follower's beat minus the peer's at the instants the peer read its own, in milliseconds, within the bar:
    Link aligns the phase in the bar (quantum 4), each app counts its own bars."""
    errors = []
    for _ in range(count):
        theirs = peer.say("beat")
        ours = follower.read()
        apart = (ours.beat_at(theirs["at"]) - theirs["beat"] + 2.0) % 4.0 - 2.0
        errors.append(apart * 60000.0 / theirs["bpm"])
        time.sleep(0.02)
    return errors


def until(predicate, timeout: float) -> float | None:
    """perf_counter time at which predicate first held (polled every millisecond), None if it never did."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if predicate():
            return time.perf_counter()
        time.sleep(0.001)
    return None


def main() -> dict:
    peer = Peer()
    # Link keeps the older of two sessions that meet (by more than 0.5 s, it says; with 0.7 s here the peer still
    # joined the follower's session in half the runs): the peer's must be the older one
    time.sleep(1.5)
    follower = LinkFollower()
    seen: dict = {}
    try:
        joined = until(lambda: follower.peers >= 1 and follower.read().bpm > 0, 10.0)
        seen["joined"] = joined is not None
        seen["peer_after_join"] = peer.say("beat")
        # Link does not hand a joining peer the transport (start/stop sync shares changes): until it has been
        # seen playing, the follower's grid runs
        seen["playing_before_any_start"] = follower.read().playing
        peer.say("play 1")
        time.sleep(0.2)  # the first clock measurements settle
        seen["bpm"] = follower.read().bpm
        seen["playing"] = follower.read().playing
        seen["phase_ms"] = phase_errors_ms(peer, follower)
        changed = peer.say("tempo 140")["at"]
        followed = until(lambda: abs(follower.read().bpm - 140.0) < 0.1, 2.0)
        seen["tempo_change_s"] = None if followed is None else followed - changed
        seen["phase_ms_after_change"] = phase_errors_ms(peer, follower)
        stopped = peer.say("play 0")["at"]
        followed = until(lambda: not follower.read().playing, 2.0)
        seen["stop_s"] = None if followed is None else followed - stopped
        started = peer.say("play 1")["at"]
        followed = until(lambda: follower.read().playing, 2.0)
        seen["start_s"] = None if followed is None else followed - started
        seen["peer_at_end"] = peer.say("beat")  # the follower changed nothing in the session
    finally:
        follower.close()
        peer.close()
    return seen


if __name__ == "__main__":
    print(json.dumps(main()), flush=True)
