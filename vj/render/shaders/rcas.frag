#version 330
// Contrast-adaptive sharpening after the upscale, after the published ideas of AMD FidelityFX Super Resolution 1
// (RCAS); written for vj. A negative lobe on the four neighbours, as strong as it can be without pushing the pixel
// out of range: full in low-contrast detail, none across a black-to-white edge. The result is kept within the five
// taps' range besides (a choice of vj's, not FSR's): edges steepen but never ring.
out vec4 f_color;
uniform sampler2D u_input;     // the upscaled image, output size
uniform float u_sharpness;     // 0 = none .. 1 = the most the limiter allows

// 0.25 would divide by zero below; 3/16 leaves a gain of at most 4 on the centre.
const float MAX_LOBE = 0.1875;

vec3 at(ivec2 p) { return texelFetch(u_input, clamp(p, ivec2(0), textureSize(u_input, 0) - 1), 0).rgb; }

void main() {
    ivec2 p = ivec2(gl_FragCoord.xy);
    vec3 e = at(p);
    vec3 b = at(p + ivec2(0, 1)), d = at(p - ivec2(1, 0)), f = at(p + ivec2(1, 0)), h = at(p - ivec2(0, 1));
    vec3 lo = min(min(b, d), min(f, h));
    vec3 hi = max(max(b, d), max(f, h));
    // out = (e + w (b + d + f + h)) / (1 + 4 w) with a lobe w <= 0. The most negative w that keeps out within
    // [0, 1] even at the worst, per channel: e at the ring's low end with the ring all at its high end (out >= 0),
    // and the other way round (out <= 1). The most cautious channel sets it for all three (no colour shifts).
    vec3 to_black = -lo / max(4.0 * hi, 1e-6);
    vec3 to_white = -(1.0 - hi) / max(4.0 * (1.0 - lo), 1e-6);
    vec3 limit = max(to_black, to_white);
    float w = u_sharpness * clamp(max(limit.r, max(limit.g, limit.b)), -MAX_LOBE, 0.0);
    f_color = vec4(clamp((e + w * (b + d + f + h)) / (1.0 + 4.0 * w), min(lo, e), max(hi, e)), 1.0);
}
