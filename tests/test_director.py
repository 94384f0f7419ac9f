"""The frame plan (director), adaptive quality and the control log's replay: pure logic, no devices."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time

import numpy as np
import pytest

from vj.audio.features import SILENCE
from vj.config import Config, DirectorConfig
from vj.control.showlog import ControlLogWriter, ControlReplay, ShowLogError, read_show_log, show_header
from vj.cues.lrc import parse_lrc
from vj.cues.timeline import Timeline
from vj.control.state import ShowState
from vj.engine.director import Director
from vj.engine.quality import QualityGovernor

HEAD = '{"wall": 0, "t": 0, "source": "vj", "what": "show", "value": {"format": 1}}\n'
END = '{"wall": 2, "t": 2, "source": "vj", "what": "end"}\n'  # a good line after a bad one
SHEET = "[00:00.00]calm sea {steps=2}\n[00:04.00]storm {boost=8}\n[00:08.00]dawn\n"


LR = 0.03


def director(cfg=DirectorConfig()):
    state = ShowState.from_config(cfg)
    return state, Director(cfg, LR, state), Timeline(parse_lrc(SHEET), transition_s=0.0)


def test_cue_settings_apply_when_the_cue_starts_and_a_later_turn_wins():
    state, plan_for, timeline = director()
    assert plan_for.plan(0.0, SILENCE, timeline.at(0.0)).steps == 2      # {steps=2} from cue 0
    state.set("steps_per_frame", 5, "midi")                              # the performer turns it up
    assert plan_for.plan(1.0, SILENCE, timeline.at(1.0)).steps == 5      # same cue: the turn wins
    assert plan_for.plan(4.5, SILENCE, timeline.at(4.5)).steps == 5      # cue 1 sets no steps: unchanged
    assert state.snapshot().sources["steps_per_frame"] == "midi"


def test_cue_boost_raises_the_step_size_after_its_change():
    _, plan_for, timeline = director(DirectorConfig(cue_boost=1.0, cue_boost_decay_s=2.0))
    calm = plan_for.plan(3.9, SILENCE, timeline.at(3.9)).lr
    storm = plan_for.plan(4.0, SILENCE, timeline.at(4.0)).lr            # {boost=8} right at its start
    later = plan_for.plan(7.9, SILENCE, timeline.at(7.9)).lr
    assert storm == pytest.approx(8 * LR) and calm == pytest.approx(LR)
    assert LR < later < storm


def test_live_prompt_freeze_and_a_bad_override():
    state, plan_for, timeline = director()
    state.set_prompt("neon:2 | rain", "osc")
    plan = plan_for.plan(0.5, SILENCE, timeline.at(0.5))
    assert [(p.text, p.weight) for p in plan.prompts] == [("neon", 2.0), ("rain", 1.0)]
    state.set_prompt("a:1 | :2", "osc")                                # refused: the cue's prompt stays
    assert [p.text for p in plan_for.plan(0.6, SILENCE, timeline.at(0.6)).prompts] == ["calm sea"]
    state.set_flag("freeze", True, "key")
    assert plan_for.plan(0.7, SILENCE, timeline.at(0.7)).steps == 0


def test_governor_takes_steps_then_cutouts_and_gives_them_back():
    governor = QualityGovernor(budget_s=0.1, max_cutouts=16, min_cutouts=4)
    seen = []
    for _ in range(40):                                                 # far too slow: down to the floor
        q = governor.update(0.5, steps_asked=3)
        seen.append((min(3, q.step_cap), q.cutouts))
    assert seen[0] == (2, 16) and seen[-1] == (1, 4)
    assert seen.index((1, 8)) > seen.index((1, 16))                     # steps went first
    assert "1/3 steps x 4/16 cutouts (auto)" == governor.quality.describe(3)
    for _ in range(60):                                                 # lots of headroom: back to full
        governor.update(0.01, steps_asked=3)
    assert governor.quality.describe(3) == "3/3 steps x 16/16 cutouts"


def test_governor_holds_within_budget_and_ignores_frozen_frames():
    governor = QualityGovernor(budget_s=0.1, max_cutouts=16)
    for _ in range(20):
        governor.update(0.09, steps_asked=3)                            # within budget, no headroom to spare
        governor.update(5.0, steps_asked=0)                             # a held image costs nothing to learn from
    assert governor.quality.describe(3) == "3/3 steps x 16/16 cutouts"
    assert governor.lower_cutouts().cutouts == 8 and governor.quality.max_cutouts == 8  # out of memory


@pytest.mark.parametrize("max_cutouts, min_cutouts", [(16, 4), (16, 5), (32, 8), (6, 4), (1, 1)])
def test_governor_names_every_cutout_count_it_can_choose(max_cutouts, min_cutouts):
    """The warm-up compiles exactly these shapes: whatever the frame times, the governor picks no other."""
    counts = QualityGovernor(0.05, max_cutouts, min_cutouts).cutout_counts()
    assert counts == sorted(set(counts), reverse=True) and counts[0] == max_cutouts
    governor, chosen = QualityGovernor(0.05, max_cutouts, min_cutouts), set()
    rng = np.random.default_rng(0)
    for _ in range(2000):
        chosen.add(governor.update(float(rng.choice([0.005, 0.05, 0.5])), 3).cutouts)
    assert chosen <= set(counts) and min(chosen) == min(counts) and max(chosen) == max(counts)


def test_control_log_round_trip_and_replay(tmp_path):
    path = tmp_path / "show.controls.jsonl"
    writer = ControlLogWriter(path, show_header(Config(), "live"))
    writer.clock(0.0, 0.0, False)                                      # waiting for the start cue
    writer.write(0.5, 0.0, "osc", "start", 0.0)
    writer.clock(0.5, 0.0, True)
    writer.write(1.0, 0.5, "osc", "hue_shift", 0.75)
    writer.write(2.0, 1.5, "timeline", "cue", 1)                       # derived: re-made from the sheet
    writer.write(3.0, 2.5, "midi", "prompt", "a glass city")
    writer.write(3.5, 3.0, "key", "cue_next", 0.0)
    writer.clock(3.5, 30.0, True)                                      # ... which moved the show clock to 30 s
    writer.write(4.0, 30.5, "osc", "blackout", True)
    writer.write(4.5, 31.0, "osc", "no_such_thing", 1)
    writer.cue_starts(4.6, 31.1, {3: 31.52})                           # a {q} cue placed on the tempo grid
    writer.cue_starts(4.7, 31.2, {3: 31.5204})                         # ... the grid read afresh: not logged again
    writer.cue_starts(4.8, 31.3, {3: 31.54})                           # ... a tempo change moved it
    writer.close(6.0, 32.5)
    show = read_show_log(path)
    assert show.end == 6.0 and show.config() == Config() and len(show.entries) == 7
    assert show.cue_starts == [(4.6, {3: 31.52}), (4.8, {3: 31.54})]
    replay = ControlReplay(show)
    assert [replay.show_time(w) for w in (0.0, 0.4, 0.5, 1.5, 3.5, 5.0)] == [0.0, 0.0, 0.0, 1.0, 30.0, 31.5]
    state = ShowState.from_config(DirectorConfig())
    replay.apply_until(state, 0.9)
    assert state.snapshot().values["hue_shift"] == 0.3                 # not yet
    replay.apply_until(state, 3.0)
    snap = state.snapshot()
    assert snap.values["hue_shift"] == 0.75 and snap.prompt_override == "a glass city" and not snap.blackout
    replay.apply_until(state, 10.0)
    assert state.snapshot().blackout and replay.ignored == 1
    timeline = Timeline(parse_lrc("[00:10.00]a\n[00:20.00]b\n[00:31.00]c\n[00:31.20]d {q=bar}\n"))
    assert replay.held(timeline, 4.5).start_of(3) == 31.2 and replay.held(timeline, 4.7).start_of(3) == 31.52
    assert replay.held(timeline, 4.75) is replay.held(timeline, 4.7)     # the same places: the same view
    assert replay.held(timeline, 5.0).index_at(31.53) == 2 and replay.held(timeline, 5.0).index_at(31.54) == 3


@pytest.mark.parametrize("text, message", [
    ("", "no show header"),
    (HEAD.replace('"format": 1', '"format": 99'), ":1: show header of an unknown format"),
    (HEAD + "not json\n" + END, ":2: not a control log line"),
    (HEAD + '{"wall": 1, "t": "x", "source": 1, "what": 2}\n' + END, ":2: not a control log line"),
    (HEAD + '{"wall": 1, "t": NaN, "source": "osc", "what": "freeze"}\n' + END, ":2: not a control log line"),
    (HEAD + '{"wall": 1, "t": 1, "source": "vj", "what": "clock", "value": 3}\n' + END, ":2: not a control log line"),
    (HEAD + '{"wall": 1, "t": 1, "source": "vj", "what": "cue_starts", "value": {"x": 1}}\n' + END, ":2: not a"),
    (HEAD + '{"wall": 1, "t": 1, "source": "vj", "what": "cue_starts", "value": [1]}\n' + END, ":2: not a control"),
])
def test_bad_control_logs_name_file_and_line(tmp_path, text, message):
    """(A bad last line is a show cut short: see below.)"""
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(ShowLogError, match=message):
        read_show_log(path)


def test_recorded_config_with_a_bad_key_is_a_clear_error(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps({"wall": 0, "t": 0, "source": "vj", "what": "show",
                                "value": {"format": 1, "config": {"optimizer": {"warp": 1}}}}) + "\n")
    with pytest.raises(ShowLogError, match="unknown key optimizer.warp"):
        read_show_log(path).config()


STEPS_SHEET = "[00:00.00]a\n[00:04.00]b {steps=7}\n[00:08.00]c\n[00:12.00]d {steps=1}\n[00:16.00]e\n"


def played_from_the_start(t: float) -> int:
    """The steps a render has at t: a fresh director that played the sheet from 0 to t."""
    plan_for = Director(DirectorConfig(), LR, ShowState.from_config(DirectorConfig()))
    timeline = Timeline(parse_lrc(STEPS_SHEET), transition_s=0.0)
    steps = 0
    for tick in np.arange(0.0, t + 1e-9, 0.5):
        steps = plan_for.plan(float(tick), SILENCE, timeline.at(float(tick))).steps
    return steps


def test_cue_steps_are_undone_when_the_show_moves_back_before_the_cue():
    """Home, seeks and cue jumps in any order: at each time the steps are what a render has there."""
    cfg = DirectorConfig()
    state = ShowState.from_config(cfg)
    plan_for, timeline = Director(cfg, LR, state), Timeline(parse_lrc(STEPS_SHEET), transition_s=0.0)
    for t in (0.0, 5.0, 13.0, 9.0, 0.0, 17.0, 6.0, 1.0, 14.0, 3.0, 12.5, 8.0):
        assert plan_for.plan(t, SILENCE, timeline.at(t)).steps == played_from_the_start(t), t
    assert played_from_the_start(0.0) == cfg.steps_per_frame and played_from_the_start(9.0) == 7


def test_a_knob_turned_after_a_cue_still_wins_when_the_show_moves_back():
    cfg = DirectorConfig()
    state = ShowState.from_config(cfg)
    plan_for, timeline = Director(cfg, LR, state), Timeline(parse_lrc(STEPS_SHEET), transition_s=0.0)
    assert plan_for.plan(13.0, SILENCE, timeline.at(13.0)).steps == 1      # {steps=1}
    state.set("steps_per_frame", 5, "midi")                               # the performer's turn
    assert plan_for.plan(6.0, SILENCE, timeline.at(6.0)).steps == 5       # seek back: the turn stands
    assert plan_for.plan(0.0, SILENCE, timeline.at(0.0)).steps == 5
    assert plan_for.plan(4.0, SILENCE, timeline.at(4.0)).steps == 7       # a cue reached again applies again
    assert plan_for.plan(1.0, SILENCE, timeline.at(1.0)).steps == 5       # ... and is undone to the turn's value


def test_a_control_log_cut_mid_line_replays_up_to_the_cut(tmp_path, caplog):
    """A show that crashed mid-write leaves its last line cut short: the log replays up to it, with one warning.
    The same damage before the last line is still refused, naming file and line."""
    path = tmp_path / "show.controls.jsonl"
    writer = ControlLogWriter(path, show_header(Config(), "live"))
    writer.clock(0.0, 0.0, True)
    writer.write(1.0, 1.0, "osc", "hue_shift", 0.75)
    writer.write(2.0, 2.0, "osc", "prompt", "a glass city")          # ... and the process dies writing this line
    assert writer.flush()
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3]) + lines[3][:25])
    with caplog.at_level(logging.WARNING, logger="vj.control.showlog"):
        show = read_show_log(path)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1 and f"{path}:4: the last line is cut short" in said[0] and "1.00 s" in said[0], said
    assert show.end is None and [e.what for e in show.entries] == ["hue_shift"]
    state = ShowState.from_config(DirectorConfig())
    ControlReplay(show).apply_until(state, math.inf)
    assert state.snapshot().values["hue_shift"] == 0.75
    path.write_bytes(b"".join(lines[:3]) + lines[3][:25] + b"\n" + lines[2])   # damage in the middle
    with pytest.raises(ShowLogError, match=":4: not a control log line"):
        read_show_log(path)


def test_a_flood_of_fader_moves_is_one_line_a_frame_and_replays_what_was_shown(tmp_path):
    """3000 OSC moves of one fader between two frames (a flood of 10 000 a second is 170 a frame): the log keeps the
    last (no frame showed the others), and every other kind of change, each in order."""
    path = tmp_path / "show.controls.jsonl"
    state = ShowState.from_config(DirectorConfig())
    writer = ControlLogWriter(path, show_header(Config(), "live"))
    writer.begin(time.time(), 0.0, True)
    for i in range(3000):
        state.set("hue_shift", (i % 100) / 100, "osc")
        if i % 1000 == 0:
            state.set_prompt(f"prompt {i}", "osc")
    state.set("kaleidoscope", 0.25, "osc")
    writer.follow(state, 1.0)                                          # a frame
    state.set("hue_shift", 0.5, "midi")
    state.set("hue_shift", 0.125, "midi")
    writer.follow(state, 2.0)                                          # the next
    writer.close(3.0, 3.0)
    show = read_show_log(path)
    hue = [e.value for e in show.entries if e.what == "hue_shift"]
    assert hue == [0.99, 0.125]
    assert [e.value for e in show.entries if e.what == "prompt"] == [f"prompt {i}" for i in range(0, 3000, 1000)]
    assert [e.what for e in show.entries].count("kaleidoscope") == 1
    replayed = ShowState.from_config(DirectorConfig())
    ControlReplay(show).apply_until(replayed, math.inf)
    assert replayed.snapshot().values["hue_shift"] == 0.125 and replayed.snapshot().values["kaleidoscope"] == 0.25


def test_the_render_loop_never_waits_on_a_stuck_control_log(tmp_path):
    """A log whose file takes nothing (a pipe nobody reads: a stuck network disk) must not stop the frames: the
    show's calls return, and every line arrives once the file takes them again."""
    path = tmp_path / "stuck.controls.jsonl"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # open, but not read: the pipe fills and writes block
    writer = ControlLogWriter(path, show_header(Config(), "live"))
    state = ShowState.from_config(DirectorConfig())
    frames = threading.Thread(target=lambda: [(state.set_prompt("x" * 500 + str(i), "osc"), writer.follow(state, i))
                                              for i in range(1000)])  # 500 kB: far more than a pipe holds
    frames.start()
    frames.join(timeout=60)
    assert not frames.is_alive()  # the "render loop" went through all its frames while nothing was written
    received = b""
    closing = threading.Thread(target=writer.close, args=(1000.0, 1000.0))
    closing.start()
    while closing.is_alive() or True:
        try:
            chunk = os.read(reader, 1 << 16)
        except BlockingIOError:
            chunk = None
            if not closing.is_alive():
                break
            time.sleep(0.01)
            continue
        if not chunk:
            break
        received += chunk
    os.close(reader)
    lines = received.decode().splitlines()
    assert len(lines) == 1 + 1000 + 1 and json.loads(lines[-1])["what"] == "end"  # header, prompts, end
