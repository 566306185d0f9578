from pathlib import Path

import pytest
import torch

from fixture_data import write_dataset

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("ds"), train_ids=4, test_ids=3)
