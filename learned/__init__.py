"""LightGBM eviction policy: per-access features, reuse labels, training, the ``learned`` policy.

``sim.policies.REGISTRY`` lists ``learned`` and imports ``learned.policy`` (which
registers the class) on the first lookup, so ``make_policy("learned", ...)`` just works.
"""
