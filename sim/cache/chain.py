"""The tier chain below HBM, declared once: which lower tiers exist and where a victim goes.

Blocks travel down ``TIERS``: HBM -> host DRAM (per node) -> EIC pool (per
rack) -> remote SSD. A tier that is absent is skipped, and a victim that a
tier refuses (admission filter) goes on to the next one. Two rules bend the
plain chain:

* ``publish_to_eic`` (``cluster.evict_to_eic`` with a pool): an HBM victim
  is also written to the rack's EIC pool at once, where every GPU of the rack
  can find it, besides going to DRAM.
* ``dram_victims_down``: whether a DRAM victim moves on down the chain or is
  dropped.

The cluster cache (``sim.cache.cluster_lower``) and the PD lower tiers
(``sim.cache.spill``) both move victims by this declaration; their chains
differ only in the constructor each uses (``TierChain.cluster`` and
``TierChain.pd``, see there).
"""
from __future__ import annotations

from dataclasses import dataclass

TIERS = ("hbm", "dram", "eic", "ssd")  # the order a victim travels down


@dataclass(frozen=True)
class TierChain:
    dram: bool  # the node has a host DRAM tier
    eic: bool  # the rack has an EIC pool (that this mode writes victims to)
    ssd: bool  # there is a remote SSD tier
    publish_to_eic: bool  # an HBM victim is also written to the rack's EIC pool at once
    dram_victims_down: bool  # a DRAM victim moves on down (else dropped)

    @classmethod
    def cluster(cls, *, dram: bool, eic: bool, ssd: bool, evict_to_eic: bool) -> TierChain:
        """Cluster mode. With ``evict_to_eic`` the pool received every block when it left HBM, so a
        DRAM victim is dropped (if the pool has evicted it since, it judged it colder than what it
        keeps); without, the chain is strict: HBM -> DRAM -> EIC -> SSD."""
        publish = evict_to_eic and eic
        return cls(dram=dram, eic=eic, ssd=ssd, publish_to_eic=publish, dram_victims_down=not publish)

    @classmethod
    def pd(cls, *, dram: bool, eic: bool, evict_to_eic: bool) -> TierChain:
        """PD mode keeps no remote SSD and writes to the EIC pool only under ``evict_to_eic``; there a
        DRAM victim goes to the pool too, unless the pool holds it already (the results of PD runs
        are pinned with this rule, which differs from cluster mode's)."""
        use_eic = evict_to_eic and eic
        return cls(dram=dram, eic=use_eic, ssd=False, publish_to_eic=use_eic, dram_victims_down=True)

    def below(self, tier: str) -> str | None:
        """The first tier under `tier` that exists, None at the bottom."""
        present = {"dram": self.dram, "eic": self.eic, "ssd": self.ssd}
        for t in TIERS[TIERS.index(tier) + 1:]:
            if present[t]:
                return t
        return None

    def victim_goes(self, tier: str) -> str | None:
        """Where a victim of `tier` goes (None: dropped)."""
        if tier == "dram" and not self.dram_victims_down:
            return None
        return self.below(tier)
