"""What an FL client sends: one-step gradients (FedSGD), multi-step local updates
(FedAvg), client partitions, a FedAvg training loop that yields each round's updates so
attacks and defenses can plug in, the FedAvg / SCAFFOLD round engine with the nine-client
split of the shadow-defense paper, and federated DDPM training (GIDM, ``fl.diffusion``)."""

from gradinv.fl.client import client_gradient, local_update, observe
from gradinv.fl.fedavg import FedAvgResult, fedavg, partition_iid
from gradinv.fl.rounds import (
    ClientUpdate,
    FederatedRun,
    LocalResult,
    f1_evaluator,
    f1_macro,
    local_train,
    run_federated,
    step_lr,
)
from gradinv.fl.splits import SHADOW_SPLIT, ClientSpec, scaled_sizes, split_clients

__all__ = [
    "client_gradient", "local_update", "observe", "fedavg", "FedAvgResult", "partition_iid",
    "ClientUpdate", "FederatedRun", "LocalResult", "f1_evaluator", "f1_macro", "local_train",
    "run_federated", "step_lr", "SHADOW_SPLIT", "ClientSpec", "scaled_sizes", "split_clients",
]  # fmt: skip
