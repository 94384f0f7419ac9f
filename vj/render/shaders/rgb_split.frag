#version 330
// Chromatic split: red and blue sampled apart horizontally, wider on onsets and highs.
#include "common.glsl"
in vec2 v_uv;
out vec4 f_color;
void main() {
    float d = u_amount * (0.004 + 0.02 * max(u_onset, u_audio.w));
    vec2 off = vec2(d, 0.0);
    f_color = vec4(texture(u_input, v_uv + off).r, texture(u_input, v_uv).g, texture(u_input, v_uv - off).b, 1.0);
}
