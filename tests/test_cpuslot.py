"""The fleet pool's compute slot: one worker computes at a time, a waiting worker lets another one on."""

from __future__ import annotations

import threading

from citrix_connector.cpuslot import computing, waiting


def test_a_second_worker_waits_while_the_first_computes() -> None:
    holding, release, entered = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with computing():
            holding.set()
            release.wait(10)

    def second() -> None:
        holding.wait(10)
        with computing():
            entered.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    assert holding.wait(10)
    assert not entered.wait(0.2), "two workers computing at once"
    release.set()
    assert entered.wait(10), "the slot was not handed on"
    for t in threads:
        t.join()


def test_waiting_workers_give_the_slot_up() -> None:
    # all four must be waiting at the same moment to pass: only possible if each gave the slot up
    all_waiting = threading.Barrier(4, timeout=10)

    def work() -> None:
        with computing(), waiting():  # e.g. an HTTP exchange: the slot is free meanwhile
            all_waiting.wait()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not all_waiting.broken, "a waiting worker kept the slot"


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
