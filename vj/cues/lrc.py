"""LRC cue sheets: each `[mm:ss.xx]text` line becomes the prompt from that moment on.

Pure parsing, no file I/O but `read_lrc`'s decoding. Supported:
- timestamps `[mm:ss]`, `[mm:ss.x]`, `[mm:ss.xx]`, `[mm:ss.xxx]`, `[mm:ss:xx]`; minutes beyond 59; several
  timestamps on one line (the line is a cue at each);
- ID tags `[ti:..]`, `[ar:..]`, `[al:..]`, `[by:..]`, `[length:..]`, `[offset:+/-ms]` (positive = cues come
  sooner, as the LRC convention has it); unknown tags are kept;
- enhanced/word-level stamps `<mm:ss.xx>` inside the text: kept as word times, removed from the prompt;
- per-cue settings in braces at the end of the text: `{transition=2 boost=4 steps=5}` (seconds of crossfade
  into this cue, learning-rate boost multiplier, guided steps per frame);
- lines out of order (sorted by time, stable); blank lines; a UTF-8 BOM; CRLF; non-UTF-8 files read as cp1252.
- An empty lyric line (`[01:02.00]`) is a cue with no prompts: the timeline *holds* the previous prompts
  (an instrumental gap keeps its picture); write `[01:02.00]{clear}` to fade to no prompt.

A malformed line is an `LrcError` naming file, line and column (strict), or a warning that skips it (lenient).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from vj.cues.prompts import PromptError, WeightedPrompt, parse_prompts

_STAMP = re.compile(r"\[(\d+):(\d{1,2})(?:([.:])(\d{1,3}))?\]")
_TAG = re.compile(r"\[([A-Za-z][A-Za-z0-9_#-]*)\s*:(.*?)\]\s*$")
_WORD_STAMP = re.compile(r"<(\d+):(\d{1,2})(?:([.:])(\d{1,3}))?>")
_SETTINGS = re.compile(r"\{([^{}]*)\}\s*$")
SETTING_KEYS = {"transition": float, "boost": float, "steps": int}


class LrcError(ValueError):
    """A malformed cue sheet line: `file:line:col: message`."""

    def __init__(self, source: str, line: int, column: int, message: str):
        super().__init__(f"{source}:{line}:{column}: {message}")
        self.source, self.line, self.column, self.reason = source, line, column, message


@dataclass(frozen=True)
class Cue:
    time: float                         # seconds, offset applied
    text: str                           # the line's text, word stamps and settings removed, whitespace collapsed
    prompts: tuple[WeightedPrompt, ...]  # parsed from text; () holds the previous cue's prompts
    words: tuple[tuple[float, str], ...] = ()  # (seconds, word) from enhanced stamps
    line: int = 0                       # line number in the file (1-based)
    transition: float | None = None     # crossfade into this cue in seconds; None = config default
    boost: float | None = None          # learning-rate boost multiplier; None = config default
    steps: int | None = None            # guided steps per frame from this cue on; None = unchanged
    clear: bool = False                 # fade to no prompt instead of holding


@dataclass
class CueSheet:
    tags: dict[str, str] = field(default_factory=dict)
    cues: list[Cue] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    source: str = "<lrc>"

    @property
    def offset(self) -> float:
        """The [offset:] tag in seconds (positive = cues come sooner)."""
        try:
            return float(self.tags.get("offset", "0").strip() or 0) / 1000.0
        except ValueError:
            return 0.0


def _stamp_seconds(minutes: str, seconds: str, fraction: str | None) -> float:
    value = int(minutes) * 60 + int(seconds)
    if fraction:
        value += int(fraction) / 10 ** len(fraction)
    return float(value)


def decode(data: bytes) -> str:
    """UTF-8 (BOM or not), falling back to cp1252 (then latin-1, which always decodes)."""
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes any bytes")


def read_lrc(path: str | Path, lenient: bool = False) -> CueSheet:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise LrcError(str(path), 0, 0, f"cannot read: {e.strerror or e}") from None
    return parse_lrc(decode(data), source=str(path), lenient=lenient)


def parse_lrc(text: str, source: str = "<lrc>", lenient: bool = False) -> CueSheet:
    sheet = CueSheet(source=source)
    pending: list[tuple[float, int, str, int]] = []  # (stamp, line, rest, column of rest)
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            parsed = _parse_line(line, raw, number, source)
        except LrcError as e:
            if not lenient:
                raise
            sheet.warnings.append(f"{e} (line skipped)")
            continue
        if isinstance(parsed, tuple):
            key, value = parsed
            sheet.tags[key] = value
        else:
            pending.extend(parsed)

    offset = sheet.offset
    cues = []
    for stamp, number, rest, column in pending:
        try:
            cues.append(_make_cue(max(0.0, stamp - offset), rest, number, column, source, offset))
        except LrcError as e:
            if not lenient:
                raise
            sheet.warnings.append(f"{e} (line skipped)")
    sheet.cues = sorted(cues, key=lambda c: c.time)
    return sheet


def _parse_line(line: str, raw: str, number: int, source: str) -> tuple[str, str] | list[tuple[float, int, str, int]]:
    lead = len(raw) - len(raw.lstrip())
    if not line.startswith("["):
        raise LrcError(source, number, lead + 1, "expected a [mm:ss.xx] timestamp or an [id:value] tag")
    stamps, pos = [], 0
    while pos < len(line) and line[pos] == "[":
        match = _STAMP.match(line, pos)
        if not match:
            break
        minutes, seconds, _, fraction = match.groups()
        if int(seconds) >= 60:
            raise LrcError(source, number, lead + pos + 1, f"seconds must be below 60 in {match.group(0)}")
        stamps.append(_stamp_seconds(minutes, seconds, fraction))
        pos = match.end()
    if stamps:
        return [(stamp, number, line[pos:], lead + pos + 1) for stamp in stamps]
    tag = _TAG.match(line)
    if tag:
        return tag.group(1).lower(), tag.group(2).strip()
    close = line.find("]")
    what = line[: close + 1] if close > 0 else line[:20]
    raise LrcError(source, number, lead + 1, f"malformed timestamp or tag {what!r}")


def _make_cue(time: float, rest: str, number: int, column: int, source: str, offset: float) -> Cue:
    settings: dict[str, float | int] = {}
    clear = False
    match = _SETTINGS.search(rest)
    if match:
        for item in match.group(1).split():
            key, eq, value = item.partition("=")
            if key == "clear" and not eq:
                clear = True
                continue
            if key not in SETTING_KEYS or not eq:
                raise LrcError(source, number, column + match.start() + 1,
                               f"unknown cue setting {item!r} (known: {', '.join(SETTING_KEYS)}, clear)")
            try:
                settings[key] = SETTING_KEYS[key](value)
            except ValueError:
                raise LrcError(source, number, column + match.start() + 1,
                               f"cue setting {key} needs a number, got {value!r}") from None
        rest = rest[: match.start()]

    words: list[tuple[float, str]] = []
    pieces = _WORD_STAMP.split(rest)
    # split() yields text, then 4 groups per stamp, then the text after it
    plain = [pieces[0]]
    for i in range(1, len(pieces), 5):
        minutes, seconds, _, fraction, after = pieces[i:i + 5]
        if int(seconds) >= 60:
            raise LrcError(source, number, column, f"seconds must be below 60 in a word stamp <{minutes}:{seconds}>")
        word = " ".join(after.split())
        if word:
            words.append((max(0.0, _stamp_seconds(minutes, seconds, fraction) - offset), word))
        plain.append(after)
    text = " ".join("".join(plain).split())
    try:
        prompts = tuple(parse_prompts(text))
    except PromptError as e:
        raise LrcError(source, number, column, str(e)) from None
    return Cue(time=time, text=text, prompts=prompts, words=tuple(words), line=number, clear=clear,
               transition=settings.get("transition"), boost=settings.get("boost"),
               steps=int(settings["steps"]) if "steps" in settings else None)
