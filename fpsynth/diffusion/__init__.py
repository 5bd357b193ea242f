"""Noise schedule, samplers and the cycle-diffusion losses (Algorithm 1)."""
