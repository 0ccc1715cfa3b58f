"""Moves the wall clock of a Python subprocess the tests start, by TEST_WALL_CLOCK_OFFSET seconds.

tests/conftest.py sets the offset (from TEST_WALL_CLOCK) and puts this folder on PYTHONPATH, so the
real bot processes of test_crash and test_process share the test process's moved date.
"""

import os

_offset = os.environ.get("TEST_WALL_CLOCK_OFFSET")
if _offset:
    import time

    import time_machine

    time_machine.travel(time.time() + float(_offset), tick=True).start()
