import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def real_model():
    """Path of a pretrained model extracted from its PyPI wheel into the cache (see models/fetch.py)."""
    from fetch import fetch

    return fetch
