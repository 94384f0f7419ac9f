"""The programs: `vj live` / `vj rehearse` (show), `vj render` / `vj replay` (render), wired from the library layers
below (audio, cues, control, models < engine < render); nothing below imports from here."""
