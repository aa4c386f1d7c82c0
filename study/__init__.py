"""Study runner and the ``vistudy`` command line: grids of fits from TOML, cached and resumable."""

from study.config import StudyConfig, StudyConfigError, load_study, parse_study
from study.runner import StudyResult, run_study
from study.runs import Run, expand

__all__ = [
    "Run",
    "StudyConfig",
    "StudyConfigError",
    "StudyResult",
    "expand",
    "load_study",
    "parse_study",
    "run_study",
]
