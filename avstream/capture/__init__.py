"""Audio capture: sources (device, file, synthetic), ring buffer and sample clock."""
