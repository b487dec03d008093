"""What an FL client sends: one-step gradients (FedSGD), multi-step local updates
(FedAvg), client partitions, and a FedAvg training loop that yields each round's
updates so attacks and defenses can plug in."""

from gradinv.fl.client import client_gradient, local_update, observe
from gradinv.fl.fedavg import FedAvgResult, fedavg, partition_iid

__all__ = ["client_gradient", "local_update", "observe", "fedavg", "FedAvgResult", "partition_iid"]
