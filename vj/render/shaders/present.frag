#version 330
// Puts the compositor's output on the window's own framebuffer, whatever its current size.
in vec2 v_uv;
out vec4 f_color;
uniform sampler2D u_input;
void main() {
    f_color = vec4(texture(u_input, v_uv).rgb, 1.0);
}
