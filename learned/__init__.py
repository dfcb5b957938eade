"""LightGBM eviction policy: per-access features, reuse labels, training, the ``learned`` policy.

Importing ``learned.policy`` registers ``learned`` in ``sim.policies.REGISTRY``
(``sim.policies`` imports it, so ``make_policy("learned", ...)`` just works).
"""

# Enter through sim.policies first: it imports learned.policy at its end, and a
# first import that started in learned.features would find itself half-done.
import sim.policies  # noqa: E402,F401
