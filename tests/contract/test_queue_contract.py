"""The queue contract: `send` for every TaskQueue adapter, then the SQS FIFO rules of the queues
the service consumes itself (per-group order, dedup window, leases, receive counts, restarts)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from memcube.domain.messages import QueuedAdd
from tests.contract.support import ConsumingQueue, Delivery, FakeClock, QueueUnderTest, close, queued, task_ids

LEASE = 60.0
DEDUP_WINDOW = 300.0
"""SQS FIFO's deduplication interval: 5 minutes."""


def names(deliveries: Sequence[Delivery]) -> list[tuple[str, str]]:
    """(group, task id) of each delivery, in the order handed out."""
    return [(d.group_id, QueuedAdd.model_validate_json(d.body).task_id) for d in deliveries]


# --- send: every TaskQueue -----------------------------------------------------------------------


def test_every_sent_message_is_delivered_once_and_whole(queue: QueueUnderTest) -> None:
    sent = [queued("t1", "cube-a"), queued("t1", "cube-b"), queued("t2", "cube-a", text="我喜欢北京 ✓")]
    queue.adapter.send(sent)
    delivered = queue.drain()
    assert sorted(delivered, key=lambda m: (m.task_id, m.cube_id)) == sent
    assert queue.drain() == []


def test_a_cubes_messages_are_delivered_in_send_order(queue: QueueUnderTest) -> None:
    queue.adapter.send([queued("t1", "cube-a"), queued("t2", "cube-b"), queued("t3", "cube-a")])
    queue.adapter.send([queued("t4", "cube-b"), queued("t5", "cube-a")])
    delivered = queue.drain()
    assert task_ids(delivered, "cube-a") == ["t1", "t3", "t5"]
    assert task_ids(delivered, "cube-b") == ["t2", "t4"]


def test_same_task_and_cube_sent_twice_is_delivered_once(queue: QueueUnderTest) -> None:
    queue.adapter.send([queued("t1", "cube-a"), queued("t1", "cube-a")])
    queue.adapter.send([queued("t1", "cube-a"), queued("t1", "cube-b")])
    assert sorted((m.task_id, m.cube_id) for m in queue.drain()) == [("t1", "cube-a"), ("t1", "cube-b")]
    queue.adapter.send([queued("t1", "cube-a", text="a retry after the first was consumed")])
    assert queue.drain() == []


def test_sending_nothing_sends_nothing(queue: QueueUnderTest) -> None:
    queue.adapter.send([])
    assert queue.drain() == []


# --- FIFO rules: queues the service consumes -----------------------------------------------------


def test_a_group_waits_while_its_head_is_leased_and_other_groups_go_on(consuming_queue: ConsumingQueue) -> None:
    q = consuming_queue
    q.send([queued("t1", "a"), queued("t2", "a"), queued("t3", "b")])
    first = q.receive(10, LEASE)
    assert names(first) == [("a", "t1"), ("b", "t3")]
    assert q.receive(10, LEASE) == []
    q.ack(first[1].seq)
    q.send([queued("t4", "b")])
    assert names(q.receive(10, LEASE)) == [("b", "t4")]
    q.ack(first[0].seq)
    assert names(q.receive(10, LEASE)) == [("a", "t2")]


def test_a_group_waits_while_its_head_waits_in_retry_later(consuming_queue: ConsumingQueue, clock: FakeClock) -> None:
    q = consuming_queue
    q.send([queued("t1", "a"), queued("t2", "a"), queued("t3", "b")])
    head, other = q.receive(10, LEASE)
    q.retry_later(head.seq, 30)
    q.ack(other.seq)
    q.send([queued("t4", "b")])
    assert names(q.receive(10, LEASE)) == [("b", "t4")]
    clock.advance(29)
    assert q.receive(10, LEASE) == []
    clock.advance(2)
    [again] = q.receive(10, LEASE)
    assert (again.seq, again.attempts, names([again])) == (head.seq, 2, [("a", "t1")])


def test_an_expired_lease_hands_the_same_head_out_again(consuming_queue: ConsumingQueue, clock: FakeClock) -> None:
    q = consuming_queue
    q.send([queued("t1", "a"), queued("t2", "a")])
    [head] = q.receive(10, lease_seconds=10)
    clock.advance(9)
    assert q.receive(10, LEASE) == []
    clock.advance(2)
    [again] = q.receive(10, LEASE)
    assert (again.seq, again.attempts) == (head.seq, 2)


def test_ack_removes_the_message_and_frees_its_group(consuming_queue: ConsumingQueue) -> None:
    q = consuming_queue
    q.send([queued("t1", "a"), queued("t2", "a")])
    [head] = q.receive(10, LEASE)
    assert q.depth() == 2
    q.ack(head.seq)
    q.ack(head.seq)  # a repeated ack is harmless
    assert q.depth() == 1
    [nxt] = q.receive(10, LEASE)
    assert (names([nxt]), nxt.attempts) == ([("a", "t2")], 1)
    q.ack(nxt.seq)
    assert (q.depth(), q.receive(10, LEASE)) == (0, [])


def test_receive_count_grows_with_every_receive(consuming_queue: ConsumingQueue, clock: FakeClock) -> None:
    q = consuming_queue
    q.send([queued("t1", "a")])
    counts = []
    [delivery] = q.receive(1, lease_seconds=5)
    counts.append(delivery.attempts)
    q.retry_later(delivery.seq, 0)  # handed back at once
    [delivery] = q.receive(1, lease_seconds=5)
    counts.append(delivery.attempts)
    clock.advance(6)  # the lease runs out
    [delivery] = q.receive(1, lease_seconds=5)
    counts.append(delivery.attempts)
    q.release_all_leases()  # a restart
    [delivery] = q.receive(1, lease_seconds=5)
    counts.append(delivery.attempts)
    assert counts == [1, 2, 3, 4]


def test_release_all_leases_makes_leased_messages_receivable_again(
    consuming_queue: ConsumingQueue,
) -> None:
    q = consuming_queue
    assert q.release_all_leases() == 0
    q.send([queued("t1", "a"), queued("t2", "b"), queued("t3", "c")])
    leased = q.receive(2, LEASE)
    assert names(leased) == [("a", "t1"), ("b", "t2")]
    assert q.release_all_leases() == 2
    again: list[Delivery] = []
    for _ in range(3):  # the two released (suspects) come first, each alone; then the rest
        got = q.receive(10, LEASE)
        again += got
        for d in got:
            q.ack(d.seq)
    assert [(d.seq, d.attempts) for d in again] == [(leased[0].seq, 2), (leased[1].seq, 2), (again[2].seq, 1)]
    assert names(again)[2] == ("c", "t3")


def test_a_message_leased_when_its_process_died_runs_alone_and_is_blamed_only_for_a_death_then(
    consuming_queue: ConsumingQueue,
) -> None:
    """Restart safety without poison blindness: a process killed with two messages in flight
    blames neither; each then runs alone, and a second death during that lone run is its own
    (or an outside one); a run that ends clears the suspicion."""
    q = consuming_queue
    q.send([queued("t1", "a"), queued("t2", "b"), queued("t3", "c")])
    assert [d.blamed for d in q.receive(2, LEASE)] == [None, None]
    q.release_all_leases()  # killed with a and b in flight
    [first] = q.receive(10, LEASE)
    assert (names([first]), first.blamed) == ([("a", "t1")], False)
    assert q.receive(10, LEASE) == []  # nothing runs beside a suspect
    q.release_all_leases()  # killed again, with only t1 running
    [again] = q.receive(10, LEASE)
    assert (names([again]), again.blamed) == ([("a", "t1")], True)
    q.retry_later(again.seq, 0)  # it ran to an end: no longer a suspect
    [suspect] = q.receive(10, LEASE)
    assert (names([suspect]), suspect.blamed) == ([("b", "t2")], False)
    q.ack(suspect.seq)
    rest = q.receive(10, LEASE)
    assert [(n, d.blamed) for n, d in zip(names(rest), rest, strict=True)] == [(("a", "t1"), None), (("c", "t3"), None)]


def test_suspects_held_back_wait_while_the_other_cubes_go_on(consuming_queue: ConsumingQueue) -> None:
    """Right after a restart (the grace before suspects run) only the cubes without a suspect move."""
    q = consuming_queue
    q.send([queued("t1", "a"), queued("t2", "b")])
    q.receive(1, LEASE)
    q.release_all_leases()
    q.send([queued("t3", "a")])
    both = q.receive(10, LEASE, suspects=False)
    assert names(both) == [("b", "t2")]  # a's suspect waits, and t3 behind it
    q.ack(both[0].seq)
    [suspect] = q.receive(10, LEASE)
    assert names([suspect]) == [("a", "t1")]


def test_a_suspect_waits_for_the_messages_in_flight_and_then_runs_alone(consuming_queue: ConsumingQueue) -> None:
    q = consuming_queue
    q.send([queued("t1", "a"), queued("t2", "b"), queued("t3", "c")])
    first, second = q.receive(2, LEASE)
    q.release([first.seq])  # handed back (a stop) while t2 is still in flight
    assert q.receive(10, LEASE) == []  # the suspect waits for t2, and t3 waits behind the suspect
    q.ack(second.seq)
    [alone] = q.receive(10, LEASE)
    assert (names([alone]), alone.blamed) == ([("a", "t1")], False)  # a stop blames nobody
    assert q.receive(10, LEASE) == []
    q.ack(alone.seq)
    assert names(q.receive(10, LEASE)) == [("c", "t3")]


def test_receive_hands_out_at_most_max_messages_and_one_per_group(consuming_queue: ConsumingQueue) -> None:
    q = consuming_queue
    q.send([queued(f"t{n}", cube) for n in range(3) for cube in ("a", "b", "c")])
    assert len(q.receive(2, LEASE)) == 2
    assert len(q.receive(10, LEASE)) == 1
    assert q.receive(10, LEASE) == []


def test_same_task_and_cube_is_enqueued_once_within_the_dedup_window(
    consuming_queue: ConsumingQueue, clock: FakeClock
) -> None:
    q = consuming_queue
    q.send([queued("t1", "a"), queued("t1", "a")])
    q.send([queued("t1", "a"), queued("t1", "b")])
    assert q.depth() == 2
    for delivery in q.receive(10, LEASE):
        q.ack(delivery.seq)
    clock.advance(DEDUP_WINDOW - 1)
    q.send([queued("t1", "a")])
    assert q.depth() == 0
    clock.advance(2)
    q.send([queued("t1", "a")])
    assert q.depth() == 1


def test_depth_counts_waiting_leased_and_delayed_messages(consuming_queue: ConsumingQueue) -> None:
    q = consuming_queue
    assert q.depth() == 0
    q.send([queued("t1", "a"), queued("t2", "b"), queued("t3", "b")])
    leased_a, leased_b = q.receive(10, LEASE)
    q.retry_later(leased_b.seq, 60)
    assert q.depth() == 3
    q.ack(leased_a.seq)
    assert q.depth() == 2


def test_racing_receivers_never_share_a_message(consuming_queue: ConsumingQueue) -> None:
    q = consuming_queue
    q.send([queued(f"t{n}", f"cube-{n}") for n in range(5)])
    got: list[Delivery] = []
    lock = threading.Lock()
    barrier = threading.Barrier(10)

    def receive() -> None:
        barrier.wait()
        batch = q.receive(2, LEASE)
        with lock:
            got.extend(batch)

    threads = [threading.Thread(target=receive) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(d.seq for d in got) == sorted({d.seq for d in got})
    assert len(got) == 5
    assert {d.attempts for d in got} == {1}


def test_messages_leases_counts_and_dedup_survive_reopening(
    open_consuming_queue: Callable[[], ConsumingQueue],
) -> None:
    first = open_consuming_queue()
    first.send([queued("t1", "a"), queued("t2", "a"), queued("t3", "b")])
    assert names(first.receive(10, LEASE)) == [("a", "t1"), ("b", "t3")]
    close(first)  # the process dies holding both leases

    restarted = open_consuming_queue()
    assert restarted.depth() == 3
    assert restarted.receive(10, LEASE) == []  # the leases are still held
    restarted.send([queued("t1", "a"), queued("t3", "b")])
    assert restarted.depth() == 3  # still deduplicated
    assert restarted.release_all_leases() == 2  # what the embedded runner does on start
    [again] = restarted.receive(10, LEASE)  # a message leased at the death runs alone
    assert (names([again]), again.attempts) == ([("a", "t1")], 2)
    restarted.ack(again.seq)
    [other] = restarted.receive(10, LEASE)
    assert (names([other]), other.attempts) == ([("b", "t3")], 2)
    restarted.ack(other.seq)
    assert names(restarted.receive(10, LEASE)) == [("a", "t2")]


def test_discard_takes_a_cubes_waiting_messages_and_only_the_named_users(queue: QueueUnderTest) -> None:
    other_user = queued("t3", "c1").model_copy(update={"user_id": "u2"})
    queue.adapter.send([queued("t1", "c1"), queued("t2", "c1"), other_user, queued("t4", "c2")])
    gone = queue.adapter.discard("c1", "u1")
    assert gone is not None
    assert sorted(QueuedAdd.model_validate_json(b).task_id for b in gone) == ["t1", "t2"]
    assert task_ids(queue.drain()) == ["t3", "t4"]


def test_discard_of_a_whole_cube_leaves_other_cubes_alone(queue: QueueUnderTest) -> None:
    queue.adapter.send([queued("t1", "c1"), queued("t2", "c2")])
    gone = queue.adapter.discard("c1", None)
    assert gone is not None and len(gone) == 1
    assert task_ids(queue.drain()) == ["t2"]


def test_discard_leaves_a_message_in_flight_to_the_erasure_mark(consuming_queue: ConsumingQueue) -> None:
    consuming_queue.send([queued("t1", "c1"), queued("t2", "c1")])
    [leased] = consuming_queue.receive(10, lease_seconds=60)
    gone = consuming_queue.discard("c1", None)
    assert gone is not None and [QueuedAdd.model_validate_json(b).task_id for b in gone] == ["t2"]
    consuming_queue.ack(leased.seq)
    assert consuming_queue.depth() == 0
