#version 330
// Mirrors the image into segments around the centre; the pattern turns slowly.
#include "common.glsl"
in vec2 v_uv;
out vec4 f_color;
void main() {
    float segments = 6.0;
    vec2 p = v_uv - 0.5;
    float r = length(p);
    float a = atan(p.y, p.x) + 0.05 * u_time;
    float seg = 6.2831853 / segments;
    a = abs(mod(a, seg) - 0.5 * seg);
    vec2 k = vec2(cos(a), sin(a)) * r + 0.5;
    f_color = vec4(mix(texture(u_input, v_uv).rgb, texture(u_input, k).rgb, u_amount), 1.0);
}
