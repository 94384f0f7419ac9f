"""Video out (vj/render/outputs.py) and the headless node (`vj live --headless`): real streams on loopback, real
receivers (PyAV, the ffmpeg program, cyndilib), never any other address."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import av
import numpy as np
import pytest

from conftest import LIVE_TINY, REPO, VJ, Lines, free_port, oscsend, wait_for_line
from vj.render.outputs import Output, StreamOutput

NO_DISPLAY = {k: v for k, v in os.environ.items() if k != "DISPLAY"} | {
    "PYTHONUNBUFFERED": "1", "VJ_CACHE": str(REPO / ".pytest_cache" / "c")}


def headless_vj(*args: str) -> subprocess.Popen:
    """`vj live --headless ARGS` on the tiny networks, with no X display in its environment at all."""
    return subprocess.Popen([*VJ, "live", "--headless", *args, *LIVE_TINY], cwd=REPO, env=NO_DISPLAY,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-9))


def test_headless_show_streams_h264_of_its_picture_over_udp_with_no_display(tmp_path):
    """No DISPLAY, OSC in control: the stream is H.264 at the display size, its frames arrive stamped with the
    show's wall time, and they are the show's picture (the recording of the same show holds each of them)."""
    port, osc, recording = free_port(), free_port(), tmp_path / "show.mp4"
    proc = headless_vj("--duration", "60", "--record", str(recording), "--set", f"control.osc_port={osc}",
                       "--set", f"output.stream=udp://127.0.0.1:{port}")
    lines = Lines(proc)
    try:
        # Listening before vj sends: the open waits (up to 60 s) for its first packets; a small probe starts sooner.
        try:
            container = av.open(f"udp://127.0.0.1:{port}", timeout=(60, 10), options={"probesize": "4096"})
        except av.error.FFmpegError as e:
            pytest.fail(f"no stream ({e}); vj said:\n{lines.text}")
        video = container.streams.video[0]
        times, arrivals, kept = [], [], []
        for frame in container.decode(video):
            times.append(float(frame.time))
            arrivals.append(time.perf_counter())
            if len(times) % 16 == 0:
                kept.append(frame.to_ndarray(format="rgb24"))
                # Black until the engine's first frame (its warm-up on a busy machine can outlast two seconds of
                # stream), as on screen: 64 frames at least, and on until one with a picture (20 s at most).
                if len(times) >= 64 and kept[-1].mean() > 10 or len(times) >= 600:
                    break
        codec, size = video.codec_context.name, (video.codec_context.width, video.codec_context.height)
        container.close()
        oscsend(osc, "/vj/quit")
        assert proc.wait(timeout=30) == 0, lines.text
    finally:
        proc.kill()
    assert codec == "h264" and size == (320, 180), (codec, size)
    assert all(b > a for a, b in zip(times, times[1:])), times
    # Stamped as displayed: the stamps advance as the frames arrived (the show's frame times, not 1/fps each);
    # the first frames came together, held while the open probed the stream.
    assert abs((times[-1] - times[16]) - (arrivals[-1] - arrivals[16])) < 0.2, (times, arrivals)
    assert "nobody will see the picture" not in lines.text
    assert f"stream udp://127.0.0.1:{port}: sent" in lines.text
    shown = [f.to_ndarray(format="rgb24") for f in av.open(str(recording)).decode(video=0)]
    assert kept[-1].mean() > 10, "a black stream"  # black at first: no engine frame yet, as on screen
    for frame in kept:
        assert max(psnr(frame, s) for s in shown) > 30, "a streamed frame that the show did not display"


def test_headless_without_any_output_says_nobody_will_see_the_picture():
    proc = headless_vj("--duration", "60", "--set", "control.osc_port=0")
    try:
        wait_for_line(proc, "nobody will see the picture", timeout=30)
        wait_for_line(proc, "OSC listening on", timeout=30)  # and goes on
    finally:
        proc.kill()
        proc.wait()


def test_ndi_without_cyndilib_is_one_line_naming_the_extra_before_the_networks_load():
    hide = "import sys; sys.modules['cyndilib'] = None; from vj.cli import main; sys.exit(main(sys.argv[1:]))"
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", hide, "live", "--headless", "-q", "--set", "output.ndi=vj",
                           "--set", "control.osc_port=0"], cwd=REPO, env=NO_DISPLAY, capture_output=True, text=True,
                          timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "output.ndi needs cyndilib" in lines[0] and "pip install 'vj[ndi]'" in lines[0]
    assert time.perf_counter() - started < 5


class SlowSink(Output):
    """A receiver that takes 100 ms a frame."""

    def __init__(self):
        super().__init__("slow sink", 64, 36)
        self.got: list[float] = []

    def open(self) -> None:
        pass

    def send(self, wall: float, frame: np.ndarray) -> None:
        time.sleep(0.1)
        self.got.append(wall)

    def release(self) -> None:
        pass


def test_a_slow_receiver_costs_dropped_counted_frames_never_the_display_rate():
    sink = SlowSink().start()
    frame, offered, offer_s = np.zeros((36, 64, 3), np.uint8), 90, []
    started = time.perf_counter()
    for i in range(offered):  # a 60 fps show for 1.5 s
        at = time.perf_counter()
        sink.offer(at - started, frame)
        offer_s.append(time.perf_counter() - at)
        time.sleep(max(0.0, started + (i + 1) / 60 - time.perf_counter()))
    took = time.perf_counter() - started
    sink.close()
    assert took < 1.5 + 0.15, took  # the show kept its rate
    assert max(offer_s) < 0.005, max(offer_s)  # an offer never waits for the sink
    assert 8 <= sink.sent <= 19 and sink.dropped >= offered - sink.sent - 2, (sink.sent, sink.dropped)
    assert sink.sent + sink.dropped + sink.unsent <= offered and sink.unsent == 0
    assert sink.got == sorted(sink.got)  # what it did take, in order


def test_a_receiver_that_is_not_there_is_said_once_and_costs_no_show_time(caplog):
    """rtmp to a port where nobody listens (refused at once): one warning, frames counted as unsent, offers instant."""
    output = StreamOutput(f"rtmp://127.0.0.1:{free_port()}/live/vj", 64, 36, 30, 500).start()
    frame, offer_s = np.zeros((36, 64, 3), np.uint8), []
    with caplog.at_level("WARNING", logger="vj.render.outputs"):
        for i in range(30):
            at = time.perf_counter()
            output.offer(i / 30, frame)
            offer_s.append(time.perf_counter() - at)
            time.sleep(1 / 30)
        output.close()
    said = [r.getMessage() for r in caplog.records if "cannot open" in r.getMessage()]
    assert len(said) == 1 and "trying again every 2 s" in said[0], said
    assert output.sent == 0 and output.unsent + output.dropped == 30 and max(offer_s) < 0.005


def test_stream_over_srt_reaches_a_listener_through_the_ffmpeg_program_if_pyav_lacks_srt():
    """PyAV's wheels have no srt protocol: the ffmpeg program relays the MPEG-TS vj muxed."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is not installed (scripts/system_deps.sh installs it)")
    port = free_port()
    listener = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-probesize", "4096",
                                 "-analyzeduration", "100000",
                                 "-i", f"srt://127.0.0.1:{port}?mode=listener&timeout=15000000", "-frames:v", "10",
                                 "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"], stdout=subprocess.PIPE)
    output = StreamOutput(f"srt://127.0.0.1:{port}", 160, 90, 30, 2000).start()
    frame, stop = np.zeros((90, 160, 3), np.uint8), threading.Event()
    frame[:, 80:, 0] = 220  # right half red

    def show() -> None:
        started = time.perf_counter()
        while not stop.wait(1 / 30):
            output.offer(time.perf_counter() - started, frame)

    threading.Thread(target=show, daemon=True).start()
    try:
        data, _ = listener.communicate(timeout=30)
    finally:
        stop.set()
        listener.kill()
        output.close()
    frames = np.frombuffer(data, np.uint8).reshape(-1, 90, 160, 3)
    assert len(frames) == 10 and output.sent >= 10
    assert abs(frames[-1][:, 100:, 0].mean() - 220) < 12 and frames[-1][:, :60].mean() < 12


def test_ndi_720p30_reaches_a_receiver_in_a_private_network_without_drops(tmp_path):
    """tests/ndi_check.py in a network namespace of its own (only loopback up): NDI's discovery multicasts, and must
    reach no other machine. NDI is told to look for sources at 127.0.0.1 (loopback carries no multicast)."""
    pytest.importorskip("cyndilib", reason="cyndilib is not installed: pip install 'vj[ndi]' (make test installs it)")
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) for a private network namespace, where NDI's multicast stays")
    (tmp_path / "ndi-config.v1.json").write_text(json.dumps({"ndi": {"networks": {"ips": "127.0.0.1"}}}))
    done = subprocess.run(["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {sys.executable} "
                           f"{REPO / 'tests' / 'ndi_check.py'}"], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "NDI_CONFIG_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" not in seen, seen
    sender = seen["sender"]
    assert seen["resolution"] == [1280, 720]
    assert sender["dropped"] == 0 and sender["unsent"] == 0, sender  # the output kept up at 720p30
    timed = sender["sent"] - sender["before"]  # the 90 frames sent once the receiver was connected
    assert timed == 90 and seen["frames_total"] >= timed and seen["frames_dropped"] == 0, seen
    assert seen["captured"] > 0
    for got, expected in zip(seen["bars"], seen["expected"]):  # the test pattern, through NDI's codec
        assert np.abs(np.array(got) - np.array(expected)).max() < 20, (got, expected)


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="where Spout or Syphon exists, it is not refused")
def test_spout_and_syphon_are_refused_here_in_one_line_naming_the_platform_and_what_works():
    """They cannot run on Linux (SpoutGL is Windows', syphon-python macOS'): the config refuses them as it is read,
    before anything opens, and the output module does too for a config built in code."""
    from vj.config import OutputConfig
    from vj.render.outputs import OutputError, open_outputs

    for key, system in (("spout", "Windows"), ("syphon", "macOS")):
        started = time.perf_counter()
        proc = subprocess.run([*VJ, "live", "--headless", "-q", "--set", f"output.{key}=vj", "--set",
                               "control.osc_port=0"], cwd=REPO, env=NO_DISPLAY, capture_output=True, text=True,
                              timeout=60)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1, proc.stderr
        assert f"{system} only, not {sys.platform}" in lines[0] and "output.ndi or output.stream" in lines[0]
        assert time.perf_counter() - started < 5
        with pytest.raises(OutputError, match=rf"output.{key}: \w+ is on {system} only, not {sys.platform}: use "
                                              r"output.ndi \(NDI\) or output.stream"):
            open_outputs(OutputConfig(**{key: "vj"}), (320, 180), 30)
