"""Engines move images to a :class:`~fcndetect.detector.Detector` and records back; ``local`` is threads."""
