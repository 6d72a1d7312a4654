"""Distributed search: Keras Tuner's gRPC oracle on the chief, with a heartbeat watchdog for workers."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from tinykeras.errors import ToolchainError, TuneError
from tinykeras.tune.options import HEARTBEAT_S, MAX_CONSECUTIVE_FAILURES
from tinykeras.tune.progress import Progress


def heartbeat(client: Any, trial_id: str, stop: threading.Event) -> None:
    from keras_tuner.src import protos

    while not stop.wait(HEARTBEAT_S):
        try:
            client.stub.GetTrial(protos.get_service().GetTrialRequest(trial_id=trial_id), timeout=10)
        except Exception:  # the chief may be busy or gone; the trial itself decides what to do
            pass


# ------------------------------------------------------------------------------------------ distributed: chief

def serve_chief(oracle: Any, worker_timeout: float, progress: Progress) -> None:
    """Keras Tuner's oracle server (``oracle_chief.start_server``) plus a heartbeat watchdog: a trial whose worker
    has been silent for ``worker_timeout`` seconds is ended as FAILED and the search goes on."""
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief
    from keras_tuner.src.engine import trial as trial_module

    seen: dict[str, float] = {}
    abandoned: set[str] = set()
    lock = threading.Lock()

    def touch_trial(trial_id: str) -> None:
        for tuner_id, trial in list(oracle.ongoing_trials.items()):
            if trial.trial_id == trial_id:
                seen[tuner_id] = time.monotonic()

    class Servicer(oracle_chief.OracleServicer):
        def CreateTrial(self, request: Any, context: Any) -> Any:  # noqa: N802
            with lock:
                seen[request.tuner_id] = time.monotonic()
            response = super().CreateTrial(request, context)
            trial = trial_module.Trial.from_proto(response.trial)
            if trial.status == trial_module.TrialStatus.RUNNING:
                progress.console.print(f"chief: trial {trial.trial_id} -> {request.tuner_id}")
            return response

        def GetTrial(self, request: Any, context: Any) -> Any:  # noqa: N802
            with lock:
                touch_trial(request.trial_id)
            return super().GetTrial(request, context)

        def UpdateTrial(self, request: Any, context: Any) -> Any:  # noqa: N802
            if request.trial_id in abandoned:  # a worker declared dead came back: keep the failure
                return protos.get_service().UpdateTrialResponse(trial=oracle.get_trial(request.trial_id).to_proto())
            with lock:
                touch_trial(request.trial_id)
            return super().UpdateTrial(request, context)

        def EndTrial(self, request: Any, context: Any) -> Any:  # noqa: N802
            if request.trial.trial_id in abandoned:
                return protos.get_service().EndTrialResponse()
            response = super().EndTrial(request, context)
            trial = oracle.get_trial(request.trial.trial_id)
            progress.console.print(f"chief: trial {trial.trial_id} {trial.status.lower()}"
                                   + (f", score {trial.score:.4f}" if trial.score is not None else ""))
            return response

    host, port = os.environ["KERASTUNER_ORACLE_IP"], os.environ["KERASTUNER_ORACLE_PORT"]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = Servicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise ToolchainError(f"chief: cannot listen on {host}:{port} (in use?); pick another --oracle port")
    server.start()
    progress.console.print(f"chief: oracle listening on {host}:{port}; start workers with "
                           f"`tinykeras tune ... --worker --oracle {host}:{port}`")
    last_contact = time.monotonic()
    try:
        while True:
            time.sleep(1.0)
            now = time.monotonic()
            with lock:
                if seen:
                    last_contact = max(last_contact, max(seen.values()))
                for tuner_id, trial in list(oracle.ongoing_trials.items()):
                    silent = now - seen.get(tuner_id, now)
                    if silent > worker_timeout:
                        trial.status = trial_module.TrialStatus.FAILED
                        trial.message = (f"worker {tuner_id} stopped responding during the trial "
                                         f"(no heartbeat for {silent:.0f} s)")
                        abandoned.add(trial.trial_id)
                        _end_trial(oracle, trial)
                        oracle.tuner_ids.discard(tuner_id)
                        seen.pop(tuner_id, None)
                        progress.console.print(f"chief: trial {trial.trial_id} failed: {trial.message}")
            if servicer.stop_triggered and oracle_chief.exit_chief(oracle):
                break
            if not oracle.ongoing_trials and now - last_contact > max(worker_timeout, 60.0):
                if len(oracle.trials) >= (oracle.max_trials or 0) and oracle.trials:
                    break  # every trial ran; the remaining workers are gone
                raise TuneError(f"chief: no worker has contacted {host}:{port} for {now - last_contact:.0f} s "
                                f"({len(oracle.trials)} trials so far); start workers with --worker --oracle "
                                f"{host}:{port}, then rerun the chief to resume")
    finally:
        server.stop(grace=2)


def _end_trial(oracle: Any, trial: Any) -> None:
    try:
        oracle.end_trial(trial)
    except RuntimeError as exc:  # Keras Tuner's max_consecutive_failed_trials
        raise consecutive_failures(exc) from exc


def consecutive_failures(exc: RuntimeError) -> TuneError:
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return TuneError(f"{MAX_CONSECUTIVE_FAILURES} trials in a row failed, stopping the search; the last: "
                     f"{lines[-1][:300] if lines else exc}. Rerun with the same -o to resume after fixing it")
