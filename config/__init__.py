import os

# Before anything imports numpy: its OpenBLAS would start a thread per core in every process, and
# those threads spin between the small products of a request, starving the other workers. Server and
# Celery processes are already one per core. The environment may still say otherwise.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from config.celery import app as celery_app  # noqa: E402

__all__ = ("celery_app",)
