"""Cache layer (Python reference): one tier, the node hierarchy, the cluster hierarchy, lower tiers, radix tree."""
