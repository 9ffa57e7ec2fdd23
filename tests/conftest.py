import os

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


@pytest.fixture
def read_only_folder(tmp_path, monkeypatch):
    """A folder nobody may write into (for root, which may, ``os.access`` answers as for anyone else)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if os.fspath(path) == str(locked)
                            else real_access(path, mode, **kw))
    yield locked
    locked.chmod(0o755)
