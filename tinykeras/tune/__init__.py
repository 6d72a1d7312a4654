"""``tinykeras tune``: hardware-aware model search with Keras Tuner.

Each trial builds a model from the recipe's search space (``tinykeras/recipes/<recipe>_space.toml``, data) or
from the user's ``--model-fn module:function`` (which takes Keras Tuner's ``hp``), then:

    int8 conversion of the untrained model -> aot arena + flash (exact for the architecture) -> board limits
      infeasible: recorded with the figure that broke the limit, not trained, never wins
    train (EarlyStopping on the validation split) -> int8 (tinykeras.convert) -> validation accuracy of the
    int8 model on the TFLite-Micro host interpreter -> aot arena/flash -> instructions per inference on qemu_m4
    (or an estimate from MACs where QEMU or the Arm toolchain is missing, labelled as such)

Keras Tuner drives the search (its oracles: bayesian, hyperband, random) through a ``BaseTuner`` subclass whose
``run_trial`` returns plain metrics, so the tf_keras models tinykeras trains never meet Keras Tuner's Keras 3
checks. Its project directory (``OUT/search``) holds the search state, so an interrupted search resumes.
Distributed mode is Keras Tuner's own (gRPC, ``KERASTUNER_TUNER_ID``/``_ORACLE_IP``/``_ORACLE_PORT``); the chief
adds a heartbeat watchdog so a worker that dies mid-trial gets its trial recorded as failed.

The package, one module per concern: ``options`` (what is asked), ``space`` (search spaces, ``--model-fn``),
``costs`` (board limits, a model's flash/RAM/instructions), ``metrics`` (int8 scores), ``trial`` (one trial and
the Keras Tuner tuner), ``progress`` (console), ``search`` (oracle, resume, the run), ``distributed`` (chief
server, worker heartbeat), ``report`` (tune.json, fronts, best/) and ``plot`` (pareto.png).
"""

from __future__ import annotations

from tinykeras.errors import TuneError
from tinykeras.tune.costs import SearchLimits, describe_violations, model_costs, search_limits, violations
from tinykeras.tune.metrics import int8_scores, macro_auc
from tinykeras.tune.options import TuneOptions
from tinykeras.tune.progress import Progress
from tinykeras.tune.report import pareto_front, require_feasible, summary_rows
from tinykeras.tune.search import TuneResult, tune
from tinykeras.tune.space import load_space, space_path

__all__ = ["Progress", "SearchLimits", "TuneError", "TuneOptions", "TuneResult", "describe_violations",
           "int8_scores", "load_space", "macro_auc", "model_costs", "pareto_front", "require_feasible",
           "search_limits", "space_path", "summary_rows", "tune", "violations"]
