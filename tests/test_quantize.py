"""Cue jumps held to the tempo grid (pure: a Tempo reading and perf_counter times)."""

from __future__ import annotations

import pytest

from vj.control.quantize import Quantizer
from vj.control.state import Event
from vj.control.tempo import Tempo
from vj.render.hud import with_held

JUMP = Event("cue_next", 0.0, "osc")


def test_a_jump_mid_bar_waits_for_the_next_downbeat_less_the_lookahead():
    tempo = Tempo(bpm=120.0, beat=5.0, at=100.0, playing=True, source="link")  # 0.5 s a beat; beat 8 at 101.5 s
    held = Quantizer("bar", lookahead_s=0.05)
    held.offer(JUMP, tempo, now=100.2)
    assert held.due(101.44) == [] and held.due(101.45) == [JUMP] and held.due(200.0) == []


@pytest.mark.parametrize("quantize, due_at", [("beat", 100.5), ("2bars", 101.5), ("4bars", 105.5), ("off", 100.2)])
def test_each_quantum(quantize, due_at):
    tempo = Tempo(bpm=120.0, beat=5.0, at=100.0, playing=True, source="midi_clock")
    held = Quantizer(quantize)
    held.offer(JUMP, tempo, now=100.2)
    assert held.due(due_at - 0.001) == [] and held.due(due_at) == [JUMP]


def test_no_grid_means_at_once_and_order_is_kept():
    stopped = Tempo(bpm=120.0, beat=5.0, at=100.0, playing=False, source="link")
    unknown = Tempo(bpm=0.0, beat=0.0, at=100.0, playing=True, source="audio")
    held = Quantizer("bar")
    first, second = Event("cue_goto", 3.0, "midi"), Event("seek", 10.0, "key")
    held.offer(first, stopped, now=100.0)
    held.offer(second, unknown, now=100.0)
    assert held.due(100.0) == [first, second]


def test_a_boundary_just_passed_is_not_taken_twice():
    tempo = Tempo(bpm=120.0, beat=8.0, at=100.0, playing=True, source="link")  # a downbeat right now
    held = Quantizer("bar")
    held.offer(JUMP, tempo, now=100.0)
    assert held.due(100.0) == [JUMP]  # on the boundary: now, not a bar later


def test_what_waits_is_said_for_people_until_it_lands():
    tempo = Tempo(bpm=120.0, beat=5.0, at=100.0, playing=True, source="link")
    held = Quantizer("bar", 0.04)
    assert held.waiting() == ""
    held.offer(JUMP, tempo, now=100.2)
    held.offer(Event("cue_goto", 3.0, "midi"), tempo, now=100.3)
    held.offer(Event("prompt", source="osc", text="a glass cathedral"), tempo, now=100.4)
    assert held.waiting() == "held for the bar: next cue (osc), cue 3 (midi), prompt (osc)"
    held.due(101.5)
    assert held.waiting() == ""
    assert with_held(["cue 1: rain", "! MIDI port gone"], "held for the bar: next cue (osc)") == [
        "cue 1: rain", "held for the bar: next cue (osc)", "! MIDI port gone"]  # above the warnings
    assert with_held(["cue 1: rain"], "") == ["cue 1: rain"]


def test_with_no_grid_a_press_goes_in_the_same_frame_whatever_the_lookahead():
    """`now + lookahead - lookahead` can round a step past `now`: a press would wait a frame and show as held."""
    unknown = Tempo(bpm=0.0, beat=0.0, at=0.0, playing=True, source="audio")
    held = Quantizer("off", 0.04)
    for now in (15.986429423389994, 31.995170148807343, 255.96834334247183, 13.1):  # three that round up
        held.offer(JUMP, unknown, now)
        assert held.due(now) == [JUMP] and held.waiting() == "", now


def test_a_downbeat_tap_moves_what_is_held_to_the_new_bars():
    before = Tempo(bpm=120.0, beat=5.0, at=100.0, playing=True, source="audio")  # bars at beats 8, 12: 101.5
    held = Quantizer("bar")
    held.offer(JUMP, before, now=100.2)
    after = Tempo(bpm=120.0, beat=7.5, at=100.25, playing=True, source="audio")  # tapped: a bar half a beat on
    held.regrid(after, now=100.25)
    assert held.due(100.49) == [] and held.due(100.5) == [JUMP]  # not 101.5, the old bar


def test_the_config_accepts_exactly_the_quanta():
    from vj import config
    from vj.control.tempo import QUANTA

    for name in QUANTA:
        assert config.load(None, [f"cues.quantize={name}"]).cues.quantize == name
    with pytest.raises(config.ConfigError, match="cues.quantize"):
        config.load(None, ["cues.quantize=8bars"])


# -- live prompts: held like a cue jump when cues.quantize is on ------------------------------------------------
def test_a_live_prompt_goes_on_stage_at_once_unless_held_then_on_the_downbeat():
    from vj.control.state import ShowState

    state = ShowState()
    state.request_prompt("neon rain", "osc")
    assert state.snapshot().prompt_override == "neon rain" and state.drain_events() == []
    state.hold_prompts = True  # cues.quantize on
    state.request_prompt("fog", "osc")
    assert state.snapshot().prompt_override == "neon rain"  # not yet: the show loop holds it to the grid
    [event] = state.drain_events()
    assert (event.kind, event.text, event.source) == ("prompt", "fog", "osc")
    held = Quantizer("bar", lookahead_s=0.05)
    held.offer(event, Tempo(bpm=120.0, beat=5.0, at=100.0, playing=True, source="link"), now=100.2)
    assert held.due(101.44) == [] and held.due(101.45) == [event]
    state.request_prompt("", "midi")  # back to the cue sheet's prompt: held too
    assert state.drain_events()[0].text is None


# -- a cue sheet's {q=...} cues ---------------------------------------------------------------------------------
SHEET = "[00:01.00]calm\n[00:02.00]drop {q=bar}\n[00:09.00]outro\n"
GRID = Tempo(bpm=120.0, beat=5.0, at=100.0, playing=True, source="link")  # show time t at perf 100 + t: the drop's
# own time (t = 2) is beat 9, the next downbeat (beat 12) is at t = 3.5


def run_frames(timeline, tempo, until: float, fps: float = 60.0, lookahead_s: float = 0.05, jumps=()):
    """Places the sheet frame by frame as the show loop does (show time t at perf_counter 100 + t, or moved by a
    jump: (at t, to show time)); returns [(t, show time, live cue index)] and the engine's view between frames."""
    from vj.control.quantize import SheetQuantizer

    grid, seen, offset, jumps = SheetQuantizer(lookahead_s), [], 0.0, list(jumps)
    for frame in range(int(until * fps)):
        t = frame / fps
        if jumps and t >= jumps[0][0]:
            offset += jumps[0][1] - (t + offset)
            jumps.pop(0)
            grid.reset()
        view = grid.place(timeline, t + offset, True, tempo, 100.0 + t)
        seen.append((t, t + offset, view.index_at(t + offset)))
    return seen


def first_time_on(seen, index: int) -> float | None:
    return next((t for t, _, on in seen if on == index), None)


def test_a_sheet_cue_with_q_starts_on_the_next_downbeat_less_the_lookahead():
    from vj.cues.lrc import parse_lrc
    from vj.cues.timeline import Timeline

    timeline = Timeline(parse_lrc(SHEET), transition_s=1.0)
    seen = run_frames(timeline, GRID, 5.0)
    assert first_time_on(seen, 1) == pytest.approx(3.45, abs=1 / 60 + 1e-9)  # 3.5 s less 50 ms, to the frame
    assert all(on == 0 for t, _, on in seen if 1.0 <= t < 3.45)  # the calm cue holds until then
    assert first_time_on(seen, 2) is None
    # the crossfade runs from the cue's start, not its own time
    from vj.control.quantize import SheetQuantizer

    grid = SheetQuantizer(0.05)
    for t in (1.9, 2.3, 3.0):
        view = grid.place(timeline, t, True, GRID, 100.0 + t)
    assert view.at(3.0).index == 0 and view.at(3.95).since_change == pytest.approx(0.5)
    assert timeline.at(3.0).index == 1  # the sheet itself is untouched: a render keeps the cue's own time


def test_the_engine_reading_between_frames_sees_the_cue_held():
    """The engine thread reads the timeline at its own show time, which may pass the cue's own time before the show
    loop places again: a cue coming within the horizon is already held in the view."""
    from vj.control.quantize import SheetQuantizer
    from vj.cues.lrc import parse_lrc
    from vj.cues.timeline import Timeline

    timeline = Timeline(parse_lrc(SHEET))
    view = SheetQuantizer(0.0).place(timeline, 1.9, True, GRID, 101.9)
    assert view.index_at(2.05) == 0 and view.index_at(3.5) == 1


@pytest.mark.parametrize("tempo", [Tempo(120.0, 5.0, 100.0, False, "link"), Tempo(0.0, 0.0, 100.0, True, "audio")])
def test_with_no_grid_a_sheet_cue_keeps_its_own_time(tempo):
    from vj.cues.lrc import parse_lrc
    from vj.cues.timeline import Timeline

    seen = run_frames(Timeline(parse_lrc(SHEET)), tempo, 3.0)
    assert first_time_on(seen, 1) == pytest.approx(2.0, abs=1 / 60)


def test_a_cue_whose_boundary_comes_after_the_next_cue_is_passed_over():
    from vj.cues.lrc import parse_lrc
    from vj.cues.timeline import Timeline

    # the drop waits for 4 bars (t = 7.5 at this grid), but the next cue comes at 3 s: it is never on
    timeline = Timeline(parse_lrc("[00:01.00]calm\n[00:02.00]drop {q=4bars}\n[00:03.00]verse\n"))
    seen = run_frames(timeline, GRID, 5.0)
    assert first_time_on(seen, 1) is None and first_time_on(seen, 2) == pytest.approx(3.0, abs=1 / 60)
    assert all(on == 0 for t, _, on in seen if 1.0 <= t < 3.0)
    # two held cues: the later one's boundary bounds the earlier
    timeline = Timeline(parse_lrc("[00:01.00]calm\n[00:02.00]drop {q=2bars}\n[00:02.50]riser {q=beat}\n"))
    seen = run_frames(timeline, GRID, 6.0)  # drop: beat 16 at t = 5.5; riser: beat 11 at t = 3.0
    assert first_time_on(seen, 1) is None and first_time_on(seen, 2) == pytest.approx(2.95, abs=1 / 60 + 1e-9)


def test_a_jump_to_a_held_cue_starts_it_at_once():
    from vj.cues.lrc import parse_lrc
    from vj.cues.timeline import Timeline

    timeline = Timeline(parse_lrc(SHEET))
    seen = run_frames(timeline, GRID, 3.0, jumps=[(1.95, 2.0)])  # a (quantised) cue jump to the drop at 1.95 s
    assert first_time_on(seen, 1) == pytest.approx(1.95, abs=1 / 60)


def test_a_looping_sheet_holds_its_cue_again_in_every_pass():
    from vj.cues.lrc import parse_lrc
    from vj.cues.timeline import Timeline

    # a 3 s loop on a grid with a beat every 0.5 s: a drop on a beat starts at its own time in every pass, one
    # 0.2 s before a beat waits for it in every pass (the pass that comes round places it afresh)
    timeline = Timeline(parse_lrc("[00:00.00]intro\n[00:02.00]drop {q=beat}\n"), loop_s=3.0)
    seen = run_frames(timeline, GRID, 9.0, lookahead_s=0.0)
    starts = [t for (t, _, on), (_, _, before) in zip(seen[1:], seen) if on == 1 and before != 1]
    assert starts == [pytest.approx(x, abs=1 / 60 + 1e-9) for x in (2.0, 5.0, 8.0)]  # beats 9, 15, 21
    off_grid = Timeline(parse_lrc("[00:00.00]intro\n[00:01.80]drop {q=beat}\n"), loop_s=3.0)
    seen = run_frames(off_grid, GRID, 9.0, lookahead_s=0.0)  # own times 1.8, 4.8, 7.8
    starts = [t for (t, _, on), (_, _, before) in zip(seen[1:], seen) if on == 1 and before != 1]
    assert starts == [pytest.approx(x, abs=1 / 60 + 1e-9) for x in (2.0, 5.0, 8.0)]


def test_the_sheet_accepts_exactly_the_quanta():
    from vj.control.tempo import QUANTA
    from vj.cues.lrc import QUANTIZE_MODES

    assert QUANTIZE_MODES == tuple(QUANTA)


def test_a_looping_sheet_holds_a_cue_at_the_top_of_the_pass():
    """A {q} cue at 0.0 is placed before the loop comes round (the frame after the wrap is too late to hold it)."""
    from vj.cues.lrc import parse_lrc
    from vj.cues.timeline import Timeline

    timeline = Timeline(parse_lrc("[00:00.00]drop {q=bar}\n[00:01.00]verse\n"), loop_s=3.0)
    seen = run_frames(timeline, GRID, 8.0, lookahead_s=0.0)
    on = {round(t * 60): index for t, _, index in seen}
    assert on[0] == 0  # the first pass starts with the show: at once
    # pass 2 from t = 3 (beat 11): the drop waits for beat 12 (t = 3.5); pass 3 from t = 6 (beat 17): beat 20 would
    # be t = 7.5, after the verse (t = 7): passed over
    assert all(on[f] == -1 for f in range(180, 210)) and all(on[f] == 0 for f in range(210, 240))
    assert all(on[f] == -1 for f in range(360, 420)) and on[420] == 1
