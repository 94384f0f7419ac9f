"""The engine: CLIP guidance losses, the per-frame latent optimiser, and the workers that run them."""
