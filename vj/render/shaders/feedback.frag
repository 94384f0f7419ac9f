#version 330
// Trails: the last displayed frame, slightly zoomed, kept under the new one (more with the bass).
#include "common.glsl"
in vec2 v_uv;
out vec4 f_color;
void main() {
    vec2 uv = (v_uv - 0.5) * (0.985 - 0.01 * u_audio.y) + 0.5;
    vec3 trail = texture(u_history, uv).rgb;
    vec3 now = texture(u_input, v_uv).rgb;
    f_color = vec4(max(now, trail * (0.6 * u_amount)), 1.0);
}
