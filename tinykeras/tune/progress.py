"""What a search shows while it runs: one status line per trial, updated each epoch."""

from __future__ import annotations

from typing import Any


class Progress:
    """Per-trial progress on a rich console: a status line while a trial runs, one summary line per trial."""

    def __init__(self, console: Any | None = None):
        from rich.console import Console

        self.console = console or Console(stderr=True, highlight=False)
        self._status: Any = None

    def begin(self, trial_id: str, values: dict[str, Any]) -> None:
        hps = ", ".join(f"{k}={v}" for k, v in values.items() if not k.startswith("tuner/"))
        self.console.print(f"[bold]trial {trial_id}[/bold] {hps}", soft_wrap=True)
        self._status = self.console.status(f"trial {trial_id}: building")
        self._status.start()

    def update(self, text: str) -> None:
        if self._status is not None:
            self._status.update(text)

    def end(self, line: str) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        self.console.print(line, soft_wrap=True)


def _epoch_progress_class() -> Any:
    from tinykeras.keras_io import tf_keras

    class EpochProgress(tf_keras().callbacks.Callback):
        def __init__(self, progress: Progress, trial_id: str, epochs: int, monitor: str):
            super().__init__()
            self.progress, self.trial_id, self.epochs, self.monitor = progress, trial_id, epochs, monitor

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            value = (logs or {}).get(self.monitor)
            shown = f", {self.monitor} {value:.4f}" if value is not None else ""
            self.progress.update(f"trial {self.trial_id}: epoch {epoch + 1}/{self.epochs}{shown}")

    return EpochProgress


def EpochProgress(progress: Progress, trial_id: str, epochs: int, monitor: str) -> Any:  # noqa: N802
    return _epoch_progress_class()(progress, trial_id, epochs, monitor)
