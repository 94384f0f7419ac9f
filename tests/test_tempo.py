"""Tempo sources: MIDI clock from a real port on a JACK server of the test's own (jittered clock at 120, then 174
BPM; Start, Stop, Continue, Song Position; silence), an Ableton Link peer of the test's own in a private network
namespace, the choice among sources ("auto"), and the beat the show's audio features take from the one in use."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import LIVE_TINY, REPO, VJ, JackServer, virtual_out, wait_for
from vj.audio.features import AudioFeatures
from vj.config import ControlConfig
from vj.control.clock_in import CLOCK, CONTINUE, SONG_POSITION, START, STOP, ClockFollower, fit_line
from vj.control.showlog import ControlLogWriter, read_show_log
from vj.control.tempo import AudioTempo, BeatCounter, Tempo, TempoSelector, open_tempo, with_tempo
from vj.errors import UserError
from vj.render.hud import tempo_text

HOP_S = 256 / 48000                     # an audio block at the default settings


# -- MIDI clock --------------------------------------------------------------------------------------------------
def test_the_fit_is_least_squares_and_leaves_out_a_clock_held_up():
    rng = np.random.default_rng(0)
    numbers = np.arange(1000, 1096)
    times = 5000.0 + numbers * (60 / 174 / 24) + rng.uniform(0.001, 0.002, numbers.size)
    period = fit_line(list(zip(numbers.tolist(), times.tolist()))).period
    assert period == pytest.approx(np.polyfit(numbers, times, 1)[0], rel=1e-9)  # the reference
    times[-3] += 0.005  # one clock 5 ms late, near the end: moves the plain fit by 0.15 BPM at 174
    period = fit_line(list(zip(numbers.tolist(), times.tolist()))).period
    assert abs(60 / 24 / period - 174) < 0.05 < abs(60 / 24 / np.polyfit(numbers, times, 1)[0] - 174)


def feed_clocks(follower: ClockFollower, times: np.ndarray) -> None:
    follower.feed([START], float(times[0]) - 0.01)
    for at in times:
        follower.feed([CLOCK], float(at))


@pytest.mark.parametrize("step_s", [0.02, -0.015])
def test_a_delay_that_stays_is_not_a_new_tempo(step_s):
    """Every clock from the 60th on comes 20 ms later (or 15 ms sooner): a stalled server, a resynchronised
    interface. Twelve clocks on, the tempo is still 120; a plain least-squares window is off by most of a BPM."""
    period = 60 / 120 / 24
    times = 100.0 + np.arange(72) * period + np.random.default_rng(1).uniform(0.001, 0.002, 72)
    times[60:] += step_s
    follower = ClockFollower()
    feed_clocks(follower, times)
    assert abs(follower.reading(float(times[-1])).bpm - 120) < 0.1
    plain = 60 / 24 / np.polyfit(np.arange(72), times, 1)[0]
    assert abs(plain - 120) > 0.5


def test_a_new_tempo_is_read_within_two_beats():
    rng = np.random.default_rng(2)
    periods = np.r_[np.full(96, 60 / 120 / 24), np.full(48, 60 / 126 / 24)]  # 120, then 126 BPM: 5 % faster
    times = 100.0 + np.r_[0.0, np.cumsum(periods)[:-1]] + rng.uniform(0.001, 0.002, periods.size)
    follower = ClockFollower()
    feed_clocks(follower, times)
    assert abs(follower.reading(float(times[-1])).bpm - 126) < 0.2


class LostClocks(Exception):
    """The test's own JACK server dropped MIDI (a loaded machine): the transport failed, not the follower."""


class ClockSender:
    """Plays MIDI clock into a port: each clock 1-2 ms late at random (a USB interface's jitter) on a nominal grid,
    keeping the song position as a device does. A second client on the port (plain rtmidi) hears when each clock
    reached Python, as the follower does: the beat to expect is the song's on the nominal grid, moved by the
    transport's delay as heard (a loaded test machine's JACK server can fall 20 ms behind and stay there)."""

    def __init__(self, out, port_match: str, seed: int = 1, counted=None):
        import rtmidi

        self.counted = counted  # the follower's clock count (its song position), to tell its losses from its faults
        self.out, self.rng = out, random.Random(seed)
        self.next_at = time.perf_counter() + 0.05  # nominal time of the next clock
        self.period = 60 / 120 / 24
        self.position, self.running = 0, False  # the clock the next one plays (in clocks); transport
        self.sent: list[float] = []             # nominal time of each clock sent
        self.heard: list[float] = []            # perf_counter when each reached the second client
        self.ear = rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK)
        self.ear.ignore_types(timing=False)
        self.ear.set_callback(lambda event, _: self.heard.append(time.perf_counter()) if event[0] == [CLOCK] else 0)
        self.ear.open_port(next(i for i, name in enumerate(self.ear.get_ports()) if port_match in name))

    def send(self, *message: int) -> None:
        self.out.send_message(list(message))
        if message[0] in (START, CONTINUE):
            self.running = True
            self.position = 0 if message[0] == START else self.position
        elif message[0] == STOP:
            self.running = False
        elif message[0] == SONG_POSITION:
            self.position = 6 * (message[1] | message[2] << 7)

    def clocks(self, bpm: float, count: int) -> None:
        self.period = 60 / bpm / 24
        if not self.sent:  # the grid starts now: a grid begun in the past would be caught up in a burst, and a
            self.next_at = time.perf_counter() + 0.005  # 32-frame period's MIDI buffer drops what does not fit
        for _ in range(count):
            time.sleep(max(0.0, self.next_at + self.rng.uniform(0.001, 0.002) - time.perf_counter()))
            self.out.send_message([CLOCK])
            self.sent.append(self.next_at)
            self.played_at, self.next_at = self.next_at, self.next_at + self.period
            self.position += self.running
        if not wait_for(lambda: len(self.heard) == len(self.sent), 1.0):
            raise LostClocks(f"the JACK server lost clocks ({len(self.heard)} of {len(self.sent)} heard): is the "
                             "machine overloaded?")
        if self.counted is not None and not wait_for(lambda: self.counted() == self.position, 0.5):
            raise LostClocks(f"the follower's port got {self.counted()} clocks of {self.position} (JACK skipped its "
                             "client for a cycle: the second client heard them all)")
        time.sleep(0.002)  # the follower's callback comes a moment after the ear's

    def beat_at(self, now: float) -> float:
        """The song's beat at `now` (the transport running), as the clocks arrive."""
        delay = float(np.median(np.subtract(self.heard[-12:], self.sent[-12:])))
        return (self.position - 1 + (now - delay - self.played_at) / self.period) / 24

    def close(self) -> None:
        self.ear.close_port()
        self.ear.delete()


def test_midi_clock_from_a_real_port(monkeypatch):
    """Tempo within 0.2 BPM two beats after each change, under 1-2 ms of jitter; the beat where the song is, also
    right after Continue and a Song Position Pointer; stopped on Stop and after a silence. A run in which the test's
    JACK server dropped clocks (a loaded machine; on this VM sometimes only to the follower's client, which then
    counts a clock short: a real fault on stage too, see the session notes) is run again, up to five runs."""
    for attempt in range(5):  # the transport's losses, not the follower's faults, are retried
        try:
            return clock_run(monkeypatch)
        except LostClocks:
            if attempt == 4:
                raise


def clock_run(monkeypatch) -> None:
    server = JackServer(frames=32)  # MIDI moves once a period: 0.67 ms
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    server.start()
    out, tempo, send = virtual_out("vj-test-clock"), None, None
    try:
        # control.midi_clock_port names the port; "auto" takes the clock while it arrives (no Link: no aalink)
        monkeypatch.setitem(sys.modules, "aalink", None)
        tempo = open_tempo(ControlConfig(tempo_source="auto", midi_clock_port="test-clock"), lambda: AudioFeatures())
        assert wait_for(lambda: len(tempo.sources["midi_clock"].midi.ports) == 1)
        send = ClockSender(out, "test-clock", counted=lambda: tempo.sources["midi_clock"].follower.state.position)
        time.sleep(0.2)
        assert tempo.read().source == "audio"
        send.send(START)
        seen = []
        for bpm, count in ((120, 48), (120, 24), (174, 48)):
            send.clocks(bpm, count)
            now, reading = time.perf_counter(), tempo.read()
            seen.append((bpm, reading.bpm, reading.beat_at(now) - send.beat_at(now)))
            assert reading.source == "midi_clock" and reading.playing
        for bpm, heard, beat_error in (seen[0], seen[2]):  # two beats after the start, and after the change
            assert abs(heard - bpm) < 0.2, seen
        assert all(abs(beat_error) < 0.02 for _, _, beat_error in seen), seen

        features = tempo.features(lambda: AudioFeatures(rms=0.5), HOP_S, 0.25)()
        assert features.bpm == pytest.approx(174, abs=0.2) and features.rms == 0.5  # the beat replaced, not the rest

        send.clocks(174, 12)  # half a beat on
        send.send(STOP)
        send.clocks(174, 12)  # devices keep the clock going while stopped
        stopped = tempo.read()
        assert not stopped.playing and abs(stopped.bpm - 174) < 0.2 and stopped.beat == 5.5  # 132 clocks played

        send.send(CONTINUE)
        send.clocks(174, 1)
        now, resumed = time.perf_counter(), tempo.read()
        assert resumed.playing and 5.5 <= send.beat_at(now) < 5.55  # on from where it stopped: phase 0.5
        assert abs(resumed.beat_at(now) - send.beat_at(now)) < 0.02
        send.clocks(174, 23)
        send.send(STOP)
        send.send(SONG_POSITION, 37, 0)  # sixteenth 37: beat 9.25
        send.send(CONTINUE)
        send.clocks(174, 1)
        now, moved = time.perf_counter(), tempo.read()
        assert moved.playing and 9.25 <= send.beat_at(now) < 9.3
        assert abs(moved.beat_at(now) - send.beat_at(now)) < 0.02

        time.sleep(0.35)  # no clock and no Stop: a cable pulled
        silent = tempo.read()
        assert silent.source == "audio" and tempo.sources["midi_clock"].read().bpm == 0.0
        assert not tempo.sources["midi_clock"].read().playing
    finally:
        if send is not None:
            send.close()
        if tempo is not None:
            tempo.close()
        out.delete()
        server.stop()


# -- Ableton Link ------------------------------------------------------------------------------------------------
def in_private_network(script: str, *args: str, timeout: float = 60, env: dict | None = None) -> dict:
    """Runs tests/SCRIPT ARGS in a network namespace with only loopback up (skips where none can be made): Link
    multicasts, and the tests never reach a real network with it. What the script printed last, as JSON."""
    pytest.importorskip("aalink", reason="aalink (vj[link]) is not installed")
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("no private network namespace can be made here (unshare or ip missing): Link stays untested "
                    "rather than multicast on this machine's network")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no private network namespace can be made here (unshare -n: {probe.stderr.strip()}): Link "
                    "stays untested rather than multicast on this machine's network")
    done = subprocess.run(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable,
                           str(REPO / "tests" / script), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_link_follower_in_a_private_network():
    """vj's follower and a Link peer of the test's own, both in a network namespace with only loopback up."""
    seen = in_private_network("link_check.py")
    assert seen["joined"] and seen["peer_after_join"]["bpm"] == 128.0, seen  # the follower moved nothing
    assert seen["playing_before_any_start"], seen  # Link does not tell a newcomer the transport: the grid runs
    assert abs(seen["bpm"] - 128.0) < 0.1 and seen["playing"], seen
    assert max(map(abs, seen["phase_ms"] + seen["phase_ms_after_change"])) < 2.0, seen
    assert seen["tempo_change_s"] is not None and seen["tempo_change_s"] < 0.2, seen
    assert seen["stop_s"] is not None and seen["stop_s"] < 0.2, seen
    assert seen["start_s"] is not None and seen["start_s"] < 0.2, seen
    assert seen["peer_at_end"]["bpm"] == 140.0 and seen["peer_at_end"]["playing"], seen


def test_vj_live_follows_a_link_peer_and_holds_a_cue_sent_mid_bar_to_the_next_downbeat(tmp_path):
    """`vj live --headless` following a Link peer at 120 BPM with cues.quantize = "bar": an OSC cue jump and a live
    prompt sent mid-bar take effect on the next downbeat less the lookahead, within one displayed frame, as the
    feedback's arrival and the control log say; the frame is the display interval there (the recording's). The
    lookahead is 100 ms, longer than a frame (33 ms at 30 fps): one left out would be seen.
    Then the peer goes to 128 BPM and 140, stops and starts, and vj's OSC feedback follows: its tempo within 0.1 BPM,
    its beat within 2 ms of the peer's (median; each sample also carries the datagram's way over loopback), each
    change back within 0.2 s (vj reads Link every 10 ms and sends a change in the next frame), no beat while
    stopped. The cue sheet's own {q=bar} cue, due while the peer plays 128, starts on its downbeat too."""
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"} | {
        "PYTHONUNBUFFERED": "1", "VJ_CACHE": str(REPO / ".pytest_cache" / "c")}
    seen = in_private_network("link_cue_check.py", str(tmp_path), *VJ, "live", "--headless", "--duration", "60",
                              *LIVE_TINY, "--set", "display.max_fps=30", "--set", "cues.lookahead_ms=100",
                              timeout=90, env=env)
    assert seen["following"], seen  # everything vj said, and its exit status, when it never followed
    assert seen["vj_exit"] == 0, seen["vj_said"][-4000:]
    lookahead = 0.100  # cues.lookahead_ms
    peer = seen["peer_before_send"]  # the downbeat after the send, on the peer's own grid
    downbeat = peer["at"] + (math.ceil(peer["beat"] / 4.0) * 4.0 - peer["beat"]) * 60.0 / peer["bpm"]
    due = downbeat - lookahead
    assert 0.8 < downbeat - seen["sent"] < 1.2, seen  # sent mid-bar: a second before the downbeat
    log = seen["log"]
    asked = next(line for line in log if line["what"] == "cue_next" and line["source"] == "osc")
    jumped = next(line for line in log if line["what"] == "clock" and line["value"]["show"] == 600.0)
    prompted = next(line for line in log if line["what"] == "prompt" and line["source"] == "osc")
    frames = seen["frame_times"]
    before = max(t for t in frames if t <= jumped["wall"])  # the frame displayed before the jump, and the one with it
    frame = min(t for t in frames if t > jumped["wall"]) - before
    assert frame < 0.1, (frame, frames)
    slack = 0.010  # loopback, thread wake-ups, the Link follower's phase (within 2 ms of the peer's)
    for what, at in (("cue", seen["cue_at"]), ("prompt", seen["prompt_at"])):  # the feedback, as each changed
        assert at is not None and due - slack <= at <= due + frame + slack, (what, at - due, frame, seen)
    # In the control log: how long the jump was held, from when vj's OSC thread took it (on a busy machine tens of
    # milliseconds after the send) to the frame it was made in
    held = jumped["wall"] - asked["wall"]
    assert due - seen["sent"] - 0.05 <= held <= due - seen["sent"] + frame + slack, (held, due - seen["sent"], frame)
    assert abs(prompted["wall"] - jumped["wall"]) <= frame + slack and prompted["value"] == "a glass cathedral", log
    # Meanwhile a control surface saw the press taken, and then land: /vj/state/held
    (taken_at, taken), (landed_at, landed) = seen["held"][0], seen["held"][-1]
    assert taken.startswith("held for the bar: next cue (osc)") and taken_at < 0.2, seen["held"]
    assert landed == "" and abs(landed_at - (seen["cue_at"] - seen["sent"])) <= frame + slack, seen["held"]

    # The sheet's {q=bar} cue (own time a second after the jump's 10:00) on the peer's next downbeat at 128 BPM
    peer_128, at = seen["peer_128"], seen["held_cue_at"]
    assert at is not None, seen
    beats_past = (peer_128["beat"] + (at - peer_128["at"]) * 128 / 60 + lookahead * 128 / 60) % 4.0
    seconds_past = ((beats_past + 2.0) % 4.0 - 2.0) * 60 / 128  # the screen's downbeat to the feedback's arrival
    assert -slack <= seconds_past <= frame + slack, (seconds_past, seen)
    placed = [line["value"] for line in log if line["what"] == "cue_starts"]
    assert placed and placed[-1]["2"] > 601.0, placed  # logged for a replay: where the show started it
    for bpm in (128, 140):
        assert seen[f"to_{bpm}_s"] is not None and seen[f"to_{bpm}_s"] < 0.2, seen
        assert seen[f"bpm_{bpm}"] and all(abs(value - bpm) < 0.1 for value in seen[f"bpm_{bpm}"]), seen
        errors = sorted(seen[f"phase_ms_{bpm}"])
        assert len(errors) >= 3 and abs(errors[len(errors) // 2]) < 2.0, (bpm, errors)
        assert all(abs(e) < 20.0 for e in errors), (bpm, errors)  # no sample a frame off
    assert seen["stop_s"] is not None and seen["stop_s"] < 0.2, seen
    assert seen["beats_while_stopped"] == 0, seen
    assert seen["start_s"] is not None and seen["start_s"] < 0.2, seen


# -- the choice, and the beat the show takes from it ------------------------------------------------------------
class Given:
    """A source reading what the test gives it (Link itself runs only in a private network: see above)."""

    def __init__(self, name: str, reading: Tempo):
        self.name, self.reading = name, reading

    def read(self) -> Tempo:
        return self.reading

    def close(self) -> None:
        pass


class FedClock:
    """A `ClockFollower` fed bytes at chosen times, as a source."""

    name = "midi_clock"

    def __init__(self):
        self.follower = ClockFollower()

    def play(self, bpm: float, count: int, last_at: float) -> None:
        period = 60 / bpm / 24
        self.follower.feed([START], last_at - count * period)
        for k in range(count):
            self.follower.feed([CLOCK], last_at - (count - 1 - k) * period)

    def read(self) -> Tempo:
        return self.follower.reading(time.perf_counter())

    def close(self) -> None:
        pass


def test_auto_prefers_a_link_peer_then_arriving_clock_then_the_audio(caplog):
    no_peer = Tempo(0.0, 3.0, time.perf_counter(), False, "link")
    link, clock = Given("link", no_peer), FedClock()
    audio = AudioTempo(lambda: AudioFeatures(t=1.0, bpm=100.0, beat_phase=0.25))
    auto = TempoSelector({"audio": audio, "link": link, "midi_clock": clock}, "auto")
    caplog.set_level(logging.INFO, logger="vj.control.tempo")
    assert auto.read().source == "audio" and auto.read().bpm == 100.0
    clock.play(140.0, 48, time.perf_counter())
    assert auto.read().source == "midi_clock" and auto.read().bpm == pytest.approx(140.0)
    link.reading = Tempo(128.0, 3.0, time.perf_counter(), False, "link")  # a peer, transport stopped
    assert auto.read().source == "link" and auto.source == "link"
    link.reading = no_peer
    assert auto.read().source == "midi_clock"
    clock.play(140.0, 48, time.perf_counter() - 1.0)  # the last clock a second ago: silence
    assert auto.read().source == "audio"
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "tempo from MIDI clock", "tempo from Link", "tempo from MIDI clock", "tempo from audio"]
    assert TempoSelector({"audio": audio, "link": link}, "link").read().bpm == 0.0  # named: kept without a peer


def test_the_audio_source_counts_its_beats():
    heard = iter([(0.1, 0.2), (0.2, 0.7), (0.3, 0.1), (0.4, 0.5), (0.5, 0.9), (0.6, 0.3)])
    current = {}
    audio = AudioTempo(lambda: current["f"])
    beats = []
    for t, phase in heard:
        current["f"] = AudioFeatures(t=t, bpm=120.0, beat_phase=phase)
        beats.append(audio.read().beat)
    assert beats == pytest.approx([0.2, 0.7, 1.1, 1.5, 1.9, 2.3])


def test_a_tap_on_the_one_makes_the_nearest_beat_a_downbeat():
    """vj's own tracker knows no bars; a performer's tap makes the beat nearest it the first of one, early or late
    by less than half a beat. Link's bars are left as they are, and with no beat a tap changes nothing."""
    current = {"f": AudioFeatures(t=10.0, bpm=120.0, beat_phase=0.3)}
    audio = AudioTempo(lambda: current["f"])
    audio.read()
    counted = audio.read().beat  # 0.3: the count starts at the first reading
    for phase, t in ((0.7, 10.2), (0.2, 11.0)):  # a tap a little before a beat, then one a little after another
        current["f"] = AudioFeatures(t=t, bpm=120.0, beat_phase=phase)
        before = audio.read()
        assert audio.mark_downbeat(before.at)
        after = audio.read()
        assert after.beat % 1.0 == pytest.approx(phase) and round(after.beat) % 4 == 0, (before.beat, after.beat)
        assert after.next_boundary(after.at, 4.0) - after.at == pytest.approx((4 - after.beat % 4) % 4 * 0.5)
    assert counted == pytest.approx(0.3)

    selector = TempoSelector({"audio": audio, "link": Given("link", Tempo(128.0, 5.0, 0.0, True, "link"))}, "link")
    selector.read()
    assert "Link" in selector.mark_downbeat(time.perf_counter())
    silent = TempoSelector({"audio": AudioTempo(lambda: AudioFeatures())}, "audio")
    assert "no beat" in silent.mark_downbeat(time.perf_counter())
    assert not silent.sources["audio"].mark_downbeat(time.perf_counter())


def test_the_beat_count_holds_when_readings_come_less_than_twice_a_beat():
    """A render at 5 fps of a track at 180 BPM reads every 0.6 beats (and at 2 fps every 1.5): the count follows
    the tempo, not only the phase's wraps."""
    for fps in (5.0, 2.0):
        counter = BeatCounter()
        for i in range(40):
            true_beat = 0.25 + i / fps * 3.0
            reading = counter.reading(AudioFeatures(t=i / fps, bpm=180.0, beat_phase=true_beat % 1.0), i / fps)
            assert reading.beat == pytest.approx(true_beat), (fps, i)


def test_features_take_the_beat_of_the_tempo_source():
    raw = AudioFeatures(t=9.0, rms=0.7, bands=(0.1, 0.2, 0.3), bpm=90.0, beat_phase=0.9, is_beat=True, beat=0.8)
    tempo = Tempo(120.0, 3.0, 100.0, True, "link")  # a beat at 100.0 s, then every 0.5 s
    on = with_tempo(raw, tempo, 100.002, HOP_S, 0.25)
    assert on.bpm == 120.0 and on.is_beat and on.beat == pytest.approx(math.exp(-0.002 / 0.25))
    assert (on.rms, on.bands, on.t) == (raw.rms, raw.bands, raw.t)
    half = with_tempo(raw, tempo, 100.25, HOP_S, 0.25)
    assert half.beat_phase == pytest.approx(0.5) and not half.is_beat and half.beat == pytest.approx(math.exp(-1))
    assert with_tempo(raw, tempo, 100.5 + HOP_S / 2, HOP_S, 0.25).is_beat  # the next beat
    stopped = with_tempo(raw, Tempo(120.0, 3.25, 100.0, False, "midi_clock"), 100.4, HOP_S, 0.25)
    assert stopped.bpm == 120.0 and (stopped.beat_phase, stopped.is_beat, stopped.beat) == (0.9, True, 0.8)  # heard
    unknown = with_tempo(raw, Tempo(0.0, 0.0, 100.0, False, "link"), 100.4, HOP_S, 0.25)
    assert unknown.bpm == 0.0 and (unknown.is_beat, unknown.beat) == (True, 0.8)
    audio = TempoSelector({"audio": AudioTempo(lambda: raw)}, "audio")
    assert audio.features(lambda: raw, HOP_S, 0.25)() is raw  # the tracker's own beat, untouched


def test_a_source_that_cannot_be_had_is_said_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "aalink", None)  # not installed
    with pytest.raises(UserError, match=r"pip install 'vj\[link\]'"):
        open_tempo(ControlConfig(tempo_source="link"), lambda: AudioFeatures())
    with pytest.raises(UserError, match="control.midi_clock_port"):
        open_tempo(ControlConfig(tempo_source="midi_clock"), lambda: AudioFeatures())
    auto = open_tempo(ControlConfig(tempo_source="auto"), lambda: AudioFeatures())  # what there is: the audio
    assert set(auto.sources) == {"audio"} and auto.read().source == "audio"


def test_hud_and_control_log_say_where_the_tempo_comes_from(tmp_path):
    assert tempo_text(128.0, "link") == "128.0 bpm (Link)" and tempo_text(0.0, "audio") == "tempo: listening"
    assert tempo_text(0.0, "midi_clock") == "tempo: waiting for MIDI clock"
    assert tempo_text(128.0, "audio", 0.62) == "128.0 bpm (audio, 62% sure)"  # the tracker says how sure it is
    assert tempo_text(140.0, "link", playing=False) == "140.0 bpm (Link, stopped)"  # cues held to it wait
    path = tmp_path / "show.controls.jsonl"
    writer = ControlLogWriter(path, {})
    for wall, source in ((0.0, "audio"), (0.5, "audio"), (1.0, "link"), (2.0, "link"), (3.0, "audio")):
        writer.tempo(wall, wall, source)
    writer.close(4.0, 4.0)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["wall"], line["value"]) for line in lines if line["what"] == "tempo"] == [
        (0.0, "audio"), (1.0, "link"), (3.0, "audio")]
    assert read_show_log(path).entries == []  # for people: a replay has nothing to apply


def test_a_tap_on_the_one_sets_the_bars_a_held_cue_jump_lands_on(tmp_path):
    """The show (tiny networks, offscreen) hearing a steady 120 BPM beat from its own tracker, cues.quantize =
    "bar": after a tap on the one (OSC /vj/downbeat) just after a beat, a cue jump sent mid-beat lands four beats
    after the tapped one, less the lookahead, as the feedback's arrival says. Twice, the second tap five beats after
    the first: without the tap the tracker's own bars (counted from its first reading) would put at least one of the
    two landings a beat or more away."""
    import socket
    import threading

    from pythonosc.osc_message import OscMessage
    from pythonosc.udp_client import SimpleUDPClient

    from conftest import free_port
    from vj import config
    from vj.app.show import run_show
    from vj.clock import WallClock
    from vj.cues.timeline import WatchedTimeline
    from vj.models.loading import load_models

    sheet = tmp_path / "cues.lrc"
    sheet.write_text("[00:00.00]cue 0\n[01:40.00]cue 1\n[03:20.00]cue 2\n")
    surface_port, osc_port, lookahead = free_port(), free_port(), 0.1
    cfg = config.load(None, ["model.generator=tiny", "model.clip=tiny", "display.width=64", "display.height=64",
                             "display.hud=false", "display.vsync=false", "display.max_fps=30", "cues.quantize=bar",
                             "cues.lookahead_ms=100", f"control.osc_port={osc_port}",
                             f'control.osc_feedback="127.0.0.1:{surface_port}"'])
    origin = time.perf_counter()  # the music's beat 0; its beats every 0.5 s

    def heard() -> AudioFeatures:  # what a tracker locked to the music says, as the audio runs
        now = time.perf_counter()
        return AudioFeatures(t=now, bpm=120.0, beat_phase=((now - origin) * 2.0) % 1.0)

    running, arrivals, expected, failure = threading.Event(), [], [], []

    client = SimpleUDPClient("127.0.0.1", osc_port)

    def performer() -> None:
        try:
            running.wait(120)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as surface:
                surface.bind(("127.0.0.1", surface_port))
                surface.settimeout(0.01)
                beat = math.ceil((time.perf_counter() + 0.5 - origin) * 2.0) / 2.0 + origin  # a beat or two on
                for cue in (1, 2):
                    for at, address in ((beat + 0.05, "/vj/downbeat"), (beat + 0.3, "/vj/cue/next")):
                        while time.perf_counter() < at:
                            time.sleep(0.001)
                        client.send_message(address, [])
                    expected.append(beat + 2.0 - lookahead)  # the bar from the tapped beat, less the lookahead
                    deadline = time.perf_counter() + 3.0
                    while time.perf_counter() < deadline:
                        try:
                            message = OscMessage(surface.recv(65536))
                        except socket.timeout:
                            continue
                        if message.address == "/vj/state/cue" and message.params[0] == cue:
                            arrivals.append(time.perf_counter())
                            break
                    beat += 2.5  # five beats on: a tap one beat later in the tracker's own count of four
        except BaseException as e:  # noqa: BLE001 - handed to the test's thread
            failure.append(e)
        finally:
            client.send_message("/vj/quit", [])

    driver = threading.Thread(target=performer, daemon=True)
    driver.start()
    clock = WallClock()
    run_show(cfg, clock, heard, WatchedTimeline(sheet, 0.0), duration=60.0, begin=clock.start,
             on_frame=lambda *_: running.set(), offscreen=True, models=load_models(cfg.model))
    driver.join(5)
    assert not failure, failure
    assert len(arrivals) == 2, (arrivals, expected)
    for arrived, due in zip(arrivals, expected):
        # a frame late at most, and a receive in a thread that shares the engine's interpreter (and its lock)
        assert -0.01 <= arrived - due <= 1 / 30 + 0.03, [a - d for a, d in zip(arrivals, expected)]
