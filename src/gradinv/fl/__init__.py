"""What an FL client sends: one-step gradients (FedSGD), multi-step local updates
(FedAvg), client partitions, the one round engine for FedAvg and SCAFFOLD
(:func:`run_federated` with a :class:`FederationConfig`; it keeps each round's updates so
attacks and defenses can plug in, and times every round), the nine-client split of the
shadow-defense paper, and federated DDPM training (GIDM, ``fl.diffusion``)."""

from gradinv.fl.client import client_gradient, local_update, observe
from gradinv.fl.rounds import (
    ClientUpdate,
    FederatedRun,
    FederationConfig,
    LocalResult,
    RoundRecord,
    accuracy,
    accuracy_evaluator,
    f1_evaluator,
    f1_macro,
    local_train,
    multistep_lr,
    run_federated,
    step_lr,
)
from gradinv.fl.splits import SHADOW_SPLIT, ClientSpec, partition_iid, scaled_sizes, split_clients

__all__ = [
    "client_gradient", "local_update", "observe", "ClientUpdate", "FederatedRun",
    "FederationConfig", "LocalResult", "RoundRecord", "accuracy", "accuracy_evaluator",
    "f1_evaluator", "f1_macro", "local_train", "multistep_lr", "run_federated", "step_lr", "SHADOW_SPLIT",
    "ClientSpec", "partition_iid", "scaled_sizes", "split_clients",
]  # fmt: skip
