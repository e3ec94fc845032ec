"""Evaluation: the seed's table and figures, per-class and calibration scores, and the model card."""
