import pytest
import torch


@pytest.fixture
def one_thread():
    # Small models on a shared 2-core machine run several times faster on one thread (two OpenMP
    # threads wait for each other when the other core is busy); restore the setting afterwards.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
