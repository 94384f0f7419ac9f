#version 330
// Zooms in on the beat/onset and relaxes between them.
#include "common.glsl"
in vec2 v_uv;
out vec4 f_color;
void main() {
    float zoom = 1.0 + 0.15 * u_amount * max(u_beat, u_onset);
    f_color = vec4(texture(u_input, (v_uv - 0.5) / zoom + 0.5).rgb, 1.0);
}
