"""Cues: LRC cue sheets, weighted prompts, and the timeline that turns them into a prompt mix at time t."""
