#version 330
// The HUD: a text image drawn over the picture with its own alpha (the viewport places it).
in vec2 v_uv;
out vec4 f_color;
uniform sampler2D u_text;
void main() {
    f_color = texture(u_text, vec2(v_uv.x, 1.0 - v_uv.y));
}
