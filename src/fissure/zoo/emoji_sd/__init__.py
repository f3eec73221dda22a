"""emoji-sd: the bundled Stable Diffusion, trained in gated stages on the emoji world."""
