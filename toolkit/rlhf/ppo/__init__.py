"""PPO, the toolkit's own trainer (TRL no longer ships one): `ppo_config` (its settings), `ppo_trainer` (rollouts,
rewards, GAE, clipped updates, checkpoints), `rollout` (a batch of rollouts and how one is made) and `ppo_core` (the
math, tested against hand-computed cases). Import from the modules (or from `toolkit.rlhf`); this package's own
import loads none of them."""
