"""Video out while the show runs: the displayed frame to other software (a stream, NDI), off the render thread.

A VJ's picture usually goes into other software (Resolume, TouchDesigner, OBS, a media server), or to a room away
from the GPU. The render loop reads the displayed frame back once (before the HUD: what the audience sees, the
pixels a recording gets) and offers it to every output. Each output is a thread of its own behind a small bounded
queue, as the recorder is: a slow receiver, encoder or network costs that output dropped (and counted) frames,
never a stalled show; a receiver that is not there yet, or goes away, is tried again every few seconds.

- `StreamOutput` (`output.stream`): H.264 (x264: ultrafast, zerolatency, a keyframe every second) in MPEG-TS over
  udp:// or srt:// (FLV over rtmp://), each frame stamped with the time since the show began that it was displayed
  at. PyAV sends it; a protocol its FFmpeg lacks (srt in PyAV's wheels) goes through the `ffmpeg` program, which
  only relays the MPEG-TS vj muxed (`-c copy`), so the stamps and the encoder settings are the same either way.
- `NdiOutput` (`output.ndi`): an NDI source through cyndilib (the optional extra `vj[ndi]`; it ships NDI's runtime
  under the NDI SDK licence). Frames go out as they are displayed (not clocked to a nominal rate); NDI stamps them.
- Spout (Windows) and Syphon (macOS): `texture_share.py`, platform extras, refused in one line elsewhere.
"""

from __future__ import annotations

import logging
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from fractions import Fraction
from typing import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import av
import numpy as np

from vj.config import OutputConfig
from vj.errors import UserError

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 1000)           # stream timestamps in milliseconds of show wall time
RETRY_S = 2.0                           # a sink that failed to open (nobody listening yet) is tried again after this
DROP_REPORT_S = 10.0                    # at most one "frames dropped" warning per output this often
TS_PACKET = 1316                        # UDP payload: 7 MPEG-TS packets, the size receivers expect (not 1472)


class OutputError(UserError):
    """An output that cannot work here (a missing optional package, a platform without it)."""


class Output:
    """One receiver of displayed frames on a thread of its own. `offer` never waits: a full queue drops the frame
    and counts it (`dropped`: the sink is slower than the show); frames that arrive while the sink is not open
    (nobody listening yet, a connection lost) are counted as `unsent`. Subclasses give `open`, `send`, `release`,
    all called on the output's thread only."""

    kind = "output"

    def __init__(self, name: str,       # what the log calls it ("stream udp://...", "NDI 'vj'")
                 width: int,            # the size receivers get, pixels (a frame of another size is scaled to it)
                 height: int,
                 queue_frames: int = 2):  # frames the sink may fall behind by before the newest are dropped
        self.name = name
        self.width, self.height = width, height
        self.sent = 0                   # frames the sink took
        self.dropped = 0                # frames the full queue refused (written by the render thread only)
        self.unsent = 0                 # frames taken off the queue while the sink was not open (its thread only)
        self.send_s = 0.0               # time spent in send(), for the benchmark
        self.trouble = ""               # what keeps the sink from getting frames (for the HUD); "" while it does
        self._queue: queue.Queue = queue.Queue(maxsize=queue_frames)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"vj-out-{self.kind}", daemon=True)

    def start(self) -> "Output":
        self._thread.start()
        return self

    def offer(self, wall: float, frame: np.ndarray) -> None:
        """A displayed frame [H, W, 3] uint8 (top row first; never written to afterwards) shown `wall` seconds into
        the show; dropped and counted if the output is behind."""
        try:
            self._queue.put_nowait((wall, frame))
        except queue.Full:
            self.dropped += 1

    def open(self) -> None:
        raise NotImplementedError

    def send(self, wall: float, frame: np.ndarray) -> None:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Unblocks a send that hangs (called from another thread when close() has waited long enough)."""

    def _run(self) -> None:
        is_open, flowing, retry_at = False, False, 0.0
        reported, reported_at = 0, time.monotonic()
        while not self._stop.is_set():
            try:
                wall, frame = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if not is_open and time.monotonic() >= retry_at:
                try:
                    self.open()
                    is_open = True
                except Exception as e:  # an output never ends the show: it says why (once) and tries again
                    retry_at = time.monotonic() + RETRY_S
                    self._say(f"cannot open ({e})")
            if not is_open:
                self.unsent += 1
                continue
            started = time.perf_counter()
            try:
                self.send(wall, frame)
                self.sent += 1
                if not flowing:
                    log.info("%s: sending %dx%d", self.name, self.width, self.height)
                    flowing, self.trouble = True, ""
            except Exception as e:  # a receiver gone, a pipe closed: reopened after RETRY_S
                self._say(f"sending failed ({e})")
                self._release_quietly()
                is_open, flowing, retry_at = False, False, time.monotonic() + RETRY_S
                self.unsent += 1
            self.send_s += time.perf_counter() - started
            if self.dropped > reported and time.monotonic() - reported_at >= DROP_REPORT_S:
                log.warning("%s: %d frame(s) dropped so far: the receiver or the encoder is slower than the show",
                            self.name, self.dropped)
                reported, reported_at = self.dropped, time.monotonic()
        if is_open:
            self._release_quietly()

    def _say(self, trouble: str) -> None:
        """Logs a trouble unless it is the one said last (a receiver that stays away is said once)."""
        if trouble != self.trouble:
            log.warning("%s: %s; trying again every %.0f s", self.name, trouble, RETRY_S)
        self.trouble = trouble

    def _release_quietly(self) -> None:
        try:
            self.release()
        except Exception as e:  # the sink is going anyway
            log.debug("%s: release: %s", self.name, e)

    def close(self, timeout: float = 5.0) -> None:
        """Stops the thread (frames still queued are not sent) and closes the sink."""
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.abort()
            self._thread.join(1.0)
        if self._thread.is_alive():
            log.warning("%s: did not close within %.0f s (a sink that hangs); left behind", self.name, timeout)
        log.info("%s: sent %d frames, %d dropped (behind), %d unsent (not connected)", self.name, self.sent,
                 self.dropped, self.unsent)


def rgb_at(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """frame [H, W, 3] uint8 as [height, width, 3]: itself when it has that size, else scaled (a window resized)."""
    if frame.shape[:2] == (height, width):
        return frame
    video = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
    return video.reformat(width=width, height=height, format="rgb24").to_ndarray()


class StreamOutput(Output):
    """H.264 in MPEG-TS (udp://, srt://) or FLV (rtmp://) to `url`, at low latency."""

    kind = "stream"

    def __init__(self, url: str, width: int, height: int,
                 fps: float,                # the nominal frame rate (display.max_fps): the keyframe interval, rates
                 bitrate_kbps: int,         # video bit rate, kbit/s (also the rate cap)
                 queue_frames: int = 2):
        super().__init__(f"stream {url}", width - width % 2, height - height % 2, queue_frames)  # yuv420p: even
        self.url, self.scheme = url, urlsplit(url).scheme
        self.fps = fps if fps > 0 else 60.0
        self.bitrate_kbps = bitrate_kbps
        self.relay = False              # True: through the ffmpeg program (PyAV lacks the protocol)
        self._container = self._video = self._proc = self._relay_log = None
        self._last_pts = -1

    @property
    def muxer(self) -> str:
        return "flv" if self.scheme == "rtmp" else "mpegts"

    def _target(self) -> str:
        """The URL as FFmpeg is given it: UDP datagrams of whole TS packets unless the URL says otherwise."""
        if self.scheme != "udp":
            return self.url
        parts = urlsplit(self.url)
        query = dict(parse_qsl(parts.query))
        query.setdefault("pkt_size", str(TS_PACKET))
        return urlunsplit(parts._replace(query=urlencode(query)))

    def _add_video(self, container) -> None:
        gop = max(1, round(self.fps))  # a keyframe a second: a receiver that joins late waits at most that
        video = container.add_stream("libx264", rate=Fraction(round(self.fps * 1000), 1000))
        video.width, video.height, video.pix_fmt = self.width, self.height, "yuv420p"
        video.time_base = TIME_BASE
        video.codec_context.time_base = TIME_BASE
        video.codec_context.gop_size = gop
        video.codec_context.bit_rate = self.bitrate_kbps * 1000
        # zerolatency: no B-frames, no lookahead, no frame threads: each frame leaves as it is encoded. The rate cap
        # (half a second of buffer) keeps a busy picture within what the network was promised.
        video.options = {"preset": "ultrafast", "tune": "zerolatency",
                         "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:"
                                        f"vbv-maxrate={self.bitrate_kbps}:vbv-bufsize={self.bitrate_kbps // 2}"}
        self._video = video

    def open(self) -> None:
        self._last_pts = -1
        if not self.relay:
            container = av.open(self._target(), mode="w", format=self.muxer, options={"flush_packets": "1"})
            try:
                self._add_video(container)
                container.start_encoding()  # opens the URL now (PyAV would wait for the first packet)
                self._container = container
                return
            except av.error.ProtocolNotFoundError:
                container.close()
                if shutil.which("ffmpeg") is None:
                    raise OutputError(f"this PyAV has no {self.scheme}:// protocol, and there is no ffmpeg program "
                                      "to send through (install ffmpeg)") from None
                log.info("%s: PyAV has no %s:// protocol: sending through the ffmpeg program", self.name,
                         self.scheme)
                self.relay = True
            except Exception:
                container.close()
                raise
        # The ffmpeg program only relays what vj muxed: no probing of the input beyond its first packets.
        self._relay_log = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would stall ffmpeg
        self._proc = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-fflags", "nobuffer", "-probesize", "4096",
             "-analyzeduration", "100000", "-f", "mpegts", "-i", "pipe:0", "-c", "copy", "-flush_packets", "1",
             "-f", self.muxer, self.url],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._relay_log, bufsize=0)  # unbuffered
        self._container = av.open(self._proc.stdin, mode="w", format="mpegts", options={"flush_packets": "1"})
        self._add_video(self._container)

    def send(self, wall: float, frame: np.ndarray) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self._relay_log.seek(0)
            said = self._relay_log.read().decode(errors="replace").strip().splitlines()
            raise OutputError(f"ffmpeg exited {self._proc.returncode}: {said[-1] if said else 'no message'}")
        pts = int(round(wall * 1000))
        if pts <= self._last_pts:  # two frames in one millisecond: keep the first
            return
        self._last_pts = pts
        video = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video.pts, video.time_base = pts, TIME_BASE
        self._container.mux(self._video.encode(video))  # the encoder converts (and scales) to yuv420p

    def abort(self) -> None:
        proc = self._proc
        if proc is not None:
            proc.kill()  # a relay that blocks (an srt listener nobody called) ends, and so does the write into it

    def release(self) -> None:
        try:
            if self._container is not None:
                self._container.close()
        finally:
            self._container = self._video = None
            if self._proc is not None:
                proc, self._proc = self._proc, None
                try:
                    proc.stdin.close()
                    proc.wait(timeout=2)
                except (OSError, subprocess.TimeoutExpired):
                    proc.kill()
                    proc.wait()
                self._relay_log.close()


class NdiOutput(Output):
    """An NDI source named `source` (receivers list it as "MACHINE (source)"), RGBX frames at the output size."""

    kind = "ndi"

    def __init__(self, source: str, width: int, height: int, fps: float, queue_frames: int = 2):
        super().__init__(f"NDI {source!r}", width, height, queue_frames)
        self.ndi = ndi_library()
        self.source = source
        self.fps = fps if fps > 0 else 60.0
        self._sender = None
        self._rgbx = np.full((height, width, 4), 255, np.uint8)  # alpha stays opaque; RGB copied in per frame

    def open(self) -> None:
        ndi = self.ndi
        frame = ndi.VideoSendFrame()
        frame.set_resolution(self.width, self.height)
        frame.set_frame_rate(Fraction(round(self.fps * 1000), 1000))  # nominal: frames go out as displayed
        frame.set_fourcc(ndi.FourCC.RGBX)
        sender = ndi.Sender(self.source, clock_video=False)  # not clocked: never waits for a nominal frame time
        sender.set_video_frame(frame)
        sender.open()
        self._sender = sender

    def send(self, wall: float, frame: np.ndarray) -> None:
        self._rgbx[..., :3] = rgb_at(frame, self.width, self.height)
        self._sender.write_video(self._rgbx.reshape(-1))  # compressed and sent before it returns

    def release(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.close()

    def connections(self) -> int:
        """Receivers connected now (0 before the first frame opened the source)."""
        sender = self._sender
        return sender.get_num_connections(0) if sender is not None else 0


def ndi_library():
    """cyndilib, or an OutputError saying how to get it (checked once, when the show opens its outputs)."""
    try:
        import cyndilib
    except ImportError as e:
        raise OutputError(f"output.ndi needs cyndilib (NDI for Python): pip install 'vj[ndi]' ({e})") from None
    return cyndilib


class Outputs:
    """Every output of a show; offers a displayed frame to each."""

    def __init__(self, outputs: Sequence[Output] = ()):
        self.outputs = list(outputs)
        self._looked = [(time.monotonic(), 0)] * len(self.outputs)  # (when, dropped) at the last `new_drops`

    def __bool__(self) -> bool:
        return bool(self.outputs)

    def offer(self, wall: float, frame: np.ndarray) -> None:
        for output in self.outputs:
            output.offer(wall, frame)

    def new_drops(self) -> list[tuple[Output, int, float]]:
        """(output, frames it dropped, over how many seconds) since the last call: the HUD asks once a second."""
        now, drops = time.monotonic(), []
        for i, output in enumerate(self.outputs):
            (then, before), dropped = self._looked[i], output.dropped
            drops.append((output, dropped - before, now - then))
            self._looked[i] = (now, dropped)
        return drops

    def close(self) -> None:
        for output in self.outputs:
            output.close()


def configured(cfg: OutputConfig) -> bool:
    """Whether any output is asked for."""
    return bool(cfg.stream or cfg.ndi or cfg.spout or cfg.syphon)


def open_outputs(cfg: OutputConfig, size: tuple[int, int], fps: float) -> Outputs:
    """The `[output]` section's outputs at the show's size (started); an OutputError before any thread starts if
    one cannot work here (say it before the networks load)."""
    outputs: list[Output] = []
    if cfg.ndi:
        outputs.append(NdiOutput(cfg.ndi, *size, fps))
    if cfg.stream:
        outputs.append(StreamOutput(cfg.stream, *size, fps, cfg.stream_bitrate_kbps))
    if cfg.spout or cfg.syphon:
        from vj.render.texture_share import SpoutOutput, SyphonOutput  # it builds on this module

        if cfg.spout:
            outputs.append(SpoutOutput(cfg.spout, *size))
        if cfg.syphon:
            outputs.append(SyphonOutput(cfg.syphon, *size))
    return Outputs([output.start() for output in outputs])
