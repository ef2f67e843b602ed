"""Objectives (losses) behind one protocol, and the pure TD / projection maths."""
