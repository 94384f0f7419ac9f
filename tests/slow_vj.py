"""`vj` with a slow engine, for tests of what a slow GPU does to a show: `python tests/slow_vj.py SECONDS ARGS...`
runs `vj ARGS...` with each guided step taking SECONDS longer. Not a setting of vj's own: a show never wants it."""

from __future__ import annotations

import sys
import time

from vj.engine.optimizer import LatentOptimizer


def slowed_render_frame(delay_s: float):
    """LatentOptimizer.render_frame that sleeps delay_s per guided step after making its frame."""
    real = LatentOptimizer.render_frame

    def render_frame(self, prompts, steps, *args, **kwargs):
        made = real(self, prompts, steps, *args, **kwargs)
        time.sleep(steps * delay_s)
        return made
    return render_frame


if __name__ == "__main__":
    LatentOptimizer.render_frame = slowed_render_frame(float(sys.argv[1]))
    from vj.cli import main

    sys.exit(main(sys.argv[2:]))
