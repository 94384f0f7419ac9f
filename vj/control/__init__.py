"""Control in: the one show state, and the OSC and MIDI listeners (and keys) that write to it."""
