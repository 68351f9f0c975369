"""Scale-out across processes with torch.distributed (launched by torchrun).

    torchrun --nproc_per_node=N -m datadistill evaluate SET ...      # models split across processes
    torchrun --nproc_per_node=N -m datadistill distill --method dm ...  # classes split across processes

What is split, and why it is exact:
- Evaluation trains `num_models` independent models, each seeded by its index alone: process r
  trains models r, r + N, ... and the records are gathered in index order, so every model's
  accuracy is the one a single process computes for it (the same thread count gives the same bits).
- The matching methods' losses are sums over classes, and a class's synthetic images receive
  gradient only from their own class's term (DM and its multi-layer form: the class statistics;
  DC / DSA: the class's gradient match). Each process owns a contiguous block of classes: it draws
  every random number a single process draws (networks, real batches, augmentations for every
  class, so the generators stay in step), but pushes only its own classes' real and synthetic
  images through the networks and steps only its own images. DC / DSA train the network on the
  whole synthetic set between matches: the processes gather the images first, every process trains
  the same network from the same draws, and the first process's weights are broadcast so that all
  match at one network. Losses and divergence checks are summed across processes, so every process
  reports and stops alike; only the first process writes checkpoints, metrics and outputs.

Collectives run on the gloo backend over CPU tensors (the exchanged data are a few images and
scalars), so the same code serves CPU and GPU runs. One machine's cores gain little from more
processes (they share the same arithmetic units); the split pays across machines or GPUs.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch

from .errors import ConfigError

# A collective waits this long for the other processes (a process may spend long stretches alone:
# the first process writing a stage, an init coreset computed by each); torchrun stops the group
# anyway when one process fails.
_TIMEOUT = datetime.timedelta(hours=6)


@dataclass(frozen=True)
class Group:
    """This process's place among `world` cooperating processes (rank 0 is the main one). The
    default, one process, makes every method below a no-op, so single-process code calls them freely."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def block(self, n: int, rank: int | None = None) -> range:
        """The contiguous block of range(n) that process `rank` (default: this one) owns; blocks
        differ in size by at most one, the larger first; a process may own nothing when n < world."""
        r = self.rank if rank is None else rank
        base, extra = divmod(n, self.world)
        start = r * base + min(r, extra)
        return range(start, start + base + (1 if r < extra else 0))

    # ---- collectives (every process must call them, in the same order) ------------------------
    def sum(self, value: float) -> float:
        """`value` summed over the processes."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t[0])

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true on any process."""
        return self.sum(1.0 if flag else 0.0) > 0 if self.distributed else flag

    def gather(self, obj: Any) -> list[Any]:
        """Every process's `obj` (picklable), in rank order, on every process."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def gather_rows(self, x: torch.Tensor, n_groups: int, per_group: int) -> torch.Tensor:
        """`x` (n_groups * per_group rows, grouped) with each process's own block of groups taken
        from that process: the whole tensor as the owners hold it, on every process, on x's device."""
        if not self.distributed:
            return x
        own = self.block(n_groups)
        mine = x[own.start * per_group:own.stop * per_group].detach().cpu()
        parts = self.gather(mine)
        return torch.cat(parts).to(x.device, x.dtype)

    def from_main(self, obj: Any) -> Any:
        """The main process's `obj` (picklable), on every process (the others' `obj` is ignored)."""
        if not self.distributed:
            return obj
        box = [obj if self.main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """The main process's parameters and buffers, copied into `module` on every process."""
        if not self.distributed:
            return
        state = module.state_dict()
        got = self.from_main({k: v.detach().cpu() for k, v in state.items()} if self.main else None)
        with torch.no_grad():
            for k, v in state.items():
                v.copy_(got[k].to(v.device))

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def close(self) -> None:
        """Leave the group once every process is done (a process that left while another still used
        the group's store could end the other's run with an abort at exit)."""
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


SINGLE = Group()


def from_env() -> Group:
    """The group torchrun started this process in (its environment names WORLD_SIZE and RANK),
    joined on first use; one process when WORLD_SIZE is absent or 1."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return SINGLE
    rank = int(os.environ.get("RANK", "-1"))
    if not 0 <= rank < world:
        raise ConfigError(f"WORLD_SIZE is {world} but RANK is {os.environ.get('RANK')!r}: launch with torchrun")
    if not torch.distributed.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed")
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo", rank=rank, world_size=world, timeout=_TIMEOUT)
    return Group(rank=rank, world=world)


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0)
