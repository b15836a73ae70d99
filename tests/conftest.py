import numpy as np
import pytest

from harrierdb import MilvusClient


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "test.db")


@pytest.fixture
def client(db_path):
    c = MilvusClient(db_path)
    yield c
    c.close()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
