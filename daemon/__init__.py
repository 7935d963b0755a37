"""moment-sync: keeps Visma e-conomic in step with Moment."""

__version__ = "0.1.0"
