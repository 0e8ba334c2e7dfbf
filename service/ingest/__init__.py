"""Data coming in: chunks and their checks (npz, images, PNG), labels by prediction id."""
