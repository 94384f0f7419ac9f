"""Run by test_tempo.py inside a network namespace of its own with only loopback up (Link multicasts): a Link peer of
the test's own (link_check.py's, set to 120 BPM, started once vj follows) and `vj live --headless` following it with
`cues.quantize = "bar"`, recording (for its control log and frame times) and sending OSC feedback here. Mid-bar a
cue jump and a live prompt are sent over OSC; then the peer moves to 128 BPM, to 140, stops and starts again, while
vj's feedback says its tempo, its transport and its beat. What happened when (the peer's beat just before the
send, the feedback's arrival, vj's control log, the recording's frame times, vj's beat beside the peer's at the
same instants, how long each change took to come back) is printed as one JSON line for the test to judge.

    python tests/link_cue_check.py OUT_DIR VJ_COMMAND...    # the vj command line without the ports
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient

from link_check import Peer

OSC_PORT, FEEDBACK_PORT = 9010, 9011   # a namespace of its own: nothing else listens here
PROMPT = "a glass cathedral"


class Feedback:
    """vj's OSC feedback, each message stamped with perf_counter as it arrives."""

    def __init__(self):
        self.got: list[tuple[float, str, object]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", FEEDBACK_PORT))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            at, message = time.perf_counter(), OscMessage(data)
            self.got.append((at, message.address, message.params[0] if message.params else None))

    def since(self, address: str, after: float) -> list[tuple[float, object]]:
        return [(at, value) for at, a, value in list(self.got) if a == address and at > after]

    def first(self, address: str, test, after: float = 0.0) -> float | None:
        return next((at for at, a, value in list(self.got) if a == address and at > after and test(value)), None)

    def wait(self, address: str, test, timeout: float, after: float = 0.0, alive=lambda: True) -> float | None:
        """When the first such message after `after` arrived; None after `timeout`, or once `alive()` is False."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline and alive():
            if (at := self.first(address, test, after)) is not None:
                return at
            time.sleep(0.005)
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def phase_errors_ms(peer: Peer, feedback: Feedback, after: float, seconds: float) -> tuple[list[float], dict]:
    """vj's beat feedback for `seconds` after `after`, each value (the beat in the bar as vj sent it) minus the
    peer's beat in the bar as the datagram arrived, in milliseconds. The peer's tempo holds meanwhile, so one reading
    of it, taken after, places its grid at any instant. Each error includes the datagram's way over loopback (vj's
    beat is read just before its send, the arrival stamped just after the receive): a late arrival reads as vj
    behind. Also the peer's reading."""
    time.sleep(seconds)
    theirs = peer.say("beat")
    errors = []
    for at, value in feedback.since("/vj/state/beat", after):
        peer_beat = theirs["beat"] + (at - theirs["at"]) * theirs["bpm"] / 60.0
        errors.append(((value - peer_beat + 2.0) % 4.0 - 2.0) * 60000.0 / theirs["bpm"])
    return errors, theirs


def following_the_peer(peer: Peer, feedback: Feedback) -> dict:
    """The peer moves to 128 BPM and to 140 (the beat compared for 2 s at each), stops for a second and starts: how long
    each change took to come back in vj's feedback (None: it did not, within 2 s), the errors of vj's beat, and how
    many beats vj sent while stopped."""
    seen: dict = {}
    for bpm in (128.0, 140.0):
        changed = peer.say(f"tempo {bpm:g}")["at"]
        followed = feedback.wait("/vj/state/bpm", lambda v, bpm=bpm: abs(v - bpm) < 0.1, 2.0, after=changed)
        seen[f"to_{bpm:g}_s"] = None if followed is None else followed - changed
        seen[f"phase_ms_{bpm:g}"], seen[f"peer_{bpm:g}"] = phase_errors_ms(peer, feedback, changed + 0.5, 2.5)
        seen[f"bpm_{bpm:g}"] = [value for _, value in feedback.since("/vj/state/bpm", followed or changed)]
    stopped = peer.say("play 0")["at"]
    followed = feedback.wait("/vj/state/playing", (0).__eq__, 2.0, after=stopped)
    seen["stop_s"] = None if followed is None else followed - stopped
    time.sleep(1.0)  # over two beats at 140: none should come while stopped
    started = peer.say("play 1")["at"]
    seen["beats_while_stopped"] = len([at for at, _ in feedback.since("/vj/state/beat", (followed or stopped) + 0.05)
                                       if at < started])
    followed = feedback.wait("/vj/state/playing", (1).__eq__, 2.0, after=started)
    seen["start_s"] = None if followed is None else followed - started
    return seen


def main(out: Path, command: list[str]) -> dict:
    seen: dict = {}
    peer = Peer()
    peer.say("tempo 120")  # and starts once vj follows: Link tells no newcomer that a session already plays (vj
                           # would take the grid as running, and see no stop until it had seen a start)
    feedback = Feedback()
    sheet = out / "show.lrc"
    # the jump goes to 10:00; a second later the {q=bar} cue's own time comes, while the peer plays 128 BPM
    sheet.write_text("[00:00.00]a quiet field at dawn\n[10:00.00]a neon city at night\n"
                     "[10:01.00]a stained glass window {q=bar}\n")
    recording = out / "show.mp4"
    vj = subprocess.Popen([*command, "--lrc", str(sheet), "--record", str(recording), "--set", "cues.quantize=bar",
                           "--set", "control.tempo_source=link", "--set", f"control.osc_port={OSC_PORT}",
                           "--set", f"control.osc_feedback=127.0.0.1:{FEEDBACK_PORT}"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(iter(vj.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        # following the peer: the feedback says 120 from Link
        following = feedback.wait("/vj/state/bpm", lambda v: abs(v - 120.0) < 0.1, 60.0,
                                  alive=lambda: vj.poll() is None)
        # the source's name comes in a datagram of its own just after the tempo: waited for, not merely looked up
        seen["following"] = following is not None and feedback.wait("/vj/state/tempo", "link".__eq__, 2.0) is not None
        if not seen["following"]:
            return seen
        peer.say("play 1")  # vj's grid ran already (see above): nothing to see in its feedback but the start itself
        client = SimpleUDPClient("127.0.0.1", OSC_PORT)
        reading, deadline = peer.say("beat"), time.perf_counter() + 5.0
        while not 1.9 <= reading["beat"] % 4.0 <= 2.1 and time.perf_counter() < deadline:  # mid-bar: the next
            time.sleep(0.01)                                                              # downbeat 1 s away
            reading = peer.say("beat")
        sent = time.perf_counter()
        client.send_message("/vj/cue/next", [])
        client.send_message("/vj/prompt", PROMPT)
        seen.update(peer_before_send=reading, sent=sent)
        seen["cue_at"] = feedback.wait("/vj/state/cue", (1).__eq__, 5.0, after=sent)
        # The press held, then cleared (its own datagram, just after the cue's). A once-a-second repeat of "" can come
        # between the send and the press's taking: the list starts at the first held line.
        taken = feedback.wait("/vj/state/held", bool, 2.0, after=sent)
        feedback.wait("/vj/state/held", "".__eq__, 2.0, after=taken or sent)
        seen["held"] = [(at - sent, value) for at, value in feedback.since("/vj/state/held", (taken or sent) - 1e-6)]
        seen["prompt_at"] = feedback.wait("/vj/state/prompt", PROMPT.__eq__, 5.0, after=sent)
        seen["peer_after"] = peer.say("beat")
        seen.update(following_the_peer(peer, feedback))
        seen["held_cue_at"] = feedback.first("/vj/state/cue", (2).__eq__)
        client.send_message("/vj/quit", [])
        seen["vj_exit"] = vj.wait(timeout=30)
    finally:
        if vj.poll() is None:
            vj.kill()
            vj.wait()
        reader.join(timeout=5)
        feedback.close()
        peer.close()
        seen["vj_returned"] = vj.poll()
        seen["vj_said"] = "".join(said)  # whole: a show that ended early says why somewhere in it
    log = [json.loads(line) for line in recording.with_suffix(".controls.jsonl").read_text().splitlines()]
    seen["log"] = [line for line in log if line["what"] in ("cue_next", "prompt", "clock", "cue_starts")]
    with av.open(str(recording)) as container:
        video = container.streams.video[0]
        seen["frame_times"] = sorted(float(p.pts * p.time_base) for p in container.demux(video) if p.pts is not None)
    return seen


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2:])), flush=True)
