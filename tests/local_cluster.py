"""Several :class:`LocalBroker` nodes on loopback as one Kafka cluster, the shape the VMs
take with ``gce_vm_nodes: 3``: for the cluster tests and benchmarks."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from stockpipe.local_stack.broker import (
    BrokerStatus,
    LocalBroker,
    formatted_cluster_id,
    new_cluster_id,
)


class LocalCluster:
    """``nodes`` LocalBrokers on loopback forming one cluster: every node is a broker and a
    controller of one static quorum, internal topics replicated min(3, nodes) times.

    Args:
        home: each node's state goes to ``home/node-<id>``.
        ports: each node's client port.
        controller_ports: each node's controller port.
        **options: passed to every :class:`LocalBroker` (version, heap, ...).
    """

    def __init__(
        self, home: Path, ports: Sequence[int], controller_ports: Sequence[int], **options
    ):
        if len(ports) != len(controller_ports) or not ports:
            raise ValueError("one client port and one controller port per node")
        home = Path(home)
        voters = [(i + 1, port) for i, port in enumerate(controller_ports)]
        cluster_id = _existing_cluster_id(home) or new_cluster_id()
        self.nodes = [
            LocalBroker(
                home=home / f"node-{node}",
                port=port,
                controller_port=controller_port,
                node_id=node,
                voters=voters,
                cluster_id=cluster_id,
                **options,
            )
            for (node, controller_port), port in zip(voters, ports, strict=True)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def node(self, node_id: int) -> LocalBroker:
        return self.nodes[node_id - 1]

    def start(self, progress: bool = True) -> list[BrokerStatus]:
        """Start every node, then wait for each (none answers before a majority runs)."""
        for node in self.nodes:
            node.start(progress=progress, wait=False)
        return [node.wait_until_ready(progress) for node in self.nodes]

    def stop(self) -> None:
        """Stop every node at once: one at a time, each controlled shutdown waits for the
        remaining quorum, and the last waits for a majority that has already gone."""
        stoppers = [threading.Thread(target=node.stop) for node in self.nodes]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()


def _existing_cluster_id(home: Path) -> str | None:
    """The id the cluster's nodes were formatted with, if any was."""
    for meta in sorted(Path(home).glob("node-*/data/meta.properties")):
        if cluster_id := formatted_cluster_id(meta):
            return cluster_id
    return None
