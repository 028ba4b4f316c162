"""GRPO and RLOO, TRL's critic-free online RL: the configs our recipes parse (TRL's own, checked for whole prompt
groups up front with a message in the flags users set) and the trainer each config runs."""

from dataclasses import dataclass

import trl

from .._compat import WholeGroupsCheck


@dataclass
class GRPOConfig(WholeGroupsCheck, trl.GRPOConfig):
    __doc__ = trl.GRPOConfig.__doc__


@dataclass
class RLOOConfig(WholeGroupsCheck, trl.RLOOConfig):
    __doc__ = trl.RLOOConfig.__doc__


TRAINERS = {GRPOConfig: trl.GRPOTrainer, RLOOConfig: trl.RLOOTrainer}

__all__ = ["GRPOConfig", "RLOOConfig", "TRAINERS"]
