#version 330
// Darkens the corners; opens up a little with the loudness.
#include "common.glsl"
in vec2 v_uv;
out vec4 f_color;
void main() {
    vec2 p = v_uv - 0.5;
    float falloff = smoothstep(0.95, 0.3 + 0.1 * u_audio.x, length(p) * 1.25);
    f_color = vec4(texture(u_input, v_uv).rgb * mix(1.0, falloff, u_amount), 1.0);
}
