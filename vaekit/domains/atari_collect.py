"""Collecting Atari frames with ale-py's native vector environment (resize and colour in C++).

Determinism: actions come from one seeded generator, the environments are stepped synchronously,
and each environment plays a fixed quota of episodes, so a seed always gives the same corpus.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vaekit.errors import VaekitUsageError
from vaekit.registry import Registry

POLICIES: Registry[Callable] = Registry("policy")


@POLICIES.register("random")
def random_policy(observations: np.ndarray, num_actions: int, rng: np.random.Generator) -> np.ndarray:
    """Uniformly random actions: the specification documents' data source."""
    return rng.integers(0, num_actions, size=observations.shape[0])


def game_ids() -> list[str]:
    from ale_py.roms import get_all_rom_ids

    return get_all_rom_ids()


def resolve_game(name: str) -> str:
    """'Breakout', 'SpaceInvaders', 'space_invaders' or 'ALE/Breakout-v5' -> the ROM id 'breakout'."""
    match = re.fullmatch(r"(?:ALE/)?([A-Za-z0-9_]+?)(?:-v\d+)?", name.strip())
    stem = match.group(1) if match else name
    rom_id = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", stem).lower()
    valid = game_ids()
    if rom_id in valid:
        return rom_id
    compact = {v.replace("_", ""): v for v in valid}
    if rom_id.replace("_", "") in compact:
        return compact[rom_id.replace("_", "")]
    names = [camel(v) for v in valid]
    near = difflib.get_close_matches(camel(rom_id), names, n=3, cutoff=0.4)
    hint = f" Nearest: {', '.join(near)}." if near else ""
    raise VaekitUsageError(f"unknown Atari game '{name}'.{hint} ({len(names)} games ship with ale-py, "
                           "e.g. Breakout, Pong, SpaceInvaders.)")


def camel(rom_id: str) -> str:
    return "".join(part.capitalize() for part in rom_id.split("_"))


@dataclass
class CollectSettings:
    game: str
    episodes: int = 100
    policy: str = "random"
    frame_size: int = 64
    grayscale: bool = False
    frameskip: int = 4
    max_steps_per_episode: int = 10_000
    seed: int = 0
    num_envs: int = 4
    repeat_action_probability: float = 0.25  # the v5 default (sticky actions)


def collect_episodes(settings: CollectSettings, on_step: Callable[[int, int], None] | None = None) -> dict:
    """Play ``settings.episodes`` episodes; returns per-frame arrays in episode order.

    Each recorded frame is the observation an action was taken in, with that action, the reward it
    earned, and whether that step ended the episode (terminated) or hit the step limit (truncated).

    Args:
        on_step: called with (frames recorded so far, episodes finished so far).
    """
    from ale_py.vector_env import AtariVectorEnv

    policy = POLICIES.get(settings.policy)
    num_envs = max(1, min(settings.num_envs, settings.episodes))
    quota = [settings.episodes // num_envs + (i < settings.episodes % num_envs) for i in range(num_envs)]
    env = AtariVectorEnv(
        settings.game, num_envs=num_envs, num_threads=min(num_envs, 2), img_height=settings.frame_size,
        img_width=settings.frame_size, grayscale=settings.grayscale, stack_num=1, frameskip=settings.frameskip,
        maxpool=False, noop_max=0, reward_clipping=False, use_fire_reset=False, episodic_life=False,
        repeat_action_probability=settings.repeat_action_probability,
        max_num_frames_per_episode=settings.max_steps_per_episode * settings.frameskip,
    )
    rng = np.random.default_rng(settings.seed)
    num_actions = int(env.single_action_space.n)
    observations, _ = env.reset(seed=settings.seed)
    # Per environment: the episodes it finished, and the one it is playing (lists of transitions).
    finished: list[list[dict]] = [[] for _ in range(num_envs)]
    current: list[dict] = [_new_episode() for _ in range(num_envs)]
    resetting = np.zeros(num_envs, dtype=bool)
    frames_recorded = 0
    try:
        while any(len(finished[i]) < quota[i] for i in range(num_envs)):
            actions = policy(observations, num_actions, rng)
            next_observations, rewards, terminated, truncated, _ = env.step(actions)
            for i in range(num_envs):
                if resetting[i]:  # this step was the automatic reset: no transition
                    resetting[i] = False
                    continue
                if len(finished[i]) >= quota[i]:
                    continue
                episode = current[i]
                episode["frames"].append(observations[i, 0])
                episode["actions"].append(actions[i])
                episode["rewards"].append(rewards[i])
                episode["terminated"].append(bool(terminated[i]))
                episode["truncated"].append(bool(truncated[i]))
                frames_recorded += 1
                if terminated[i] or truncated[i]:
                    finished[i].append(episode)
                    current[i] = _new_episode()
                    resetting[i] = True
            observations = next_observations
            if on_step:
                on_step(frames_recorded, sum(len(f) for f in finished))
    finally:
        env.close()
    episodes = [ep for env_episodes in zip(*_padded(finished)) for ep in env_episodes if ep is not None]
    return _stack(episodes, settings.grayscale)


def _new_episode() -> dict:
    return {"frames": [], "actions": [], "rewards": [], "terminated": [], "truncated": []}


def _padded(finished: list[list[dict]]) -> list[list[dict | None]]:
    """Interleave environments' episodes round-robin (env 0 ep 0, env 1 ep 0, ...) for a fixed order."""
    longest = max(len(f) for f in finished)
    return [f + [None] * (longest - len(f)) for f in finished]


def _stack(episodes: list[dict], grayscale: bool) -> dict:
    frames = np.stack([f for ep in episodes for f in ep["frames"]])
    if grayscale:
        frames = frames[..., None]  # (N, H, W) -> (N, H, W, 1)
    lengths = [len(ep["frames"]) for ep in episodes]
    return {
        "frames": frames.astype(np.uint8),
        "actions": np.concatenate([ep["actions"] for ep in episodes]).astype(np.int16),
        "rewards": np.concatenate([ep["rewards"] for ep in episodes]).astype(np.float32),
        "terminated": np.concatenate([ep["terminated"] for ep in episodes]),
        "truncated": np.concatenate([ep["truncated"] for ep in episodes]),
        "episode": np.repeat(np.arange(len(episodes), dtype=np.int32), lengths),
        "step": np.concatenate([np.arange(n, dtype=np.int32) for n in lengths]),
        "returns": np.array([float(np.sum(ep["rewards"])) for ep in episodes], dtype=np.float32),
    }
