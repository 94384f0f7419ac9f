"""Spout (Windows) and Syphon (macOS): the displayed frame shared with other software on the same machine.

Resolume, TouchDesigner, OBS, MadMapper and most media servers take a Spout or Syphon source as they would a
camera, with no network and no compression between. Each is an `Output` as the stream and NDI are (a thread of its
own behind a bounded queue: a slow receiver costs dropped frames, never the show), fed the frame the render loop
reads back once for every output. Sharing the window's own texture would save that readback, but the show's GL
context belongs to the render thread and an output must never make it wait.

Platform extras: `pip install 'vj[spout]'` (SpoutGL, Windows) and `pip install 'vj[syphon]'` (syphon-python,
macOS). Neither can run on the Linux machines vj is developed and tested on: the calls below follow the packages'
documentation and examples (SpoutGL's `examples/image/sender.py`, syphon-python's `MetalServerExample.py`) and have
not been run. Elsewhere each is refused in one line that names the platform and the outputs that work everywhere
(the config refuses it first, when it is read; `platform_library` again, for a config built in code).
"""

from __future__ import annotations

import importlib
import sys

import numpy as np

from vj.render.outputs import Output, OutputError, rgb_at

# output key -> (sys.platform, the system's name, the module, the package, what it is)
PLATFORM_OUTPUTS = {"spout": ("win32", "Windows", "SpoutGL", "SpoutGL", "Spout"),
                    "syphon": ("darwin", "macOS", "syphon", "syphon-python", "Syphon")}


def platform_library(key: str):
    """The module behind output.spout or output.syphon, or an OutputError in one line: another platform (use NDI or
    the stream), or the extra not installed."""
    platform, system, module, package, what = PLATFORM_OUTPUTS[key]
    if sys.platform != platform:
        raise OutputError(f"output.{key}: {what} is on {system} only, not {sys.platform}: use output.ndi (NDI) or "
                          "output.stream (H.264 over udp/srt) to reach other software")
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise OutputError(f"output.{key} needs {package}: pip install 'vj[{key}]' ({e})") from None


class SpoutOutput(Output):
    """A Spout sender named `sender` (receivers list it by that name), RGBA frames at the output size."""

    kind = "spout"

    def __init__(self, sender: str, width: int, height: int, queue_frames: int = 2):
        super().__init__(f"Spout {sender!r}", width, height, queue_frames)
        self.spout = platform_library("spout")
        self.sender = sender
        self._sender = None
        # RGBA, not RGB: 4 bytes a pixel keeps every row aligned for OpenGL's upload whatever the width
        self._rgba = np.full((height, width, 4), 255, np.uint8)

    def open(self) -> None:
        sender = self.spout.SpoutSender()
        # Spout shares a DirectX texture that it fills through OpenGL; this thread has no GL context (the show's
        # belongs to the render thread), so Spout makes a hidden one of its own here.
        sender.createOpenGL()
        sender.setSenderName(self.sender)
        self._sender = sender

    def send(self, wall: float, frame: np.ndarray) -> None:
        self._rgba[..., :3] = rgb_at(frame, self.width, self.height)
        # (pixels, width, height, format, invert, host FBO): rows top first, as a DirectX texture holds them, so
        # no flip; 0 = no FBO of vj's to restore afterwards
        if not self._sender.sendImage(self._rgba, self.width, self.height, self.spout.enums.GL_RGBA, False, 0):
            raise OutputError("Spout did not take the frame")

    def release(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.releaseSender()
            sender.closeOpenGL()


class SyphonOutput(Output):
    """A Syphon server named `server` (Metal), RGBA frames at the output size."""

    kind = "syphon"

    def __init__(self, server: str, width: int, height: int, queue_frames: int = 2):
        super().__init__(f"Syphon {server!r}", width, height, queue_frames)
        self.syphon = platform_library("syphon")
        self.server = server
        self._server = self._texture = self._region = None
        self._rgba = np.full((height, width, 4), 255, np.uint8)

    def open(self) -> None:
        import Metal  # pyobjc's Metal bindings: syphon-python depends on them

        server = self.syphon.SyphonMetalServer(self.server)  # the system's default GPU
        descriptor = Metal.MTLTextureDescriptor.texture2DDescriptorWithPixelFormat_width_height_mipmapped_(
            Metal.MTLPixelFormatRGBA8Unorm, self.width, self.height, False)
        self._texture = server.device.newTextureWithDescriptor_(descriptor)
        self._region = Metal.MTLRegion((0, 0, 0), (self.width, self.height, 1))
        self._server = server

    def send(self, wall: float, frame: np.ndarray) -> None:
        self._rgba[..., :3] = rgb_at(frame, self.width, self.height)
        # Metal's rows run top first, as vj's frame does: published unflipped
        self._texture.replaceRegion_mipmapLevel_withBytes_bytesPerRow_(self._region, 0, self._rgba.tobytes(),
                                                                      self.width * 4)
        self._server.publish_frame_texture(self._texture, is_flipped=False)

    def release(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()
