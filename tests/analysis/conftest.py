"""A seeded synthetic run with four components and 429s, analysed once for the module tests."""

import pytest

from capkit import analysis as ca
from capkit.synthetic import SyntheticTruth
from tests.analysis.synth import run, store


@pytest.fixture(scope="session")
def result():
    st = store()
    truth = SyntheticTruth(endpoints={"POST /api/chat/message": 0.5, "GET /api/analytics/summary": 0.3,
                                      "GET /api/auth/validate": 0.1, "WS /api/ws/chat": 0.1},
                           rate_limited_share={"POST /api/chat/message": 0.05})
    # steps up to 50 users: CPU (0.02 + 0.02 N) reaches 70 % at 34 and 90 % at 44 users, both bracketed
    r, _ = run(st, "p", truth, users=(5, 10, 20, 30, 40, 50), seed=5)
    return ca.analyse_run(r, ca.ReportParameters(cpu_cores=1.0, bootstrap=50, target_users=100))
