"""LRC cue sheets: each `[mm:ss.xx]text` line becomes the prompt from that moment on.

Pure parsing, no file I/O but `read_lrc`'s reading and decoding. Supported:
- timestamps `[mm:ss]`, `[mm:ss.x]`, `[mm:ss.xx]`, `[mm:ss.xxx]`, `[mm:ss:xx]`, `[hh:mm:ss.xx]` (sets longer than an
  hour, as foobar2000's lyric plugins write them); minutes beyond 59; several timestamps at the start of one line,
  with or without spaces between them (the line is a cue at each);
- ID tags `[ti:..]`, `[ar:..]`, `[al:..]`, `[by:..]`, `[length:..]`, `[offset:+/-ms]` (positive = cues come
  sooner, as the LRC convention has it); unknown tags are kept;
- enhanced/word-level stamps `<mm:ss.xx>` inside the text: kept as word times, removed from the prompt;
- per-cue settings in braces at the end of the text: `{transition=2 boost=4 steps=5 snap=off q=bar}`, each checked
  against its range or its choices (`SETTING_RANGES`, `SETTING_CHOICES`); braces that hold no `name=value`
  settings (`{forever}`) are lyrics and stay text;
- lines out of order (sorted by time, stable); blank lines; CRLF; UTF-8 (BOM or not), UTF-16 and UTF-32 with a
  byte-order mark (Windows editors), other files read as cp1252.
- An empty lyric line (`[01:02.00]`) is a cue with no prompts: the timeline *holds* the previous prompts
  (an instrumental gap keeps its picture); write `[01:02.00]{clear}` to fade to no prompt.

Strict, a malformed line or setting is an `LrcError` naming file, line and column, and parsing stops at the first
one; lenient, a malformed line is a warning that skips the line, a bad setting one that skips the setting.
Warnings come in line order. Text kept as text that might have been meant otherwise (`{forever}`, `do :3`) is a
warning when strict. A file with no cues is an error for `read_lrc` (`parse_lrc` returns the empty sheet).

One pass over the lines, regular expressions only where a line needs them, identical lines parsed once: a
100 000-line sheet parses in about a second on a 2-core VM (the show parses edits on a thread:
`timeline.WatchedTimeline`).
"""

from __future__ import annotations

import codecs
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from vj.errors import UserError
from vj.cues.prompts import PromptError, WeightedPrompt, parse_prompts

# [m:ss], [m:ss.f], [m:ss:f] (first: by far the most common) or [h:mm:ss.f] (the fraction tells it from [m:ss:f])
_TIME = r"(?:(\d+):(\d{1,2})(?:[.:](\d{1,3}))?|(\d+):(\d\d):(\d\d)\.(\d{1,3}))"
_STAMP = re.compile(rf"\[{_TIME}\]")
_WORD_STAMP = re.compile(rf"<{_TIME}>")
_TAG = re.compile(r"\[([A-Za-z][A-Za-z0-9_#-]*)\s*:(.*?)\]\s*$")
_OFFSET = re.compile(r"^[ \t]*\[offset[ \t]*:([^\n]*?)\][ \t\r]*$", re.I | re.M)  # what _TAG reads, mostly
_SETTING = re.compile(r"[A-Za-z_]\w*=\S*")  # what makes braces a settings block rather than lyrics

# Each setting's type and range; steps is the range of the `steps_per_frame` parameter (vj.control.state.PARAMS,
# a test keeps them equal: cues may not import control).
SETTING_KEYS: dict[str, type] = {"transition": float, "boost": float, "steps": int, "snap": str, "q": str}
SNAP_MODES = ("off", "nearest")  # a cue's start: as the guided steps go, or gliding to the latent bank's nearest
# A cue held to the tempo grid (live): the names of `cues.quantize` (vj.control.tempo.QUANTA; a test keeps them equal)
QUANTIZE_MODES = ("off", "beat", "bar", "2bars", "4bars")
SETTING_CHOICES: dict[str, tuple[str, ...]] = {"snap": SNAP_MODES, "q": QUANTIZE_MODES}
SETTING_RANGES: dict[str, tuple[float, float]] = {"transition": (0.0, 60.0), "boost": (0.0, 20.0), "steps": (0, 16)}
_RANGE_TEXT = {"transition": "seconds from 0 to 60", "boost": "a number from 0 to 20",
               "steps": "a whole number from 0 to 16"}


class LrcError(UserError, ValueError):
    """A malformed cue sheet: `file:line:col: message`, or `file: message` for the file as a whole."""

    def __init__(self, source: str, line: int, column: int, message: str):
        super().__init__(f"{source}:{line}:{column}: {message}" if line else f"{source}: {message}")
        self.source, self.line, self.column, self.reason = source, line, column, message


@dataclass(frozen=True, slots=True)  # slots: a long sheet holds 100 000s of these
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
    snap: str | None = None             # "off" or "nearest" for this cue's start; None = config default
    quantize: str | None = None         # {q=bar}: live, the cue waits for the tempo grid's boundary; None = at its time


@dataclass
class CueSheet:
    tags: dict[str, str] = field(default_factory=dict)
    cues: list[Cue] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    source: str = "<lrc>"

    @property
    def offset(self) -> float:
        """The [offset:] tag in seconds (positive = cues come sooner)."""
        return _offset_seconds(self.tags.get("offset", "0"))


def _offset_seconds(milliseconds: str) -> float:
    try:
        value = float(milliseconds.strip() or 0) / 1000.0
    except ValueError:
        return 0.0
    return value if math.isfinite(value) else 0.0


_FRACTION = {1: 10.0, 2: 100.0, 3: 1000.0}


def _seconds(short_minutes: str | None, short_seconds: str | None, short_fraction: str | None,
             hours: str | None, minutes: str | None, seconds: str | None, fraction: str | None) -> float:
    """Seconds from the seven groups of `_TIME` (digits, so int() cannot fail); a ValueError says what is out of
    range."""
    if hours is None:  # [mm:ss.xx] first: it runs for every line and every word
        value = int(short_seconds)
        if value >= 60:
            raise ValueError("seconds must be below 60")
        value += int(short_minutes) * 60
        return value + int(short_fraction) / _FRACTION[len(short_fraction)] if short_fraction else float(value)
    if int(minutes) >= 60 or int(seconds) >= 60:
        raise ValueError("minutes must be below 60" if int(minutes) >= 60 else "seconds must be below 60")
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int(fraction) / _FRACTION[len(fraction)]


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),  # before UTF-16: LE starts alike
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode(data: bytes) -> str:
    """By the byte-order mark (UTF-8, UTF-16, UTF-32); without one UTF-8, falling back to cp1252 (then latin-1,
    which always decodes)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")  # the file says what it is: a torn character is one
    for encoding in ("utf-8", "cp1252", "latin-1"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes any bytes")


def read_lrc(path: str | Path, lenient: bool = False, require_cues: bool = True) -> CueSheet:
    """Reads and parses a cue sheet file; one with no cues is an `LrcError` unless `require_cues` is False."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise LrcError(str(path), 0, 0, f"cannot read: {e.strerror or e}") from None
    sheet = parse_lrc(decode(data), source=str(path), lenient=lenient)
    if require_cues and not sheet.cues:
        why = "no [mm:ss.xx] lines"
        if sheet.warnings:
            why = f"{len(sheet.warnings)} line(s) skipped, first: {sheet.warnings[0]}"
        if b"\x00" in data[:4096]:
            why += "; not text, or UTF-16 without a byte-order mark?"
        raise LrcError(str(path), 0, 0, f"0 cues ({why})")
    return sheet


def parse_lrc(text: str, source: str = "<lrc>", lenient: bool = False) -> CueSheet:
    text = text.lstrip("\ufeff")
    # The offset shifts every cue; a tag may come after the cues, so guess it with one scan of the text (usually
    # right: one pass), and parse again in the rare case the sheet's own reading of its tags disagrees.
    offsets = _OFFSET.findall(text)
    guess = _offset_seconds(offsets[-1]) if offsets else 0.0
    sheet = _Parser(source, lenient, guess).parse(text)
    return sheet if sheet.offset == guess else _Parser(source, lenient, sheet.offset).parse(text)


def _lines(text: str) -> Iterator[str]:
    """The lines one at a time: a list of them all would add half the sheet's size again to the parse's peak."""
    if "\n" not in text:  # one line, or an old Mac file (CR alone)
        yield from text.splitlines()
        return
    start = 0
    while (end := text.find("\n", start)) >= 0:
        yield text[start:end]
        start = end + 1
    yield text[start:]


@dataclass(frozen=True, slots=True)
class _Settings:
    transition: float | None = None
    boost: float | None = None
    steps: int | None = None
    clear: bool = False
    snap: str | None = None
    quantize: str | None = None
    problems: tuple[tuple[int, str], ...] = ()  # (offset in the braces, message) of each setting left out


_NO_SETTINGS = _Settings()
_SHARED = 4096                          # lines whose parse later identical lines share (a chorus, a refrain)


class _Parser:
    """One parse of one sheet. Identical lines share their parse (text, prompts, settings): a sheet that repeats its
    lines parses faster and holds one copy of each."""

    def __init__(self, source: str, lenient: bool, offset: float):
        self.source, self.lenient, self.offset = source, lenient, offset
        self.sheet = CueSheet(source=source)
        self.settings: dict[str, _Settings | None] = {}  # braces' content -> settings; None: lyrics, not settings
        self.prompts: dict[str, tuple[str, tuple[WeightedPrompt, ...], tuple[str, ...]] | str] = {}  # text ->
        # (the text, its prompts, notes) or why it is not a prompt

    def parse(self, text: str) -> CueSheet:
        cues, warnings, offset = self.sheet.cues, self.sheet.warnings, self.offset
        for number, raw in enumerate(_lines(text), start=1):
            line = raw.strip()
            if not line:
                continue
            lead = len(raw) - len(raw.lstrip()) if raw[0].isspace() else 0
            try:
                if line[0] != "[":
                    raise LrcError(self.source, number, lead + 1,
                                   "expected a [mm:ss.xx] timestamp or an [id:value] tag")
                stamps, pos = self._stamps(line, lead, number)
                if not stamps:
                    key, value = self._tag(line, lead, number)
                    self.sheet.tags[key] = value
                    continue
                if pos < len(line):
                    cue_text, prompts, words, settings = self._body(line[pos:], lead + pos + 1, number)
                else:
                    cue_text, prompts, words, settings = "", (), (), _NO_SETTINGS
            except LrcError as e:
                if not self.lenient:
                    raise
                warnings.append(f"{e} (line skipped)")
                continue
            for stamp in stamps:
                cues.append(Cue(max(0.0, stamp - offset), cue_text, prompts, words, number, settings.transition,
                                settings.boost, settings.steps, settings.clear, settings.snap, settings.quantize))
        cues.sort(key=_time)  # stable: cues at one time keep the file's order
        return self.sheet

    def _stamps(self, line: str, lead: int, number: int) -> tuple[list[float], int]:
        """The leading [time] stamps (spaces between them allowed) and where the rest of the line starts."""
        stamps: list[float] = []
        pos = scan = 0
        while match := _STAMP.match(line, scan):
            try:
                stamps.append(_seconds(*match.groups()))
            except ValueError as e:
                raise LrcError(self.source, number, lead + scan + 1, f"{e} in {match.group(0)}") from None
            pos = scan = match.end()
            while scan < len(line) and line[scan].isspace():  # another stamp may follow a space: `[00:20] [00:40]x`
                scan += 1
        return stamps, pos

    def _tag(self, line: str, lead: int, number: int) -> tuple[str, str]:
        tag = _TAG.match(line)
        if tag:
            return tag.group(1).lower(), tag.group(2).strip()
        close = line.find("]")
        what = line[: close + 1] if close > 0 else line[:20]
        raise LrcError(self.source, number, lead + 1, f"malformed timestamp or tag {what!r}")

    def _body(self, rest: str, column: int, number: int
              ) -> tuple[str, tuple[WeightedPrompt, ...], tuple[tuple[float, str], ...], _Settings]:
        """Text, prompts, word times and settings of one cue line (`rest`: the text after its stamps, at
        `column`; it ends in no space)."""
        settings = _NO_SETTINGS
        if rest[-1] == "}":
            start = rest.rfind("{")
            if start >= 0 and rest.find("}", start) == len(rest) - 1:
                settings, rest = self._settings(rest, start, column, number)

        words: tuple[tuple[float, str], ...] = ()
        if "<" in rest:
            rest, words = self._word_stamps(rest, column, number)
        text = " ".join(rest.split())
        found = self.prompts.get(text)
        if found is None:
            if len(self.prompts) >= _SHARED:
                self.prompts.clear()
            notes: list[str] = []
            try:
                found = (text, tuple(parse_prompts(text, notes)), tuple(notes))
            except PromptError as e:
                found = str(e)
            self.prompts[text] = found
        if isinstance(found, str):
            raise LrcError(self.source, number, column, found)
        text, prompts, notes = found  # the first such line's text: one copy for all
        if notes and not self.lenient:
            self.sheet.warnings.extend(f"{self.source}:{number}:{column}: {note}" for note in notes)
        return text, prompts, words, settings

    def _settings(self, rest: str, start: int, column: int, number: int) -> tuple[_Settings, str]:
        """The `{...}` at rest[start:] read as settings, and the rest without it; braces that hold no settings
        are lyrics: they stay in the text (a warning when strict). A bad setting is an error, or when lenient a
        warning that leaves it out."""
        block = rest[start + 1:-1]
        if block not in self.settings:
            if len(self.settings) >= _SHARED:
                self.settings.clear()
            self.settings[block] = _read_settings(block)
        settings = self.settings[block]
        if settings is None:
            if not self.lenient:
                self.sheet.warnings.append(f"{self.source}:{number}:{column + start}: {rest[start:]!r} is not cue "
                                           "settings (name=value); kept as text")
            return _NO_SETTINGS, rest
        for offset, message in settings.problems:
            error = LrcError(self.source, number, column + start + 1 + offset, message)
            if not self.lenient:
                raise error
            self.sheet.warnings.append(f"{error} (setting skipped)")
        return settings, rest[:start]

    def _word_stamps(self, rest: str, column: int, number: int) -> tuple[str, tuple[tuple[float, str], ...]]:
        """The text without its `<mm:ss.xx>` word stamps, and (seconds, word) for each stamped word."""
        pieces = _WORD_STAMP.split(rest)  # text, then the 7 groups of a stamp and the text after it, ...
        words = []
        try:
            for i in range(1, len(pieces), 8):
                seconds = _seconds(*pieces[i:i + 7])
                word = " ".join(pieces[i + 7].split())
                if word:
                    words.append((max(0.0, seconds - self.offset), word))
        except ValueError as e:
            raise LrcError(self.source, number, column, f"{e} in a word stamp") from None
        return "".join(pieces[::8]), tuple(words)


def _time(cue: Cue) -> float:
    return cue.time


def _read_settings(block: str) -> _Settings | None:
    """`transition=2 boost=4 steps=5 clear` (the inside of the braces) as settings; None if it is not settings
    at all (`forever`, `la la la`): every item must be `clear` or `name=value`."""
    items = [(match.start(), match.group(0)) for match in re.finditer(r"\S+", block)]
    if not items or not all(item == "clear" or _SETTING.fullmatch(item) for _, item in items):
        return None
    values: dict[str, float | int | str] = {}
    problems = []
    for offset, item in items:
        if item == "clear":
            values["clear"] = True
            continue
        key, _, text = item.partition("=")
        if key not in SETTING_KEYS:
            problems.append((offset, f"unknown cue setting {item!r} (known: {', '.join(SETTING_KEYS)}, clear)"))
            continue
        if SETTING_KEYS[key] is str:
            if text in SETTING_CHOICES[key]:
                values[key] = text
            else:
                choices = ", ".join(SETTING_CHOICES[key])
                problems.append((offset, f"cue setting {item!r}: {key} must be one of {choices}"))
            continue
        low, high = SETTING_RANGES[key]
        try:
            value: float | int = SETTING_KEYS[key](text)
        except ValueError:
            value = math.nan
        if math.isfinite(value) and low <= value <= high:
            values[key] = value
        else:
            problems.append((offset, f"cue setting {item!r} is out of range ({key}: {_RANGE_TEXT[key]})"))
    steps = values.get("steps")
    return _Settings(values.get("transition"), values.get("boost"), None if steps is None else int(steps),
                     bool(values.get("clear")), values.get("snap"), values.get("q"), tuple(problems))
