"""LRC parsing, prompt syntax and the timeline."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from conftest import run_vj
from vj.cues.lrc import LrcError, parse_lrc, read_lrc
from vj.cues.prompts import PromptError, WeightedPrompt, parse_prompts
from vj.cues.timeline import Timeline


def test_timestamp_forms():
    sheet = parse_lrc("[00:01]a\n[00:02.5]b\n[00:03.25]c\n[00:04.125]d\n[00:05:50]e\n[75:00.00]f\n", source="s.lrc")
    assert [c.time for c in sheet.cues] == [1.0, 2.5, 3.25, 4.125, 5.5, 4500.0]
    assert [c.text for c in sheet.cues] == list("abcdef")
    assert sheet.source == "s.lrc"


def test_tags_offset_and_multiple_stamps():
    sheet = parse_lrc("[ti:Song]\n[ar:Artist]\n[xx:kept]\n[offset:+500]\n[00:10.00][00:20.00]chorus\n[00:00.20]start\n")
    assert sheet.tags == {"ti": "Song", "ar": "Artist", "xx": "kept", "offset": "+500"}
    assert [(c.time, c.text) for c in sheet.cues] == [(0.0, "start"), (9.5, "chorus"), (19.5, "chorus")]
    assert parse_lrc("[offset:-250]\n[00:01.00]x").cues[0].time == 1.25


def test_word_stamps_settings_bom_crlf_and_order():
    text = "\ufeff[00:05.00]late\r\n[00:01.00]<00:01.00>neon <00:01.50>rain:2 | fog:-0.5 {transition=2 boost=4 steps=5}\r\n"
    sheet = parse_lrc(text)
    late, first = sheet.cues[1], sheet.cues[0]
    assert late.text == "late" and first.time == 1.0
    assert first.words == ((1.0, "neon"), (1.5, "rain:2 | fog:-0.5"))
    assert first.prompts == (WeightedPrompt("neon rain", 2.0), WeightedPrompt("fog", -0.5))
    assert (first.transition, first.boost, first.steps) == (2.0, 4.0, 5)


def test_strict_errors_name_file_line_and_column(tmp_path):
    path = tmp_path / "show.lrc"
    path.write_text("[00:01.00]ok\n  [00:61.00]bad seconds\n")
    with pytest.raises(LrcError, match=rf"{path}:2:3: seconds must be below 60"):
        read_lrc(path)
    path.write_text("[00:01.00]ok\nno stamp here\n")
    with pytest.raises(LrcError, match=rf"{path}:2:1: expected a \[mm:ss.xx\] timestamp"):
        read_lrc(path)
    path.write_text("[00:01.00]ok {speed=3}\n")
    with pytest.raises(LrcError, match=r":1:\d+: unknown cue setting 'speed=3'"):
        read_lrc(path)


def test_lenient_mode_warns_and_keeps_the_rest():
    sheet = parse_lrc("[00:01.00]one\ngarbage\n[0x:01]bad\n[00:02.00]two\n", source="s.lrc", lenient=True)
    assert [c.text for c in sheet.cues] == ["one", "two"]
    assert len(sheet.warnings) == 2 and sheet.warnings[0].startswith("s.lrc:2:1:")


def test_non_utf8_file_falls_back(tmp_path):
    path = tmp_path / "latin.lrc"
    path.write_bytes("[00:01.00]caf\u00e9 au lait\n".encode("cp1252"))
    assert read_lrc(path).cues[0].text == "caf\u00e9 au lait"


def test_prompt_syntax():
    assert parse_prompts("a city:1 | neon rain:0.5") == [WeightedPrompt("a city", 1.0), WeightedPrompt("neon rain", 0.5)]
    assert parse_prompts("time: 4am") == [WeightedPrompt("time: 4am", 1.0)]
    assert parse_prompts(" | ") == []
    with pytest.raises(PromptError):
        parse_prompts(":2")


def test_timeline_crossfade_hold_and_clear():
    sheet = parse_lrc("[00:01.00]a\n[00:03.00]b {transition=2}\n[00:06.00]\n[00:08.00]{clear}\n")
    tl = Timeline(sheet, transition_s=1.0)
    assert tl.at(0.5).index == -1 and tl.at(0.5).prompts == ()
    assert tl.at(1.0).prompts == (WeightedPrompt("a", 1.0),)  # out of nothing: at once
    mid = {p.text: p.weight for p in tl.at(4.0).prompts}
    assert mid == pytest.approx({"a": 0.5, "b": 0.5})
    assert tl.at(7.0).prompts == (WeightedPrompt("b", 1.0),)  # an empty line holds
    assert {p.text: p.weight for p in tl.at(8.5).prompts} == pytest.approx({"b": 0.5})  # clear fades out
    assert tl.at(2.0).next_cue.text == "b"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]<>{}:.0123456789 abc|=-+\n\r\ufeff")), max_size=200))
def test_no_input_crashes_the_parser_with_anything_but_its_error(text):
    for lenient in (False, True):
        try:
            sheet = parse_lrc(text, lenient=lenient)
        except LrcError:
            assert not lenient
            continue
        Timeline(sheet).at(1.0)


def test_cues_check_json(tmp_path):
    path = tmp_path / "s.lrc"
    path.write_text("[ti:T]\n[00:01.50]<00:01.50>hello <00:02.00>world:0.5\nbad\n")
    proc = run_vj("cues", "check", str(path), "--json")
    data = json.loads(proc.stdout)
    assert data["tags"] == {"ti": "T"}
    cue = data["cues"][0]
    assert cue["time"] == 1.5 and cue["text"] == "hello world:0.5"
    assert cue["prompts"] == [{"text": "hello world", "weight": 0.5}]
    assert cue["words"] == [{"time": 1.5, "word": "hello"}, {"time": 2.0, "word": "world:0.5"}]
    assert "line skipped" in proc.stderr
    assert run_vj("cues", "check", str(path), "--strict", check=False).returncode != 0


def test_timeline_loops():
    tl = Timeline(parse_lrc("[00:00.00]a\n[00:05.00]b\n"), transition_s=0, loop_s=8.0)
    assert tl.at(9.0).cue.text == "a" and tl.at(13.5).cue.text == "b"


def test_watched_sheet_reloads_and_keeps_last_good_on_a_bad_edit(tmp_path):
    import os

    from vj.cues.timeline import WatchedTimeline

    path = tmp_path / "live.lrc"
    path.write_text("[00:00.00]first\n")
    watched = WatchedTimeline(path, lenient=False)
    assert watched.timeline.at(1.0).cue.text == "first"

    def edit(text, bump):
        path.write_text(text)
        os.utime(path, (path.stat().st_mtime + bump, path.stat().st_mtime + bump))

    edit("[00:00.00]second\n", 1)
    assert watched.reload_if_changed() and watched.timeline.at(1.0).cue.text == "second"
    edit("[00:00.00]third\n[00:99.00]broken\n", 2)
    assert not watched.reload_if_changed()
    assert watched.timeline.at(1.0).cue.text == "second"
    assert "live.lrc:2:" in watched.error and "keeping the last good" in watched.error
    edit("[00:00.00]fixed\n", 3)
    assert watched.reload_if_changed() and watched.error is None
    lenient = WatchedTimeline(path, lenient=True)                     # lenient skips bad lines, but ...
    edit("[00:00.00]good\n", 4)
    assert lenient.reload_if_changed()
    edit("\x00\x01 half a line\n", 5)                                # ... a file caught half-saved has no cues left
    assert not lenient.reload_if_changed() and "no cues left" in lenient.error
    assert lenient.timeline.at(1.0).cue.text == "good"


def test_cue_events_jump_the_show_clock():
    from vj.engine.show import _cue_target

    tl = Timeline(parse_lrc("[00:01.00]a\n[00:04.00]b\n[00:09.00]c\n"))
    assert _cue_target(tl, "cue_next", 0, 5.0) == 9.0
    assert _cue_target(tl, "cue_prev", 0, 5.0) == 1.0
    assert _cue_target(tl, "cue_goto", 1, 0.0) == 4.0
    assert _cue_target(tl, "cue_next", 0, 10.0) is None
    assert _cue_target(None, "cue_next", 0, 1.0) is None
