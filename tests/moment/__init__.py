"""Tests of the Moment client, the hint decoder and the Moment sandbox."""
