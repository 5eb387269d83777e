"""Session-wide test settings.

One torch thread for the whole test session: the tests use small tensors, for which a second thread costs more
than it gives (10-15 times slower on a loaded 2-core machine), and a test run should not compete with itself.
Library code never sets the number of threads; notebooks and benchmarks set their own.
"""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
