"""Fusion of the acoustic map with the camera picture."""
