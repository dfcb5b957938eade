"""Timing layer: compute model, fluid decode sharing, k-slot servers, network and topology."""
