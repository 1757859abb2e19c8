"""Real `syncd` processes for the chaos test: the Xero sandbox and a pool of `syncd worker`s,
started as a deployment starts them (environment only), SIGKILLed and replaced on demand.

Each process writes its log to a file of its own (a pipe nobody reads would fill and block it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SYNCD = (sys.executable, "-m", "syncd")


def process_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a child: ours without any SYNCD_/XERO_ setting, then `extra`."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "XERO_"))}
    return {**keep, **extra}


@dataclass(slots=True)
class Child:
    """One running `python -m syncd …` and the file its output goes to."""

    name: str
    process: asyncio.subprocess.Process
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def exited(self) -> bool:
        return self.process.returncode is not None

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def kill(self) -> None:
        """SIGKILL (no chance to clean up) and reap."""
        if not self.exited:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self, *, grace: float) -> int:
        """SIGTERM, then the exit code (SIGKILL if it does not stop within `grace` seconds)."""
        if not self.exited:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            await self.kill()
            raise AssertionError(f"{self.name} ignored SIGTERM for {grace}s") from None


async def spawn(name: str, args: list[str], *, env: Mapping[str, str], workdir: Path) -> Child:
    """Start `python -m syncd *args` in `workdir` (no .env there) with exactly `env`."""
    log = workdir / f"{name}.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *SYNCD,
            *args,
            cwd=workdir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return Child(name=name, process=process, log=log)


async def run_to_end(name: str, args: list[str], *, env: Mapping[str, str], workdir: Path) -> None:
    """Run a short command (e.g. `migrate`) and insist that it succeeds."""
    child = await spawn(name, args, env=env, workdir=workdir)
    try:
        code = await asyncio.wait_for(child.process.wait(), 60)
    except TimeoutError:
        await child.kill()
        raise AssertionError(f"`syncd {' '.join(args)}` did not finish in 60s") from None
    assert code == 0, f"`syncd {' '.join(args)}` exited {code}:\n{child.tail()}"


@dataclass(slots=True)
class WorkerPool:
    """`size` live `syncd worker` processes; `replace` SIGKILLs one and starts another at once."""

    size: int
    env: Mapping[str, str]
    workdir: Path
    live: list[Child] = field(default_factory=list)
    dead: list[Child] = field(default_factory=list)
    started: int = 0

    async def start(self) -> None:
        while len(self.live) < self.size:
            await self._start_one()

    async def _start_one(self) -> Child:
        self.started += 1
        child = await spawn(
            f"worker-{self.started:02d}", ["worker"], env=self.env, workdir=self.workdir
        )
        self.live.append(child)
        return child

    async def replace(self, victim: Child) -> Child:
        """SIGKILL `victim` and start its successor."""
        self.live.remove(victim)
        await victim.kill()
        self.dead.append(victim)
        return await self._start_one()

    def check_alive(self) -> None:
        """Fail when a worker died on its own (the test kills; nothing else should)."""
        for child in self.live:
            if child.exited:
                raise AssertionError(
                    f"{child.name} exited by itself with {child.process.returncode}:\n"
                    f"{child.tail()}"
                )

    async def stop(self, *, grace: float = 30) -> list[int]:
        """Stop every live worker gracefully (SIGTERM); their exit codes."""
        codes = [await child.stop(grace=grace) for child in self.live]
        self.dead.extend(self.live)
        self.live.clear()
        return codes

    async def kill_all(self) -> None:
        for child in self.live:
            await child.kill()
        self.dead.extend(self.live)
        self.live.clear()

    def logs(self, lines: int = 15) -> str:
        return "\n".join(
            f"--- {child.name} (exit {child.process.returncode}) ---\n{child.tail(lines)}"
            for child in [*self.dead, *self.live]
        )
