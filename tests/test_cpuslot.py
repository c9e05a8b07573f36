"""The fleet pool's compute slot: one worker computes at a time, a waiting worker lets another one on."""

from __future__ import annotations

import threading
import time

from citrix_connector.cpuslot import computing, waiting


def test_one_worker_computes_at_a_time_and_a_waiting_one_lets_the_next_on() -> None:
    inside = 0
    most = 0
    order: list[str] = []
    guard = threading.Lock()

    def work(name: str) -> None:
        nonlocal inside, most
        with computing():
            with guard:
                inside += 1
                most = max(most, inside)
            order.append(f"{name} computes")
            with guard:
                inside -= 1
            with waiting():  # e.g. an HTTP exchange: the slot is free meanwhile
                time.sleep(0.05)
                order.append(f"{name} waited")
            with guard:
                inside += 1
                most = max(most, inside)
                inside -= 1

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 1, "never two workers computing at once"
    assert time.monotonic() - started < 0.15, "the four waits overlapped (each gave the slot up)"
    # every worker computed before the first wait ended: the slot went on while w0 waited
    assert all(order.index(f"w{i} computes") < order.index("w0 waited") for i in range(4)), order


def test_waiting_outside_a_worker_and_nested_computing_do_nothing() -> None:
    with waiting():  # the main thread holds no slot: nothing to give up
        pass
    with computing(), computing(), waiting():  # re-entered in one thread: no deadlock; then a wait
        done = threading.Event()

        def takes_it() -> None:
            with computing():
                done.set()

        other = threading.Thread(target=takes_it)
        other.start()
        assert done.wait(2), "another worker computes while this one waits"
        other.join()
