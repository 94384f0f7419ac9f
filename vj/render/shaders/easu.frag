#version 330
// Edge-adaptive upscaling, after the published ideas of AMD FidelityFX Super Resolution 1 (EASU); written for vj.
// Each output pixel is a 12-tap weighted sum around its position in the frame. The kernel is Lanczos-2-like,
// turned to the local gradient: narrow across an edge (keeps it sharp), long along it (smooths its staircase).
// Where the neighbourhood is flat or noisy it relaxes to a short, soft kernel, so noise is not sharpened.
in vec2 v_uv;
out vec4 f_color;
uniform sampler2D u_input;     // the blended frame at its own size (bottom row first)
uniform vec2 u_fit_scale;      // frame uv span of the output, around the centre (as in blend.frag)

// The taps, as offsets from the texel at or below-left of the sample point:
//       b c          b = 0,  c = 1
//     e f g h        e = 2,  f = 3,  g = 4,  h = 5
//     i j k l        i = 6,  j = 7,  k = 8,  l = 9
//       n o          n = 10, o = 11
const ivec2 TAPS[12] = ivec2[12](ivec2(0, -1), ivec2(1, -1), ivec2(-1, 0), ivec2(0, 0), ivec2(1, 0), ivec2(2, 0),
                                 ivec2(-1, 1), ivec2(0, 1), ivec2(1, 1), ivec2(2, 1), ivec2(0, 2), ivec2(1, 2));

float luma(vec3 c) { return c.g + 0.5 * (c.r + c.b); }  // only ratios and directions of its differences matter
float sq(float x) { return x * x; }

// One texel of the 2x2 quad around the sample point, given its luma (c) and its four neighbours': adds its
// gradient and how edge-like it is, by its bilinear weight w. Edge-likeness per axis is the central difference over
// the larger one-sided one: 1 on a ramp or a step, 0 on a one-texel line or noise (the differences cancel).
void analyse(float c, float left, float right, float up, float down, float w, inout vec2 dir, inout float edge) {
    vec2 central = vec2(right - left, down - up);
    vec2 one_sided = max(abs(vec2(right, down) - c), abs(c - vec2(left, up)));
    vec2 likeness = clamp(abs(central) / max(one_sided, 1e-6), 0.0, 1.0);
    dir += central * w;
    edge += (sq(likeness.x) + sq(likeness.y)) * w;
}

void main() {
    vec2 uv = (v_uv - 0.5) * u_fit_scale + 0.5;
    if (any(lessThan(uv, vec2(0.0))) || any(greaterThan(uv, vec2(1.0)))) { f_color = vec4(0.0, 0.0, 0.0, 1.0); return; }
    ivec2 size = textureSize(u_input, 0);
    vec2 pos = uv * vec2(size) - 0.5;  // in texels, texel centres on integers
    ivec2 base = ivec2(floor(pos));
    vec2 f = pos - floor(pos);
    vec3 c[12];
    float l[12];
    for (int i = 0; i < 12; i++) {
        c[i] = texelFetch(u_input, clamp(base + TAPS[i], ivec2(0), size - 1), 0).rgb;
        l[i] = luma(c[i]);
    }
    vec2 dir = vec2(0.0);
    float edge = 0.0;
    analyse(l[3], l[2], l[4], l[0], l[7], (1.0 - f.x) * (1.0 - f.y), dir, edge);  // f
    analyse(l[4], l[3], l[5], l[1], l[8], f.x * (1.0 - f.y), dir, edge);          // g
    analyse(l[7], l[6], l[8], l[3], l[10], (1.0 - f.x) * f.y, dir, edge);         // j
    analyse(l[8], l[7], l[9], l[4], l[11], f.x * f.y, dir, edge);                 // k
    float dir_len2 = dot(dir, dir);
    dir = dir_len2 < 1e-10 ? vec2(1.0, 0.0) : dir * inversesqrt(dir_len2);
    edge = sq(0.5 * edge);  // 0 flat or noisy .. 1 a clean edge (each axis gave up to 1)

    // Distances are scaled before the kernel: across the edge by up to sqrt(2) on a diagonal (a pixel spans sqrt(2)
    // across a diagonal step, so the step arrives that much softer), along the edge by down to 1/2 (the kernel
    // reaches twice as far along it).
    float diagonal = 1.0 / max(abs(dir.x), abs(dir.y));  // 1 on an axis, sqrt(2) on a diagonal
    vec2 scale = vec2(1.0 + (diagonal - 1.0) * edge, 1.0 - 0.5 * edge);
    // The window (window * x^2 - 1)^2 ends the kernel at x^2 = 1 / window: at sqrt(2) texels where flat (almost no
    // negative lobe: soft), at about 2.2 on an edge (the whole negative lobe: sharp).
    float window = 0.5 - 0.29 * edge;
    float end2 = 1.0 / window;
    vec3 sum = vec3(0.0);
    float weights = 0.0;
    for (int i = 0; i < 12; i++) {
        vec2 d = vec2(TAPS[i]) - f;
        vec2 v = vec2(dot(d, dir), dot(d, vec2(-dir.y, dir.x))) * scale;  // (across, along) the edge
        float x2 = min(dot(v, v), end2);
        // Lanczos 2 without sin or sqrt: a polynomial in x^2 that is 1 at 0 and 0 at 1 and 2, times the window.
        float w = (25.0 / 16.0 * sq(0.4 * x2 - 1.0) - 9.0 / 16.0) * sq(window * x2 - 1.0);
        sum += w * c[i];
        weights += w;
    }
    // No ringing: the result stays within the 2x2 quad's colours.
    vec3 lo = min(min(c[3], c[4]), min(c[7], c[8]));
    vec3 hi = max(max(c[3], c[4]), max(c[7], c[8]));
    f_color = vec4(clamp(sum / weights, lo, hi), 1.0);
}
