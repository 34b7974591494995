"""Reliability of the real processes: kill -9, restarts, a network partition, many watchers.

Every test drives real ``trainwire orchestrator`` / ``trainwire trainer`` processes and asserts
what a user would notice: the job's final state and error, the events a watcher sees (every seq
once, in order), and the models on disk (stored once, with the sha256 the result names).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from tests.e2e import netns
from tests.support.processes import free_port, service, wait_serving

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

TERMINAL = (ppb.JOB_STATE_SUCCEEDED, ppb.JOB_STATE_FAILED, ppb.JOB_STATE_CANCELLED)


# --- helpers --------------------------------------------------------------------------------


def train_request(
    *, epochs: int, bars: int, hidden: tuple[int, ...] = (), batch_size: int = 0
) -> spb.TrainRequest:
    request = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"])
    request.strategy.training.epochs = epochs
    request.strategy.training.early_stopping_patience = 0  # run every epoch asked for
    if batch_size:
        request.strategy.training.batch_size = batch_size
    if hidden:
        request.strategy.model.hidden_layers.extend(hidden)
    request.data.bars = bars
    return request


def trainer_args(listen: str, work: Path, *extra: str) -> list[str]:
    return ["trainer", "--listen", listen, "--work-dir", str(work), "--grace", "1", *extra]


def orchestrator_args(listen: str, nodes: list[str], state: Path, *extra: str) -> list[str]:
    args = ["orchestrator", "--listen", listen, "--state-dir", str(state), *extra]
    for node in nodes:
        args += ["--node", node]
    return args


def kill9(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process's whole group (it runs in its own session), and reap it."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def stored_models(state: Path) -> list[Path]:
    return sorted(p for p in (state / "models").glob("*/*_v*") if p.is_dir())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tails(*logs: Path, lines: int = 25) -> str:
    out = []
    for log in logs:
        text = log.read_text(errors="replace").splitlines() if log.exists() else ["(no log)"]
        out.append(f"--- {log.name} (last {lines} lines)\n" + "\n".join(text[-lines:]))
    return "\n".join(out)


def assert_model_stored_once(
    state: Path, final: ppb.ProgressEvent, logs: list[Path], also: Sequence[str] = ()
) -> None:
    """The job's model is in the repository once, as the result names it (besides the
    models ``also`` names, of other jobs)."""
    name = final.result.model.name
    models = stored_models(state)
    expected = sorted(state / "models" / n for n in (name, *also))
    assert models == expected, f"stored {models}, expected {expected}\n{tails(*logs)}"
    assert final.result.model.sha256, final
    assert sha256(state / "models" / name / "model.safetensors") == final.result.model.sha256


def assert_contiguous(events: list[ppb.ProgressEvent]) -> None:
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), f"seqs not 1..n without gaps: {seqs}"
    assert events[-1].state in TERMINAL
    assert all(e.state not in TERMINAL for e in events[:-1])


def epochs_of(events: list[ppb.ProgressEvent]) -> list[int]:
    return [e.epoch for e in events if e.kind == ppb.EVENT_KIND_EPOCH]


class Follower:
    """Follows one job with ``WatchJob`` the way a robust client does: when the stream breaks
    (UNAVAILABLE: the orchestrator went away), it dials again with ``after_seq`` = the last seq
    it saw, waiting for the server to come back, until the terminal event."""

    def __init__(self, address: str, job_id: str) -> None:
        self.address = address
        self.job_id = job_id
        self.events: list[ppb.ProgressEvent] = []
        self.connects = 0
        self.errors: list[str] = []
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._cancel: Callable[[], object] | None = None
        self._thread = threading.Thread(target=self._run, name=f"follow-{job_id}", daemon=True)

    def __enter__(self) -> Follower:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        if self._cancel is not None:
            self._cancel()
        self._thread.join(10)

    def _run(self) -> None:
        with plumbing.create_sync_channel(self.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            while not self._closed.is_set():
                after = self.events[-1].seq if self.events else 0
                call = stub.WatchJob(
                    opb.WatchJobRequest(job_id=self.job_id, after_seq=after), wait_for_ready=True
                )
                self._cancel = call.cancel
                self.connects += 1
                try:
                    for event in call:
                        with self._cond:
                            self.events.append(event)
                            self._cond.notify_all()
                        if event.state in TERMINAL:
                            return
                except grpc.RpcError as exc:
                    if self._closed.is_set():
                        return
                    if exc.code() is not grpc.StatusCode.UNAVAILABLE:
                        with self._cond:
                            self.errors.append(f"{exc.code()}: {exc.details()}")
                            self._cond.notify_all()
                        return
                    time.sleep(0.1)
                else:
                    with self._cond:
                        self.errors.append("the stream ended before the terminal event")
                        self._cond.notify_all()
                    return

    def wait_for(
        self, predicate: Callable[[list[ppb.ProgressEvent]], bool], timeout: float, what: str
    ) -> ppb.ProgressEvent:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.events):
                assert not self.errors, f"watching job {self.job_id} failed: {self.errors}"
                if self.events and self.events[-1].state in TERMINAL:
                    raise AssertionError(f"job ended before {what}: {self.events[-1]}")
                left = deadline - time.monotonic()
                assert left > 0, f"no {what} within {timeout:.0f}s; last: {self.events[-1:]}"
                self._cond.wait(min(left, 0.5))
            return self.events[-1]

    def wait_terminal(self, timeout: float) -> ppb.ProgressEvent:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self.events and self.events[-1].state in TERMINAL):
                assert not self.errors, f"watching job {self.job_id} failed: {self.errors}"
                left = deadline - time.monotonic()
                assert left > 0, f"job not finished within {timeout:.0f}s: {self.events[-1:]}"
                self._cond.wait(min(left, 0.5))
            return self.events[-1]


def first_epoch(events: list[ppb.ProgressEvent]) -> bool:
    return any(e.kind == ppb.EVENT_KIND_EPOCH for e in events)


def submit(address: str, request: spb.TrainRequest) -> str:
    with plumbing.create_sync_channel(address) as channel:
        job = orchestrator_pb2_grpc.OrchestratorStub(channel).SubmitJob(request, timeout=30)
    return job.job_id


def get_job(address: str, job_id: str) -> ppb.Job:
    with plumbing.create_sync_channel(address) as channel:
        return orchestrator_pb2_grpc.OrchestratorStub(channel).GetJob(
            opb.GetJobRequest(job_id=job_id), timeout=10
        )


def all_events(address: str, job_id: str) -> list[ppb.ProgressEvent]:
    with plumbing.create_sync_channel(address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        return list(stub.WatchJob(opb.WatchJobRequest(job_id=job_id), timeout=30))


@dataclass
class Proc:
    address: str
    proc: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def cluster(
    tmp: Path, trainers: int, *trainer_extra: str, orchestrator_extra: Sequence[str] = ()
) -> Iterator[tuple[Proc, list[Proc], Path]]:
    """An orchestrator and ``trainers`` trainer nodes on loopback, all started at once."""
    state = tmp / "state"
    with contextlib.ExitStack() as stack:
        nodes = []
        for i in range(trainers):
            address, log = f"127.0.0.1:{free_port()}", tmp / f"trainer-{i}.log"
            proc = stack.enter_context(
                service(trainer_args(address, tmp / f"work-{i}", *trainer_extra), log)
            )
            nodes.append(Proc(address, proc, log))
        address, log = f"127.0.0.1:{free_port()}", tmp / "orchestrator.log"
        proc = stack.enter_context(
            service(
                orchestrator_args(address, [n.address for n in nodes], state, *orchestrator_extra),
                log,
            )
        )
        orch = Proc(address, proc, log)
        for p in (*nodes, orch):
            wait_serving(p.address, p.proc)
        yield orch, nodes, state


# --- 1. a trainer killed mid-job ---------------------------------------------------------------

KILL_EPOCHS = 40
"""Enough that the kill after the first epoch lands mid-job even when epochs take 25 ms."""


@pytest.mark.timeout(150)
def test_kill9_of_the_trainer_mid_job_retries_on_the_other_node(tmp_path: Path) -> None:
    with cluster(tmp_path, 2) as (orch, nodes, state):
        logs = [orch.log, *(n.log for n in nodes)]
        job_id = submit(orch.address, train_request(epochs=KILL_EPOCHS, bars=1500))
        with Follower(orch.address, job_id) as follower:
            follower.wait_for(first_epoch, 60, "first epoch")
            running_on = get_job(orch.address, job_id).node
            victim = next(n for n in nodes if n.address == running_on)
            survivor = next(n for n in nodes if n is not victim)
            kill9(victim.proc)
            final = follower.wait_terminal(90)
            events = follower.events

        assert final.state == ppb.JOB_STATE_SUCCEEDED, f"{final}\n{tails(*logs)}"
        assert_contiguous(events)
        retries = [
            (i, e)
            for i, e in enumerate(events)
            if e.state == ppb.JOB_STATE_QUEUED and "Retrying" in e.message
        ]
        assert len(retries) == 1, [e.message for e in events if e.state == ppb.JOB_STATE_QUEUED]
        index, retry = retries[0]
        assert victim.address in retry.message, retry.message
        assert any(e.kind == ppb.EVENT_KIND_EPOCH for e in events[:index])  # killed mid-training
        after = events[index + 1 :]
        assert after and all(e.node == survivor.address for e in after), {e.node for e in after}
        assert epochs_of(after) == list(range(1, KILL_EPOCHS + 1))  # a whole second run
        job = get_job(orch.address, job_id)
        assert (job.state, job.node, job.attempt) == (
            ppb.JOB_STATE_SUCCEEDED,
            survivor.address,
            2,
        )
        assert_model_stored_once(state, final, logs)


@pytest.mark.timeout(90)
def test_kill9_of_the_only_trainer_with_no_attempt_left_fails_the_job_naming_the_node(
    tmp_path: Path,
) -> None:
    with cluster(tmp_path, 1, orchestrator_extra=("--max-attempts", "1")) as (orch, nodes, state):
        (node,) = nodes
        job_id = submit(orch.address, train_request(epochs=5000, bars=1500))
        with Follower(orch.address, job_id) as follower:
            follower.wait_for(first_epoch, 60, "first epoch")
            killed = time.monotonic()
            kill9(node.proc)
            final = follower.wait_terminal(60)
            took = time.monotonic() - killed
            events = follower.events

    logs = (orch.log, node.log)
    assert final.state == ppb.JOB_STATE_FAILED, f"{final}\n{tails(*logs)}"
    assert took < 30, f"the job took {took:.1f}s to fail after its node died"
    assert_contiguous(events)
    assert node.address in final.error.message, final.error
    assert "lost node" in final.error.message, final.error
    assert not stored_models(state)
    assert final.error.code == "NODE_LOST", final.error


@pytest.mark.timeout(150)
def test_kill9_of_the_only_trainer_keeps_the_retry_queued_until_a_trainer_returns(
    tmp_path: Path,
) -> None:
    """With an attempt left and no other node, the retry waits QUEUED (naming the lost node)
    instead of failing; a trainer started again at the node's address runs it to the end."""
    with cluster(tmp_path, 1) as (orch, nodes, state):
        (node,) = nodes
        job_id = submit(orch.address, train_request(epochs=KILL_EPOCHS, bars=1500))
        with Follower(orch.address, job_id) as follower:
            follower.wait_for(first_epoch, 60, "first epoch")
            kill9(node.proc)
            waiting = follower.wait_for(
                lambda events: events[-1].message.startswith("Waiting"), 60, "a waiting retry"
            )
            job = get_job(orch.address, job_id)
            assert job.state == ppb.JOB_STATE_QUEUED, job
            assert node.address in job.message, job.message
            retry = [e for e in follower.events if "Retrying" in e.message]
            assert len(retry) == 1 and node.address in retry[0].message, retry
            assert waiting.state == ppb.JOB_STATE_QUEUED

            log = tmp_path / "trainer-again.log"
            args = trainer_args(node.address, tmp_path / "work-again")
            with service(args, log) as again:
                wait_serving(node.address, again)
                final = follower.wait_terminal(120)
            events = follower.events
        attempts = get_job(orch.address, job_id).attempt

    logs = [orch.log, node.log, log]
    assert final.state == ppb.JOB_STATE_SUCCEEDED, f"{final}\n{tails(*logs)}"
    assert_contiguous(events)
    after = events[events.index(waiting) + 1 :]
    assert epochs_of(after) == list(range(1, KILL_EPOCHS + 1))  # a whole second run
    assert attempts == 2
    assert_model_stored_once(state, final, logs)


# --- 2. the orchestrator killed mid-job and restarted ----------------------------------------


TRAIN_S = 15.0
"""How long the restart test's job should train: well past an orchestrator restart."""


def seconds_per_epoch(address: str, bars: int) -> tuple[float, str]:
    """Time a short job's epochs: how fast this machine trains right now (it varies 20x with
    load and thread settings), and the name of the model it stored."""
    with plumbing.create_sync_channel(address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        events = list(stub.Train(train_request(epochs=6, bars=bars), timeout=120))
    assert events[-1].state == ppb.JOB_STATE_SUCCEEDED, events[-1]
    times = [e.time.ToNanoseconds() / 1e9 for e in events if e.kind == ppb.EVENT_KIND_EPOCH]
    return (times[-1] - times[0]) / (len(times) - 1), events[-1].result.model.name


@pytest.mark.timeout(150)
def test_kill9_of_the_orchestrator_mid_job_then_restart(tmp_path: Path) -> None:
    bars = 3000
    orch_address = f"127.0.0.1:{free_port()}"
    trainer_address = f"127.0.0.1:{free_port()}"
    state = tmp_path / "state"
    args = orchestrator_args(orch_address, [trainer_address], state)
    logs = [tmp_path / n for n in ("trainer.log", "orchestrator-1.log", "orchestrator-2.log")]
    with contextlib.ExitStack() as stack:
        trainer = stack.enter_context(
            service(trainer_args(trainer_address, tmp_path / "work"), logs[0])
        )
        with service(args, logs[1]) as first:
            wait_serving(trainer_address, trainer)
            wait_serving(orch_address, first)
            per_epoch, calibration_model = seconds_per_epoch(orch_address, bars)
            epochs = max(10, min(5000, round(TRAIN_S / max(per_epoch, 1e-3))))
            job_id = submit(orch_address, train_request(epochs=epochs, bars=bars))
            follower = stack.enter_context(Follower(orch_address, job_id))
            follower.wait_for(lambda events: 2 in epochs_of(events), 60, "epoch 2")
            kill9(first)
            before = list(follower.events)
        # mid-training: the job is running and has epochs to go
        assert before[-1].state == ppb.JOB_STATE_RUNNING
        assert max(epochs_of(before)) < epochs
        assert get_job_or_none(orch_address, job_id) is None  # really gone

        with service(args, logs[2]) as second:
            wait_serving(orch_address, second)
            restarted_wall = time.time()
            final = follower.wait_terminal(90)
            stored = all_events(orch_address, job_id)
            job = get_job(orch_address, job_id)

    assert final.state == ppb.JOB_STATE_SUCCEEDED, f"{final}\n{tails(*logs)}"
    assert job.state == ppb.JOB_STATE_SUCCEEDED and job.attempt == 1, job
    assert follower.connects >= 2, "the watcher never had to reconnect"
    assert not follower.errors, follower.errors
    # The reconnecting watcher got every event once, in order: exactly the job's stored log.
    received = [e.SerializeToString(deterministic=True) for e in follower.events]
    assert received == [e.SerializeToString(deterministic=True) for e in stored]
    assert_contiguous(follower.events)
    assert len(follower.events) > len(before)
    assert epochs_of(follower.events) == list(range(1, epochs + 1))
    assert_model_stored_once(state, final, logs, also=[calibration_model])
    live = sum(1 for e in follower.events if e.time.ToNanoseconds() / 1e9 > restarted_wall)
    print(
        f"orchestrator restart: {epochs} epochs at {per_epoch:.3f}s; {len(before)} events "
        f"before the kill, {len(follower.events) - len(before)} after; {live} produced after "
        "the restart"
    )


def get_job_or_none(address: str, job_id: str) -> ppb.Job | None:
    with plumbing.create_sync_channel(address) as channel:
        try:
            return orchestrator_pb2_grpc.OrchestratorStub(channel).GetJob(
                opb.GetJobRequest(job_id=job_id), timeout=1
            )
        except grpc.RpcError:
            return None


# --- 3. a network partition during the upload --------------------------------------------------

SHORT_CUT_S = 5.0
"""Shorter than TCP_USER_TIMEOUT (gRPC sets it to the 10 s keepalive timeout): TCP retransmits
ride it out and no connection breaks."""
LONG_CUT_S = 15.0
"""Longer than TCP_USER_TIMEOUT: every connection with unacked data breaks, so the upload must
retry and resume, and the orchestrator's stream from the trainer breaks too."""


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("cut_s", "scope"),
    [
        pytest.param(SHORT_CUT_S, "link", id="link-5s"),
        pytest.param(LONG_CUT_S, "link", id="link-15s"),
        pytest.param(LONG_CUT_S, "upload", id="upload-only-15s"),
    ],
)
def test_network_partition_during_upload_is_ridden_out(
    tmp_path: Path, cut_s: float, scope: str
) -> None:
    """The trainer in its own network namespace, behind a veth pair. Once the orchestrator has
    staged the upload's first bytes, for ``cut_s``: ``link`` black-holes the whole link (every
    packet dropped, both ways); ``upload`` only the trainer's connections to the orchestrator
    (the upload), not the orchestrator's to the trainer (the event stream, health probes). The
    job must still succeed, with its model stored once."""
    state = tmp_path / "state"
    logs = [tmp_path / "trainer.log", tmp_path / "orchestrator.log"]
    with contextlib.ExitStack() as stack:
        try:
            link = stack.enter_context(netns.veth_namespace())
        except netns.NetnsUnavailable as exc:
            pytest.skip(f"network namespaces are not available here: {exc}")
        trainer_address = f"{link.ns_ip}:50052"
        orch_address = f"{link.host_ip}:{free_port()}"
        trainer = stack.enter_context(
            netns.spawn_in(
                link.ns,
                trainer_args(
                    trainer_address, tmp_path / "work", "--advertise", trainer_address, "--insecure"
                ),
                logs[0],
            )
        )
        orch = stack.enter_context(
            service(
                orchestrator_args(
                    orch_address, [trainer_address], state, "--advertise", orch_address
                ),
                logs[1],
            )
        )
        wait_serving(trainer_address, trainer)
        wait_serving(orch_address, orch)
        # A 4096x4096 MLP: ~67 MB of weights, so the upload takes seconds; few bars and one
        # big batch keep its training short.
        request = train_request(epochs=1, bars=300, hidden=(4096, 4096), batch_size=1024)
        job_id = submit(orch_address, request)
        follower = stack.enter_context(Follower(orch_address, job_id))
        follower.wait_for(
            lambda events: any(e.kind == ppb.EVENT_KIND_UPLOAD for e in events),
            120,
            "the upload step",
        )
        # Cut as soon as the orchestrator has staged the first compressed bytes: mid-transfer.
        staged_at_cut = wait_staged(state, 30)
        orch_port = int(orch_address.rsplit(":", 1)[1])
        with contextlib.ExitStack() as cut_stack:  # the cut is restored when this block ends
            try:
                how = cut_stack.enter_context(
                    link.partition() if scope == "link" else link.drop_port(orch_port)
                )
            except netns.NetnsUnavailable as exc:
                pytest.skip(f"cannot cut the upload's connections here: {exc}")
            cut = time.monotonic()
            # An operator looks at the nodes. With the link cut the node shows as unreachable
            # (and the probe puts unacknowledged bytes on the orchestrator's connection to the
            # node, as any probe or keepalive ping would).
            expected_health = NODE_UNREACHABLE if scope == "link" else NODE_SERVING
            health_during = wait_node_health(orch_address, expected_health, 5)
            during: list[int] = []
            while time.monotonic() - cut < cut_s:
                during.append(get_job(orch_address, job_id).state)
                time.sleep(0.5)
            stored_during_cut = stored_models(state)
            staged = staged_bytes(state)
        restored = time.monotonic()
        final = follower.wait_terminal(120)
        recovered_in = time.monotonic() - restored
        health_after = wait_node_health(orch_address, NODE_SERVING, 15)

    assert not stored_during_cut, (
        "the model was stored before the link came back: the cut missed the upload "
        f"(make the model bigger); {stored_during_cut}"
    )
    assert health_during == expected_health, health_during
    assert set(during) == {ppb.JOB_STATE_RUNNING}, f"{during}\n{tails(*logs)}"
    assert final.state == ppb.JOB_STATE_SUCCEEDED, f"{final}\n{tails(*logs)}"
    assert health_after == NODE_SERVING
    assert_contiguous(follower.events)
    assert_model_stored_once(state, final, logs)
    trainer_log = logs[0].read_text()
    retries = [line for line in trainer_log.splitlines() if "retrying in" in line]
    if cut_s > 10:  # the upload's connection broke: it must have retried and resumed
        assert retries and "resuming the upload at byte" in trainer_log, tails(logs[0])
    print(
        f"partition ({how}) for {cut_s:.0f}s during the upload: cut with {staged_at_cut} "
        f"compressed bytes staged, {staged} when it ended; {len(retries)} upload retries; "
        f"SUCCEEDED {recovered_in:.1f}s after the link came back"
    )


NODE_SERVING = opb.NODE_HEALTH_SERVING
NODE_UNREACHABLE = opb.NODE_HEALTH_UNREACHABLE


def node_health(address: str) -> int:
    with plumbing.create_sync_channel(address) as channel:
        reply = orchestrator_pb2_grpc.OrchestratorStub(channel).ListNodes(
            opb.ListNodesRequest(), timeout=10
        )
    (node,) = reply.nodes
    return node.health


def wait_node_health(address: str, health: int, within_s: float) -> int:
    deadline = time.monotonic() + within_s
    while (now := node_health(address)) != health and time.monotonic() < deadline:
        time.sleep(0.5)
    return now


def staged_bytes(state: Path) -> int:
    total = 0
    for path in (state / "staging").glob("*.gz"):
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total


def wait_staged(state: Path, within_s: float) -> int:
    """Wait until the orchestrator has staged some of the upload; fail if it stored it all."""
    deadline = time.monotonic() + within_s
    while (staged := staged_bytes(state)) == 0:
        assert not stored_models(state), "the upload finished before the cut: use a bigger model"
        assert time.monotonic() < deadline, f"nothing staged within {within_s:.0f}s"
        time.sleep(0.005)
    return staged


# --- 4. many watchers ----------------------------------------------------------------------------

WATCHERS = 200
CHANNELS = 4


@pytest.mark.timeout(150)
async def test_200_concurrent_watchers_each_see_every_event_once(tmp_path: Path) -> None:
    """Two jobs run at once; 200 ``WatchJob`` streams over 4 channels follow them (half join as
    the jobs start, half mid-training), all from seq 1. Once every watcher has live events the
    jobs are cancelled (so the timing never depends on how fast this machine trains): every
    watcher must have got the job's whole log, each seq once, in order, to the terminal event."""
    with cluster(tmp_path, 1, "--slots", "2") as (orch, nodes, state):
        logs = [orch.log, nodes[0].log]
        channels = [plumbing.create_channel(orch.address) for _ in range(CHANNELS)]
        try:
            stubs = [orchestrator_pb2_grpc.OrchestratorStub(c) for c in channels]
            request = train_request(epochs=10_000, bars=2000)
            jobs = [(await stubs[0].SubmitJob(request, timeout=30)).job_id for _ in range(2)]
            for job_id in jobs:
                await wait_state(stubs[0], job_id, ppb.JOB_STATE_RUNNING, 60)

            received: list[list[ppb.ProgressEvent]] = [[] for _ in range(WATCHERS)]
            finished_at = [0.0] * WATCHERS
            epoch_seen = {job_id: asyncio.Event() for job_id in jobs}
            all_attached = asyncio.Event()
            live_target = dict.fromkeys(jobs, 1 << 30)
            live_reached = {job_id: asyncio.Event() for job_id in jobs}

            async def watch(i: int) -> None:
                job_id = jobs[i % 2]
                stub = stubs[i % CHANNELS]
                async for event in stub.WatchJob(opb.WatchJobRequest(job_id=job_id)):
                    received[i].append(event)
                    if len(received[i]) == 1 and all(received):
                        all_attached.set()
                    if event.kind == ppb.EVENT_KIND_EPOCH:
                        epoch_seen[job_id].set()
                        if event.epoch >= live_target[job_id]:
                            live_reached[job_id].set()
                finished_at[i] = time.monotonic()

            # Half join as the jobs start, half mid-training; all ask for every event (seq 1 on).
            wave1 = [asyncio.create_task(watch(i)) for i in range(WATCHERS // 2)]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in epoch_seen.values())), 60)
            wave2 = [asyncio.create_task(watch(i)) for i in range(WATCHERS // 2, WATCHERS)]
            await asyncio.wait_for(all_attached.wait(), 60)
            # Every watcher is attached; let each job get two more epochs out to all of them.
            for i, job_id in enumerate(jobs):
                seen = [epoch for r in received[i::2] for epoch in epochs_of(r)]
                live_target[job_id] = max(seen) + 2
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in live_reached.values())), 60)
            for job_id in jobs:
                await stubs[0].CancelJob(
                    opb.CancelJobRequest(job_id=job_id, reason="enough watching"), timeout=10
                )

            await asyncio.wait_for(asyncio.gather(*wave1, *wave2), 60)
            stored = {
                job_id: [
                    e.SerializeToString(deterministic=True)
                    async for e in stubs[0].WatchJob(opb.WatchJobRequest(job_id=job_id))
                ]
                for job_id in jobs
            }
        finally:
            for channel in channels:
                await channel.close(None)

    for job_id in jobs:
        log = [ppb.ProgressEvent.FromString(b) for b in stored[job_id]]
        assert log[-1].state == ppb.JOB_STATE_CANCELLED, f"{log[-1]}\n{tails(*logs)}"
        assert_contiguous(log)
        assert len(epochs_of(log)) >= 3
    for i, events in enumerate(received):
        job_id = jobs[i % 2]
        got = [e.SerializeToString(deterministic=True) for e in events]
        assert got == stored[job_id], (
            f"watcher {i} of job {job_id}: {len(got)} events, seqs "
            f"{[e.seq for e in events][:5]}…{[e.seq for e in events][-5:]}, "
            f"the job has {len(stored[job_id])}"
        )
    spread = max(finished_at) - min(finished_at)
    assert spread < 15, f"the last watcher saw the end {spread:.1f}s after the first"
    assert not stored_models(state)
    print(
        f"{WATCHERS} watchers: {sum(map(len, received))} events delivered; the terminal event "
        f"reached all of them within {spread:.2f}s"
    )


async def wait_state(
    stub: orchestrator_pb2_grpc.OrchestratorAsyncStub, job_id: str, state: int, within_s: float
) -> None:
    deadline = time.monotonic() + within_s
    while True:
        job = await stub.GetJob(opb.GetJobRequest(job_id=job_id), timeout=10)
        if job.state == state:
            return
        assert job.state not in TERMINAL, job
        assert time.monotonic() < deadline, f"job {job_id} not {state} within {within_s}s: {job}"
        await asyncio.sleep(0.1)
