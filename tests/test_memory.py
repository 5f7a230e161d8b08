"""The memory budget: least recently used idle residents make room, leased ones never go, too large is refused."""

import threading
import time

import pytest
import torch

from explorer import memory, models, quantize

MB = 2**20


def _tensor(megabytes: int) -> torch.nn.Module:
    module = torch.nn.Linear(1, 1, bias=False)
    module.weight = torch.nn.Parameter(torch.zeros(megabytes * MB // 4, 1))  # float32: megabytes MB
    return module


def test_the_least_recently_used_idle_resident_makes_room():
    budget = memory.Budget(100 * MB)
    for name in "abc":
        budget.get_or_build(name, lambda: _tensor(30))
    budget.get("a")  # a is now the most recently used: b goes first
    budget.get_or_build("d", lambda: _tensor(30), estimate=30 * MB)
    assert [r.key for r in budget.residents()] == ["c", "a", "d"] and budget.dropped == 1
    assert budget.used() == 90 * MB


def test_a_leased_resident_is_never_dropped_while_another_thread_asks_for_room(monkeypatch):
    monkeypatch.setattr(memory, "WAIT_SECONDS", 0.5)
    budget = memory.Budget(100 * MB)
    leased, asked, answer = threading.Event(), threading.Event(), {}

    def session_using_a():
        with budget.run():
            budget.get_or_build("a", lambda: _tensor(60))
            leased.set()
            asked.wait(30)  # still running its page while the other session asks

    def session_wanting_b():
        leased.wait(30)
        try:
            with budget.run():
                budget.get_or_build("b", lambda: _tensor(60), estimate=60 * MB)
        except memory.OverBudget as error:
            answer["kind"] = error.kind
        asked.set()

    threads = [threading.Thread(target=session_using_a), threading.Thread(target=session_wanting_b)]
    [thread.start() for thread in threads]
    [thread.join(60) for thread in threads]
    assert answer == {"kind": "memory_busy"} and [r.key for r in budget.residents()] == ["a"]
    with budget.run():  # once the first run ended, a is idle and makes room
        budget.get_or_build("b", lambda: _tensor(60), estimate=60 * MB)
    assert [r.key for r in budget.residents()] == ["b"]


def test_a_run_nested_in_a_page_run_is_told_at_once_when_only_the_page_holds_the_room():
    """A view's copy held by the page's run, then a table building other copies in a run nested inside: nothing
    another run holds can end, so waiting would only cost WAIT_SECONDS a copy. Once the inner run ends its own copy
    is idle again, while the page's stays leased; nothing is dropped for a room that cannot be made."""
    budget = memory.Budget(100 * MB)
    with budget.run():
        budget.get_or_build("view's copy", lambda: _tensor(60))
        with budget.run():
            budget.get_or_build("a table's copy", lambda: _tensor(30))
        started = time.monotonic()
        with pytest.raises(memory.OverBudget) as refused, budget.run():
            budget.get_or_build("another copy", lambda: _tensor(50), estimate=50 * MB)
        assert time.monotonic() - started < 1 and refused.value.kind == "memory_over_budget"
        assert "in use on this page" in str(refused.value)
        assert {r.key: r.leases for r in budget.residents()} == {"view's copy": 1, "a table's copy": 0}
        assert budget.held() == ("view's copy",)
    assert budget.held() == () and all(r.leases == 0 for r in budget.residents())


def test_a_pinned_resident_is_never_dropped_and_its_bytes_leave_less_room():
    budget = memory.Budget(100 * MB)
    budget.get_or_build("kiwi", lambda: _tensor(40), pinned=True)
    budget.get_or_build("a", lambda: _tensor(40))
    budget.get_or_build("b", lambda: _tensor(40), estimate=40 * MB)  # a goes, the pinned one stays
    assert [r.key for r in budget.residents()] == ["kiwi", "b"] and budget.dropped == 1
    with pytest.raises(memory.OverBudget) as refused, budget.run():
        budget.get_or_build("c", lambda: _tensor(70), estimate=70 * MB)  # 70 + 40 pinned > 100: said at once
    assert refused.value.kind == "memory_over_budget" and "40 MB in use" in refused.value.detail
    assert [r.key for r in budget.residents()] == ["kiwi", "b"]  # nothing dropped for a request that cannot fit


def test_a_resident_larger_than_the_budget_is_refused_with_what_to_set():
    budget = memory.Budget(50 * MB)
    with pytest.raises(memory.OverBudget) as refused:
        budget.get_or_build("huge", lambda: _tensor(10), estimate=80 * MB)
    assert refused.value.kind == "memory_over_budget" and "80 MB > 50 MB" in refused.value.detail
    assert budget.residents() == []


def test_a_session_waits_for_another_run_to_end_then_takes_the_room():
    budget = memory.Budget(100 * MB)
    leased, order = threading.Event(), []

    def first_session():
        with budget.run():
            budget.get_or_build("gemma", lambda: _tensor(60))
            leased.set()
            time.sleep(0.5)  # its page still drawing
            order.append("first run ended")

    thread = threading.Thread(target=first_session)
    thread.start()
    leased.wait(30)
    with budget.run():
        budget.get_or_build("smollm", lambda: _tensor(60), estimate=60 * MB)  # waits, then drops gemma
        order.append("second got its model")
    thread.join(30)
    assert order == ["first run ended", "second got its model"] and [r.key for r in budget.residents()] == ["smollm"]


def test_a_copy_goes_with_its_model_and_a_lease_taken_for_a_job_holds_both(monkeypatch):
    monkeypatch.setattr(memory, "WAIT_SECONDS", 0.5)
    budget = memory.Budget(100 * MB)
    budget.get_or_build(("model", "m"), lambda: _tensor(40))
    budget.get_or_build(("quantized", "m", "int8"), lambda: _tensor(20), parent=("model", "m"))
    release = budget.lease([("model", "m")])  # a queued training on m
    with pytest.raises(memory.OverBudget):  # the idle copy goes, but the model stays: no room for 70 MB
        budget.get_or_build("other", lambda: _tensor(70), estimate=70 * MB)
    assert [r.key for r in budget.residents()] == [("model", "m")]
    release()
    budget.get_or_build("other", lambda: _tensor(70), estimate=70 * MB)
    assert [r.key for r in budget.residents()] == ["other"]  # the model and its copy went together


def _wait_for(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_residents_nobody_used_for_a_while_are_dropped_by_the_sweep_but_not_those_in_use_or_pinned():
    """The budget's own background sweep, at a short idle time: a model with its copy and a lone resident go once
    idle; one that a run holds (a page still drawing) stays however long, and goes once the run has ended; a pinned
    one (Kiwi) stays. A copy used recently keeps its model; room-making drops are not counted as expiries."""
    budget = memory.Budget(200 * MB, idle_seconds=1.0)
    budget.get_or_build("kiwi", lambda: _tensor(10), pinned=True)
    budget.get_or_build(("model", "m"), lambda: _tensor(20))
    budget.get_or_build(("quantized", "m", "int8"), lambda: _tensor(10), parent=("model", "m"))
    budget.get_or_build("lone", lambda: _tensor(10))
    holding, done = threading.Event(), threading.Event()

    def a_long_page_run():
        with budget.run():
            budget.get_or_build("drawn now", lambda: _tensor(10))
            holding.set()
            done.wait(30)

    thread = threading.Thread(target=a_long_page_run)
    thread.start()
    holding.wait(30)
    for _ in range(15):  # the copy in use for 1.5 s: its model, not used itself, stays with it
        assert budget.get(("quantized", "m", "int8")) is not None
        time.sleep(0.1)
    assert {("model", "m"), ("quantized", "m", "int8")} <= {r.key for r in budget.residents()}
    assert _wait_for(lambda: {r.key for r in budget.residents()} == {"kiwi", "drawn now"})
    assert budget.expired == 3 and budget.dropped == 0
    time.sleep(1.5)  # held by a run: never dropped, however idle
    assert {r.key for r in budget.residents()} == {"kiwi", "drawn now"}
    done.set()
    thread.join(30)
    assert _wait_for(lambda: [r.key for r in budget.residents()] == ["kiwi"]) and budget.expired == 4


def test_no_sweep_when_the_idle_time_is_zero():
    budget = memory.Budget(100 * MB)  # idle_seconds=0: what EXPLORER_IDLE_MINUTES=0 gives
    budget.get_or_build("a", lambda: _tensor(10))
    assert budget.drop_idle() == 0 and budget._sweeper is None and [r.key for r in budget.residents()] == ["a"]


def test_sizes_count_each_storage_once(smollm):
    assert memory.tensor_bytes(smollm.model) == pytest.approx(models.estimated_bytes(models.SMOLLM2), rel=0.01)
    copy = quantize.quantized(smollm, quantize.Scheme("fp32"))
    assert copy.own_bytes == 0 and quantize.quantized(smollm, quantize.Scheme("int8_tensor")).own_bytes > 100 * MB


def test_the_sidebar_groups_residents_under_their_model():
    rows = [memory.Resident(("model", "gemma3-270m"), None, 1_000), memory.Resident(("quantized", "gemma3-270m", "int8", "f"), None, 300),
            memory.Resident(("quantized", "gemma3-270m", "int4", "f"), None, 200), memory.Resident(("model", "minilm-l6"), None, 90)]
    assert memory.by_model(rows) == [("gemma3-270m", 1_000, 2, 500), ("minilm-l6", 90, 0, 0)]


def test_work_done_once_per_process_is_built_once_however_many_ask_and_a_failure_is_not_kept():
    from explorer import warmup

    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return len(calls)

    found = []
    threads = [threading.Thread(target=lambda: found.append(warmup.once("test-once", slow))) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    assert warmup.pending("test-once")  # being built: a page can say it waits for it
    for thread in threads:
        thread.join()
    assert found == [1, 1, 1] and len(calls) == 1
    with pytest.raises(ZeroDivisionError):
        warmup.once("test-fails", lambda: 1 / 0)
    assert warmup.once("test-fails", lambda: "second try") == "second try"
    assert not warmup.pending("test-once") and not warmup.pending("never-asked")
