#version 330
// Temporal blend between the two newest generated frames, placed on the output by the fit (compositor.fit_scale).
// "bilinear" draws it at the output size; "sharp" at the frame's own size, for easu.frag to upscale.
in vec2 v_uv;
out vec4 f_color;
uniform sampler2D u_frame;       // newest generated frame
uniform sampler2D u_frame_prev;  // the one before
uniform float u_blend;           // 0 = previous frame, 1 = newest
uniform vec2 u_fit_scale;        // frame uv span of the output, around the centre: > 1 bars, < 1 crop
void main() {
    vec2 uv = (v_uv - 0.5) * u_fit_scale + 0.5;
    if (any(lessThan(uv, vec2(0.0))) || any(greaterThan(uv, vec2(1.0)))) { f_color = vec4(0.0, 0.0, 0.0, 1.0); return; }
    uv.y = 1.0 - uv.y;  // frames arrive top row first
    f_color = vec4(mix(texture(u_frame_prev, uv).rgb, texture(u_frame, uv).rgb, u_blend), 1.0);
}
