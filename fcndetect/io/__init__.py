"""Input decoding, output sinks and drawing."""
