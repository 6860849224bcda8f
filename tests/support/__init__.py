"""What the tests share besides fixtures: the session's environment, the small fixture
dataset, factories of API objects, state checks, and the matching library's in-memory fake.

Test modules import helpers from here, never from one another or from ``conftest.py``
(which holds fixtures only). Real processes (the service, Redis servers) come from
``loadtests.harness``, the one harness the benchmarks and the load test use too.
"""
