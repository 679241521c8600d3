import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"

# two threads (the project machines have two cores) unless RACL_TEST_THREADS, else
# OMP_NUM_THREADS (which the subprocesses of the tests read too), says otherwise
torch.set_num_threads(int(os.environ.get("RACL_TEST_THREADS")
                          or os.environ.get("OMP_NUM_THREADS") or max(1, min(2, os.cpu_count() or 1))))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real CIFAR subsets of ../shared/data. Tests that need them fail (never skip)
    with a clear message when they are missing."""
    p = Path(os.environ.get("RACL_DATA", SHARED))
    if not (p / "cifar10-mini.npz").exists():
        pytest.fail(f"real CIFAR subsets not found: expected {p / 'cifar10-mini.npz'} "
                    f"(set RACL_DATA to the folder holding cifar10-mini.npz)")
    return p


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)
