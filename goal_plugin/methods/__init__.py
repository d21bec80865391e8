"""Balancing methods that need more than a gradient modifier: their core rules, state and references."""
