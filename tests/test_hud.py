"""The HUD draws prompts in any language, and says so when a character has no font on this machine; it says when
video out cannot reach its receiver or drops frames."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from conftest import free_port
from vj.render.fonts import PROBE, FontChain, _drawn
from vj.render.hud import Hud, output_warnings
from vj.render.outputs import Output, Outputs, StreamOutput


@pytest.fixture(scope="module")
def fonts():
    return FontChain(16)


@pytest.mark.parametrize("text", ["café", "Ωμέγα", "ночь", "日本の夜", "北京", "🎛🔥"])
def test_every_script_has_a_font(fonts, text):
    assert fonts.missing(text) == ""
    for char in text:  # drawn as a glyph, not as the font's missing-glyph box
        font = fonts.font_for(char)
        drawn = _drawn(font, char)
        assert any(drawn) and drawn != _drawn(font, PROBE), char


def test_the_default_font_alone_would_draw_boxes():
    """Why the chain exists: Pillow's own font has no Japanese."""
    only_pillow = FontChain(16, paths=[])
    assert only_pillow.missing("日本の夜") == "日本の夜" and only_pillow.missing("cafe") == ""


def _text_pixels(hud: Hud) -> np.ndarray:
    data = np.frombuffer(hud.texture.read(), np.uint8).reshape(*hud.texture.size[::-1], 4)
    return data[..., :3].max(axis=2) > 128


def test_hud_draws_japanese_and_names_what_it_cannot_draw(gl_context):
    hud = Hud(gl_context)
    try:
        hud.set_lines(["日本の夜"])
        assert _text_pixels(hud).sum() > 50 and hud.texture.size[1] < 60  # one line, drawn
        hud.set_lines(["a prompt \U000f0000"])  # supplementary private use: no font has it
        assert hud.texture.size[1] > 40  # a second line: the warning
        assert FontChain(16).missing("a prompt \U000f0000") == "\U000f0000"
    finally:
        hud.release()


# -- video out in the HUD: an output that cannot reach its receiver, or drops frames ------------------------------
class SlowReceiver(Output):
    """A receiver that takes 100 ms a frame (a network or encoder slower than the show); `refusals`: how many opens
    it refuses first (a receiver that is not there yet)."""

    def __init__(self, refusals: int = 0):
        super().__init__("slow sink", 64, 36)
        self.refusals = refusals

    def open(self) -> None:
        if self.refusals:
            self.refusals -= 1
            raise ConnectionRefusedError("nobody listening")

    def send(self, wall: float, frame: np.ndarray) -> None:
        time.sleep(0.1)

    def release(self) -> None:
        pass


def offer_for(outputs: Outputs, seconds: float, fps: float = 60.0) -> None:
    frame, started = np.zeros((36, 64, 3), np.uint8), time.perf_counter()
    for i in range(int(seconds * fps)):
        outputs.offer(time.perf_counter() - started, frame)
        time.sleep(max(0.0, started + (i + 1) / fps - time.perf_counter()))


def test_the_hud_says_when_an_output_drops_frames_and_stops_saying_it_when_it_keeps_up():
    slow = SlowReceiver().start()
    outputs = Outputs([slow])
    try:
        offer_for(outputs, 0.5)  # 30 frames offered, about 5 taken
        [line] = output_warnings(outputs)
        said = re.fullmatch(r"slow sink: (\d+) frame\(s\) dropped in 0\.[5-9] s \(receiver or encoder slower than "
                            r"the show\)", line)
        assert said and int(said.group(1)) == slow.dropped >= 15, (line, slow.dropped)
        time.sleep(0.35)  # what it holds (the queue's 2 frames and the one it sends) goes out
        output_warnings(outputs)
        offer_for(outputs, 0.5, fps=5)  # a rate it keeps up with: nothing new dropped, nothing said
        assert output_warnings(outputs) == []
    finally:
        outputs.close()


def test_the_hud_says_an_output_cannot_reach_its_receiver_until_it_does(monkeypatch):
    from vj.render import outputs as outputs_module

    monkeypatch.setattr(outputs_module, "RETRY_S", 0.2)
    refused = StreamOutput(f"rtmp://127.0.0.1:{free_port()}/live/vj", 64, 36, 30, 500).start()  # nobody listens
    late = SlowReceiver(refusals=1).start()  # comes on the second try
    outputs = Outputs([refused, late])
    try:
        offer_for(outputs, 0.1, fps=20)
        lines = output_warnings(outputs)
        assert len(lines) == 2 and "Connection refused" in lines[0] and "(trying again)" in lines[0]
        assert lines[1] == "slow sink: cannot open (nobody listening) (trying again)"
        offer_for(outputs, 0.6, fps=5)  # the late one opens and sends; the other still cannot
        lines = output_warnings(outputs)
        assert len(lines) == 1 and lines[0].startswith("stream rtmp://127.0.0.1:") and late.sent > 0
    finally:
        outputs.close()


def test_the_status_line_says_the_shows_cue_not_the_lagging_engine_frames():
    """On a slow machine the newest generated frame is still cue 0's while the show is at cue 2: the log's line and
    the window title say cue 2 and its prompt, as the HUD and OSC feedback do (#26 item 11)."""
    from vj.control.osc import show_cue
    from vj.cues.lrc import parse_lrc
    from vj.cues.timeline import Timeline
    from vj.engine.worker import PublishedFrame
    from vj.render.hud import status_line

    timeline = Timeline(parse_lrc("[00:00.00]neon rain\n[00:10.00]fog\n[00:20.00]a deep blue ocean\n"), 0.0)
    lagging = PublishedFrame(np.zeros((8, 8, 3), np.uint8), show_time=1.0, cue=0, prompt="neon rain", loss=0.5,
                             steps_per_second=0.7, published_at=time.perf_counter())
    line = status_line(25.0, show_cue(timeline, 25.0, None), lagging, 30.0)
    assert "cue 2 " in line and line.endswith("a deep blue ocean") and "neon rain" not in line, line
    assert "0.7 steps/s" in line  # the rate is the engine's own
    live = status_line(25.0, show_cue(timeline, 25.0, "a glass city:1 | smoke:-0.3"), None, 30.0)
    assert "cue 2 " in live and live.endswith("a glass city | smoke"), live
