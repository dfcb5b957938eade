"""Cluster topology: a networkx graph of GPUs, hosts, racks, EIC pools, spine and remote SSD.

Public API (stable: the PD simulator builds on it; extend, do not rename)::

    topo = Topology.from_config(cfg)            # or Topology(TopologySpec(...))
    topo.n_gpus, topo.n_nodes, topo.n_racks, topo.gpus_per_node, topo.gpus_per_rack
    topo.node_of(g) -> int, topo.rack_of(g) -> int           # plain integer arithmetic
    topo.gpu(g), topo.dram(node), topo.eic(rack), topo.ssd()  # endpoint names (graph node keys)
    topo.has_eic, topo.has_remote_ssd
    topo.path(src, dst) -> tuple[Edge, ...]     # edges in traversal order, (u, v) directed
    topo.path_latency_s(src, dst) -> float      # sum of edge latencies
    topo.bottleneck_bytes_s(src, dst, lanes=1) -> float
    topo.edge(u, v) -> EdgeAttrs                # latency_s, bytes_s, cls, per_gpu
    topo.graph                                  # the networkx.Graph itself (built on first use)

Graph nodes (tuples, so names never collide)::

    ("gpu", g)      a GPU (0 .. racks*gpus_per_rack-1; GPUs of a node are consecutive)
    ("nvsw", n)     the NVLink switch of node n (NVLink domain)
    ("dram", n)     host DRAM of node n (reached from its GPUs over PCIe)
    ("tor", r)      top-of-rack switch of rack r (GPU NICs attach here: RDMA)
    ("eic", r)      the EIC (CXL/RDMA memory) pool of rack r - absent with 0 EIC nodes
    ("spine",)      the spine joining the racks' ToR uplinks
    ("ssd",)        the disaggregated remote SSD pool - absent with 0 capacity

Every other pair routes up to the ToR (GPU NIC, host NIC or EIC link), and
across the spine when the racks differ.

Edges and their link class (``cls``)::

    gpu - nvsw   "nvlink"  network.nvlink_bandwidth_gb_s (0 = GPU's) per GPU
    gpu - dram   "pcie"    hardware.dram.bandwidth_gb_s           per GPU
    gpu - tor    "nic"     network.nic_bandwidth_gb_s             per GPU
    dram - tor   "host_nic" network.nic_bandwidth_gb_s            per node (host memory <-> rack)
    tor - eic    "eic"     eic_nodes_per_rack x hardware.eic.bandwidth_gb_s  (pool side)
    tor - spine  "spine"   network.spine_bandwidth_gb_s           per rack uplink
    spine - ssd  "ssd"     network.remote_ssd_bandwidth_gb_s      aggregate

Latencies: the config gives *end-to-end* figures and edge latencies are
derived so that paths reproduce them exactly:

    GPU <-> GPU, same node        network.nvlink_latency_us     (2 nvlink edges, half each)
    GPU <-> own host DRAM         hardware.dram.latency_us      (1 pcie edge)
    GPU <-> GPU, same rack        network.rack_latency_us       (2 nic edges, half each)
    GPU <-> own rack's EIC pool   hardware.eic.latency_us       (nic + eic edge)
    GPU <-> GPU, other rack       network.cross_rack_latency_us (nic + 2 spine + nic)
    GPU <-> other rack's EIC      cross_rack - rack + eic latency
    GPU <-> remote SSD            network.remote_ssd_latency_us (nic + spine + ssd)
    host DRAM <-> ToR             network.rack_latency_us / 2   (like a GPU's NIC hop)

A transfer's uncontended time is ``path latency + bytes / bottleneck
bandwidth``. ``lanes`` models a tensor-parallel worker whose k GPUs move
their shards in parallel: per-GPU edges carry bytes/k, shared edges carry
all the bytes.

Routing is structural (the graph is a tree above the GPUs), so ``path`` is
O(1) and never runs a graph search; tests check it against
``networkx.shortest_path`` weighted by latency. ``edge``, endpoint checks and
the summary's counts are structural too, so a simulation never builds the
graph (3 edges per GPU: ~2 s and ~0.1 GB at 102,400 GPUs); tests check them
against it.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import cached_property

import networkx as nx

from sim.config.gpus import gpu_spec, intra_node_link_gb_s
from sim.errors import InputError

GB = 1e9  # bandwidths in config are GB/s (10^9 bytes/s)
US = 1e-6

Endpoint = tuple
Edge = tuple  # (u, v) directed in traversal order

LINK_CLASSES = ("nvlink", "pcie", "nic", "host_nic", "eic", "spine", "ssd")


@dataclass(frozen=True)
class EdgeAttrs:
    cls: str  # link class, one of LINK_CLASSES
    latency_s: float
    bytes_s: float  # bandwidth, bytes per second
    per_gpu: bool  # a GPU's own link (carries bytes / lanes of a TP worker)


@dataclass(frozen=True)
class TopologySpec:
    """Every figure the topology needs (SI units: seconds, bytes/s, bytes)."""

    racks: int
    gpus_per_rack: int
    gpus_per_node: int
    eic_nodes_per_rack: int = 4
    eic_capacity_bytes: float = 512 * 1024**3  # per rack pool
    remote_ssd_capacity_bytes: float = 1024**5
    nvlink_bytes_s: float = 450 * GB  # per direction (H100 NVLink 4: 900 GB/s total)
    nvlink_latency_s: float = 1 * US
    pcie_bytes_s: float = 25 * GB
    pcie_latency_s: float = 10 * US
    nic_bytes_s: float = 50 * GB
    rack_latency_s: float = 3 * US
    eic_node_bytes_s: float = 50 * GB
    eic_latency_s: float = 3 * US
    cross_rack_latency_s: float = 15 * US
    spine_bytes_s: float = 400 * GB
    remote_ssd_latency_s: float = 200 * US
    remote_ssd_bytes_s: float = 100 * GB

    @classmethod
    def from_config(cls, cfg) -> TopologySpec:
        c, n, h = cfg.cluster, cfg.network, cfg.hardware
        return cls(
            racks=c.racks,
            gpus_per_rack=c.gpus_per_rack,
            gpus_per_node=h.gpus_per_node,
            eic_nodes_per_rack=c.eic_nodes_per_rack,
            eic_capacity_bytes=h.eic.capacity_gib * 1024**3,
            remote_ssd_capacity_bytes=c.remote_ssd_capacity_gib * 1024**3,
            nvlink_bytes_s=intra_node_link_gb_s(n.nvlink_bandwidth_gb_s, gpu_spec(h.gpu), h.dram.bandwidth_gb_s) * GB,
            nvlink_latency_s=n.nvlink_latency_us * US,
            pcie_bytes_s=h.dram.bandwidth_gb_s * GB,
            pcie_latency_s=h.dram.latency_us * US,
            nic_bytes_s=n.nic_bandwidth_gb_s * GB,
            rack_latency_s=n.rack_latency_us * US,
            eic_node_bytes_s=h.eic.bandwidth_gb_s * GB,
            eic_latency_s=h.eic.latency_us * US,
            cross_rack_latency_s=n.cross_rack_latency_us * US,
            spine_bytes_s=n.spine_bandwidth_gb_s * GB,
            remote_ssd_latency_s=n.remote_ssd_latency_us * US,
            remote_ssd_bytes_s=n.remote_ssd_bandwidth_gb_s * GB,
        )

    def check(self) -> None:
        """Reject latencies that no edge split can reproduce (InputError names the key)."""
        if self.gpus_per_rack % self.gpus_per_node:
            raise InputError(
                f"cluster.gpus_per_rack={self.gpus_per_rack} does not divide into nodes of "
                f"{self.gpus_per_node} GPUs", where="cluster.gpus_per_rack")
        half_rack = self.rack_latency_s / 2
        if self.eic_latency_s < half_rack:
            raise InputError(
                f"hardware.eic.latency_us={self.eic_latency_s / US:g} is below half of "
                f"network.rack_latency_us={self.rack_latency_s / US:g} (the GPU's NIC hop alone)",
                where="hardware.eic.latency_us")
        if self.cross_rack_latency_s < self.rack_latency_s:
            raise InputError(
                f"network.cross_rack_latency_us={self.cross_rack_latency_s / US:g} is below "
                f"network.rack_latency_us={self.rack_latency_s / US:g}", where="network.cross_rack_latency_us")
        up = (self.cross_rack_latency_s - self.rack_latency_s) / 2
        if self.remote_ssd_latency_s < half_rack + up:
            raise InputError(
                f"network.remote_ssd_latency_us={self.remote_ssd_latency_s / US:g} is below the path to the "
                f"spine ({(half_rack + up) / US:g} us = rack/2 + (cross_rack - rack)/2)",
                where="network.remote_ssd_latency_us")


class Topology:
    """The cluster graph plus O(1) structural routing over it."""

    def __init__(self, spec: TopologySpec) -> None:
        spec.check()
        self.spec = spec
        self.n_racks = spec.racks
        self.gpus_per_rack = spec.gpus_per_rack
        self.gpus_per_node = spec.gpus_per_node
        self.nodes_per_rack = spec.gpus_per_rack // spec.gpus_per_node
        self.n_gpus = spec.racks * spec.gpus_per_rack
        self.n_nodes = self.n_gpus // spec.gpus_per_node
        self.has_eic = spec.eic_nodes_per_rack > 0 and spec.eic_capacity_bytes > 0
        self.has_remote_ssd = spec.remote_ssd_capacity_bytes > 0
        s = spec
        half_rack = s.rack_latency_s / 2
        up = (s.cross_rack_latency_s - s.rack_latency_s) / 2
        # One attribute object per link class: every edge of a class is alike,
        # so the graph stores a shared reference (10k GPUs x 3 edges stay cheap).
        self.classes: dict[str, EdgeAttrs] = {
            "nvlink": EdgeAttrs("nvlink", s.nvlink_latency_s / 2, s.nvlink_bytes_s, True),
            "pcie": EdgeAttrs("pcie", s.pcie_latency_s, s.pcie_bytes_s, True),
            "nic": EdgeAttrs("nic", half_rack, s.nic_bytes_s, True),
            "host_nic": EdgeAttrs("host_nic", half_rack, s.nic_bytes_s, False),
            "eic": EdgeAttrs("eic", s.eic_latency_s - half_rack,
                             max(1, s.eic_nodes_per_rack) * s.eic_node_bytes_s, False),
            "spine": EdgeAttrs("spine", up, s.spine_bytes_s, False),
            "ssd": EdgeAttrs("ssd", s.remote_ssd_latency_s - half_rack - up, s.remote_ssd_bytes_s, False),
        }
        # the link class of each edge, by the kinds of its ends (either order)
        self._cls_of = {frozenset(k): cl for k, cl in (
            (("gpu", "nvsw"), "nvlink"), (("gpu", "dram"), "pcie"), (("gpu", "tor"), "nic"),
            (("dram", "tor"), "host_nic"), (("tor", "eic"), "eic"), (("tor", "spine"), "spine"),
            (("spine", "ssd"), "ssd"))}

    @classmethod
    def from_config(cls, cfg) -> Topology:
        return cls(TopologySpec.from_config(cfg))

    # ------------------------------------------------------------ names
    @staticmethod
    def gpu(g: int) -> Endpoint:
        return ("gpu", g)

    @staticmethod
    def dram(node: int) -> Endpoint:
        return ("dram", node)

    @staticmethod
    def eic(rack: int) -> Endpoint:
        return ("eic", rack)

    @staticmethod
    def ssd() -> Endpoint:
        return ("ssd",)

    def node_of(self, g: int) -> int:
        return g // self.gpus_per_node

    def rack_of(self, g: int) -> int:
        return g // self.gpus_per_rack

    # ------------------------------------------------------------ graph
    @cached_property
    def graph(self) -> nx.Graph:
        """The networkx graph (built on first use; the simulation reads the structure below)."""
        return self._build()

    def has(self, x: Endpoint) -> bool:
        """Whether x is a node of the graph."""
        if not isinstance(x, tuple) or not x:
            return False
        kind = x[0]
        if len(x) == 1:
            return kind == "spine" or (kind == "ssd" and self.has_remote_ssd)
        if len(x) != 2 or not isinstance(x[1], numbers.Integral) or x[1] < 0:
            return False
        i = x[1]
        if kind == "gpu":
            return i < self.n_gpus
        if kind in ("nvsw", "dram"):
            return i < self.n_nodes
        if kind == "tor":
            return i < self.n_racks
        return kind == "eic" and self.has_eic and i < self.n_racks

    def _rack(self, x: Endpoint) -> int:
        """The rack of an endpoint below the spine."""
        kind, i = x[0], x[1]
        if kind == "gpu":
            return self.rack_of(i)
        if kind in ("nvsw", "dram"):
            return i // self.nodes_per_rack
        return i

    def _adjacent(self, u: Endpoint, v: Endpoint) -> bool:
        if not (self.has(u) and self.has(v)) or frozenset((u[0], v[0])) not in self._cls_of or u[0] == v[0]:
            return False
        if u[0] == "gpu" or v[0] == "gpu":
            g, o = (u, v) if u[0] == "gpu" else (v, u)
            return o[1] == (self.node_of(g[1]) if o[0] in ("nvsw", "dram") else self.rack_of(g[1]))
        if len(u) == 1 or len(v) == 1:
            return True  # spine - tor, spine - ssd
        return self._rack(u) == self._rack(v)  # dram - tor, tor - eic

    def number_of_nodes(self) -> int:
        """``graph.number_of_nodes()`` without building it."""
        return (1 + self.n_racks * (1 + self.has_eic) + 2 * self.n_nodes + self.n_gpus
                + int(self.has_remote_ssd))

    def number_of_edges(self) -> int:
        """``graph.number_of_edges()`` without building it."""
        return self.n_racks * (1 + self.has_eic) + self.n_nodes + 3 * self.n_gpus + int(self.has_remote_ssd)

    def _build(self) -> nx.Graph:
        G = nx.Graph()
        cl = self.classes
        G.add_node(("spine",), kind="spine")
        for r in range(self.n_racks):
            tor = ("tor", r)
            G.add_node(tor, kind="tor", rack=r)
            G.add_edge(tor, ("spine",), attrs=cl["spine"])
            if self.has_eic:
                G.add_node(("eic", r), kind="eic", rack=r)
                G.add_edge(tor, ("eic", r), attrs=cl["eic"])
        for n in range(self.n_nodes):
            r = n // self.nodes_per_rack
            G.add_node(("nvsw", n), kind="nvsw", node=n, rack=r)
            G.add_node(("dram", n), kind="dram", node=n, rack=r)
            G.add_edge(("dram", n), ("tor", r), attrs=cl["host_nic"])
        gpn = self.gpus_per_node
        G.add_edges_from((("gpu", g), ("nvsw", g // gpn), {"attrs": cl["nvlink"]}) for g in range(self.n_gpus))
        G.add_edges_from((("gpu", g), ("dram", g // gpn), {"attrs": cl["pcie"]}) for g in range(self.n_gpus))
        G.add_edges_from((("gpu", g), ("tor", g // self.gpus_per_rack), {"attrs": cl["nic"]})
                         for g in range(self.n_gpus))
        if self.has_remote_ssd:
            G.add_node(("ssd",), kind="ssd")
            G.add_edge(("spine",), ("ssd",), attrs=cl["ssd"])
        return G

    def edge(self, u: Endpoint, v: Endpoint) -> EdgeAttrs:
        """The attributes of edge u - v (KeyError when there is none, as in the graph)."""
        if not self._adjacent(u, v):
            raise KeyError(f"The edge {u}-{v} is not in the graph.")
        return self.classes[self._cls_of[frozenset((u[0], v[0]))]]

    # ------------------------------------------------------------ routing
    def _up(self, x: Endpoint) -> tuple[list[Edge], int]:
        """Edges from endpoint x up to its rack's ToR, and that rack."""
        kind = x[0]
        if kind == "gpu":
            r = self.rack_of(x[1])
            return [(x, ("tor", r))], r
        if kind == "eic":
            return [(x, ("tor", x[1]))], x[1]
        if kind == "dram":
            r = x[1] // self.nodes_per_rack
            return [(x, ("tor", r))], r
        if kind == "tor":
            return [], x[1]
        raise InputError(f"no network route from {x!r}", where="topology")

    def path(self, src: Endpoint, dst: Endpoint) -> tuple[Edge, ...]:
        """Edges from src to dst in traversal order (directed pairs)."""
        if src == dst:
            return ()
        for x in (src, dst):
            if not self.has(x):
                raise InputError(f"unknown endpoint {x!r}", where="topology")
        ks, kd = src[0], dst[0]
        if ks == "gpu" and kd == "gpu" and self.node_of(src[1]) == self.node_of(dst[1]):
            sw = ("nvsw", self.node_of(src[1]))
            return ((src, sw), (sw, dst))
        if ks == "gpu" and kd == "dram" and self.node_of(src[1]) == dst[1]:
            return ((src, dst),)  # PCIe to the GPU's own host
        if ks == "dram" and kd == "gpu" and self.node_of(dst[1]) == src[1]:
            return ((src, dst),)
        if ks == "ssd" or kd == "ssd":
            if ks == "ssd":
                return tuple((v, u) for u, v in reversed(self.path(dst, src)))
            up, r = self._up(src)
            tor = ("tor", r)
            return (*up, (tor, ("spine",)), (("spine",), dst))
        up_s, rs = self._up(src)
        up_d, rd = self._up(dst)
        down = [(v, u) for u, v in reversed(up_d)]
        if rs == rd:
            return (*up_s, *down)
        return (*up_s, (("tor", rs), ("spine",)), (("spine",), ("tor", rd)), *down)

    def path_latency_s(self, src: Endpoint, dst: Endpoint) -> float:
        return sum(self.edge(u, v).latency_s for u, v in self.path(src, dst))

    def bottleneck_bytes_s(self, src: Endpoint, dst: Endpoint, lanes: int = 1) -> float:
        """Effective bandwidth of the path: per-GPU edges count `lanes` times (parallel shards)."""
        best = float("inf")
        for u, v in self.path(src, dst):
            a = self.edge(u, v)
            best = min(best, a.bytes_s * lanes if a.per_gpu else a.bytes_s)
        return best

    def transfer_time_s(self, src: Endpoint, dst: Endpoint, nbytes: float, lanes: int = 1) -> float:
        """Uncontended, jitter-free time: path latency + bytes / bottleneck bandwidth."""
        if src == dst or nbytes <= 0:
            return 0.0
        return self.path_latency_s(src, dst) + nbytes / self.bottleneck_bytes_s(src, dst, lanes)

    def summary(self) -> dict:
        return {
            "racks": self.n_racks, "gpus_per_rack": self.gpus_per_rack, "gpus_per_node": self.gpus_per_node,
            "gpus": self.n_gpus, "nodes": self.n_nodes, "eic": self.has_eic, "remote_ssd": self.has_remote_ssd,
            "graph_nodes": self.number_of_nodes(), "graph_edges": self.number_of_edges(),
            "links": {k: {"latency_us": a.latency_s / US, "bandwidth_gb_s": a.bytes_s / GB, "per_gpu": a.per_gpu}
                      for k, a in self.classes.items()},
        }
