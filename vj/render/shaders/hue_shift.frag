#version 330
// Rotates hue around the grey axis, drifting with time and jumping with the mids.
#include "common.glsl"
in vec2 v_uv;
out vec4 f_color;
void main() {
    vec3 c = texture(u_input, v_uv).rgb;
    float angle = u_amount * (0.1 * u_time + 2.0 * u_audio.z) * 6.2831853;
    vec3 k = vec3(0.57735);
    float ca = cos(angle);
    vec3 rotated = c * ca + cross(k, c) * sin(angle) + k * dot(k, c) * (1.0 - ca);
    f_color = vec4(clamp(rotated, 0.0, 1.0), 1.0);
}
