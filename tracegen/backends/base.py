"""Interfaces shared by every backend and device layer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np

# ModelSource lives with the model loaders; re-exported here, where backends always found it.
from tracegen.models.model import ModelSource  # noqa: F401


class StepTimer(ABC):
    """Brackets device work of one step; ``elapsed_ns`` is valid after the device synchronised."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def elapsed_ns(self) -> int | None: ...


class NullTimer(StepTimer):
    """Timer for devices without asynchronous work: there is no device time to report."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def elapsed_ns(self) -> int | None:
        return None


class Device(ABC):
    """Owns where work runs: streams, events, host buffers, copies, the host's wait."""

    kind: ClassVar[str]  # "host" | "cuda"
    # Pacing modes this device can do besides none/sleep/spin.
    supports_keepalive: ClassVar[bool] = False

    def activate(self) -> None:
        pass

    def deactivate(self) -> None:
        pass

    @abstractmethod
    def timer(self) -> StepTimer:
        """A reusable timer; create them before the timed loop."""

    @abstractmethod
    def synchronize(self) -> None:
        """Host waits until all work enqueued on the stream finished."""

    def host_buffer(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A host buffer for inputs/outputs (page-locked on CUDA devices)."""
        return np.zeros(shape, dtype=dtype)

    def keepalive(self, seconds: float) -> None:
        """Keep the device busy with cheap work for ``seconds`` while the host waits."""
        raise NotImplementedError(f"{self.kind} device has no keep-alive pacing")

    def info(self) -> dict[str, Any]:
        """Static facts about the device for the manifest."""
        return {"kind": self.kind}


class HostDevice(Device):
    """The CPU: work is synchronous, there are no copies and no device time."""

    kind = "host"

    def timer(self) -> StepTimer:
        return NullTimer()

    def synchronize(self) -> None:
        pass


@dataclass
class Bindings:
    """Buffers of one prepared batch size.

    ``host_input`` is filled by preprocessing, ``host_output`` read by postprocessing.
    ``copy_in`` / ``copy_out`` enqueue the host<->device copies; None where the input already
    lives where the model runs (CPU backends), in which case the runner records no copy steps.
    """

    batch: int
    host_input: np.ndarray
    host_output: np.ndarray
    copy_in: Callable[[], None] | None = None
    copy_out: Callable[[], None] | None = None
    # Every input and output by name (host_input / host_output are the first of each); a model
    # with several inputs or outputs has them all here, and copy_in / copy_out move them all.
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    # Device addresses of the model's input and output (GPU backends), for device pre/post-
    # processing (tracegen.prepost.device); the output's is a callable: it may move per launch.
    device_input: int | None = None
    device_output: Callable[[], int] | None = None

    def __post_init__(self):
        if not self.inputs:
            self.inputs = {"input": self.host_input}
        if not self.outputs:
            self.outputs = {"output": self.host_output}


class Backend(ABC):
    """One inference engine. Construct cheaply; heavy imports and loading in ``activate``."""

    name: ClassVar[str]
    device_kind: ClassVar[str]  # kind of Device it needs
    launches: ClassVar[tuple[str, ...]] = ("eager",)  # launch modes it supports
    requires: ClassVar[tuple[str, ...]] = ()  # importable modules it needs (checked before anything runs)
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)

    def __init__(self, model: ModelSource, *, precision: str = "fp32", threads: int | None = None):
        self.model = model
        self.precision = precision
        self.threads = threads
        self.device: Device | None = None

    def expect_batches(self, batch_sizes: list[int]) -> None:
        """Told before ``activate`` which batch sizes will be prepared (TensorRT builds its
        optimization profile from them); most backends need not know."""

    @abstractmethod
    def activate(self, device: Device) -> None:
        """Load the model onto ``device``; called once before any ``prepare``."""

    @abstractmethod
    def prepare(self, batch: int, launch: str = "eager") -> Bindings:
        """Allocate and bind buffers for ``batch`` (and capture a CUDA graph for launch=graph)."""

    @abstractmethod
    def enqueue(self) -> None:
        """Launch one inference of the prepared batch (asynchronous on GPUs)."""

    def release(self) -> None:
        """Free what ``prepare`` allocated (before preparing another batch)."""

    @abstractmethod
    def deactivate(self) -> None:
        """Free everything; safe to call after a failed ``activate``."""

    def info(self) -> dict[str, Any]:
        """Backend name, library versions and build settings for the manifest."""
        return {"name": self.name, "precision": self.precision}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.deactivate()
        return False


def call_all(calls):
    """One callable that runs ``calls`` in order (the copies of every input or output of a
    prepared batch); the call itself when there is one, so one-input models pay nothing."""
    if len(calls) == 1:
        return calls[0]

    def run():
        for c in calls:
            c()
    return run
