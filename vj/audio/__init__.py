"""Audio in: sources (live input, file playback, offline file) and the causal features they all produce."""
