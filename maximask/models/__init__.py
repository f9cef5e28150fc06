"""Default models shipped with the package (weights in safetensors + a JSON model card)."""
