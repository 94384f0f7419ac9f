// Uniforms every pass may use; the compositor sets those a shader declares.
uniform sampler2D u_input;     // the previous pass's output
uniform sampler2D u_history;   // the last displayed frame (for feedback)
uniform vec2 u_resolution;     // output size in pixels
uniform float u_time;          // show time in seconds
uniform vec4 u_audio;          // rms, bass, mid, high (0..1)
uniform float u_onset;         // onset envelope (0..1)
uniform float u_beat;          // beat envelope (0..1)
uniform float u_amount;        // this effect's strength (0..1, from the show state)
