#version 330
// Temporal blend between the two newest generated frames, fitted to the output with letterboxing.
in vec2 v_uv;
out vec4 f_color;
uniform sampler2D u_frame;       // newest generated frame
uniform sampler2D u_frame_prev;  // the one before
uniform float u_blend;           // 0 = previous frame, 1 = newest
uniform vec2 u_resolution;
uniform vec2 u_frame_size;
void main() {
    float out_aspect = u_resolution.x / u_resolution.y;
    float in_aspect = u_frame_size.x / u_frame_size.y;
    vec2 scale = out_aspect > in_aspect ? vec2(out_aspect / in_aspect, 1.0) : vec2(1.0, in_aspect / out_aspect);
    vec2 uv = (v_uv - 0.5) * scale + 0.5;
    if (any(lessThan(uv, vec2(0.0))) || any(greaterThan(uv, vec2(1.0)))) { f_color = vec4(0.0, 0.0, 0.0, 1.0); return; }
    uv.y = 1.0 - uv.y;  // frames arrive top row first
    f_color = vec4(mix(texture(u_frame_prev, uv).rgb, texture(u_frame, uv).rgb, u_blend), 1.0);
}
