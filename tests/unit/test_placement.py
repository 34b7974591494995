"""``placement.choose``: every branch, as a pure function over node statuses.

The contract these tests pin down:
- a named node (by address or node id) that is serving wins, and the job waits for it (``Wait``)
  when it is busy; a named node that is down falls back only when the request allows it, with a
  note that says so, and otherwise the job waits for it; an unknown named node is NOT_FOUND;
- ``require_gpu`` never runs on a CPU: no known GPU node at all is FAILED_PRECONDITION saying
  why; GPU nodes that are down or busy mean wait;
- GPU/CPU mode prefer that kind and fall back (when allowed, visibly) to the other;
- AUTO prefers GPU nodes with free slots, then CPU nodes, the least loaded first;
- nothing that can take the job free or serving *now* is ``Wait`` with the reason (the job
  stays QUEUED); unhealthy or draining nodes are never chosen; ties go to the node listed first
  (the registry's order: configuration, then registration), so the same statuses always give
  the same node;
- with no nodes known at all the job waits (a trainer may register later), unless it names one.
"""

from __future__ import annotations

import itertools

import grpc
import pytest

from services.orchestrator.placement import SUMMARY_NODES, Choice, Wait, choose
from shared import errors
from shared.nodes import DeviceKind, NodeDevice, NodeHealth, NodeInfo, NodeStatus
from shared.rpc.errors import to_status
from shared.spec import PlacementMode, PlacementSpec

AUTO, CPU, GPU = PlacementMode.AUTO, PlacementMode.CPU, PlacementMode.GPU
SERVING = NodeHealth.SERVING


def node(
    address: str,
    kind: DeviceKind = DeviceKind.CPU,
    *,
    health: NodeHealth = SERVING,
    slots: int = 1,
    used: int = 0,
    node_id: str = "",
    detail: str = "",
    draining: bool = False,
) -> NodeStatus:
    info = NodeInfo(
        node_id=node_id or f"id-{address}",
        address=address,
        device=NodeDevice(kind=kind, torch_device=kind.value),
        slots=slots,
        slots_used=used,
        draining=draining,
    )
    return NodeStatus(
        address=address,
        source="static",
        health=health,
        info=info,
        slots_used=used,
        last_check=1.0,
        latency_ms=1.0,
        detail=detail,
    )


def cpu(address: str, **kw: object) -> NodeStatus:
    return node(address, DeviceKind.CPU, **kw)  # type: ignore[arg-type]


def gpu(address: str, **kw: object) -> NodeStatus:
    return node(address, DeviceKind.CUDA, **kw)  # type: ignore[arg-type]


def down(address: str, kind: DeviceKind = DeviceKind.CPU) -> NodeStatus:
    return node(
        address, kind, health=NodeHealth.UNREACHABLE, detail="no SERVING health answer within 2.0s"
    )


def spec(
    mode: PlacementMode = AUTO,
    *,
    require_gpu: bool = False,
    node: str = "",
    allow_fallback: bool = True,
) -> PlacementSpec:
    return PlacementSpec(
        mode=mode, require_gpu=require_gpu, node=node, allow_fallback=allow_fallback
    )


def refused(
    placement: PlacementSpec, nodes: list[NodeStatus], code: grpc.StatusCode, field: str
) -> str:
    """``choose`` raises a domain error that maps to ``code`` and names ``field``; its message."""
    with pytest.raises(errors.TrainwireError) as info:
        choose(placement, nodes)
    assert to_status(info.value).code == code
    assert info.value.field == field
    return info.value.message


def waits(placement: PlacementSpec, nodes: list[NodeStatus]) -> str:
    """``choose`` says the job must wait; the reason it gives."""
    outcome = choose(placement, nodes)
    assert isinstance(outcome, Wait), outcome
    assert outcome.reason
    return outcome.reason


# -- no nodes at all ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "placement",
    [spec(), spec(GPU), spec(CPU), spec(require_gpu=True), spec(GPU, allow_fallback=False)],
    ids=["auto", "gpu", "cpu", "require_gpu", "gpu-no-fallback"],
)
def test_no_nodes_known_yet_waits_and_says_how_to_add_one(placement: PlacementSpec) -> None:
    reason = waits(placement, [])
    assert "no trainer nodes are known yet" in reason
    assert "--orchestrator" in reason and "--node" in reason


def test_no_nodes_known_and_a_named_node_is_not_found() -> None:
    message = refused(spec(node="a:1"), [], grpc.StatusCode.NOT_FOUND, "placement.node")
    assert "'a:1'" in message and "no trainer nodes are known yet" in message


# -- a named node ------------------------------------------------------------------------------


def test_named_node_by_address_wins_over_a_better_node() -> None:
    nodes = [gpu("g:1", slots=8), cpu("c:1")]
    assert choose(spec(node="c:1"), nodes) == Choice("c:1", "")


def test_named_node_by_node_id_resolves_to_its_address() -> None:
    nodes = [cpu("c:1", node_id="alpha"), cpu("c:2", node_id="beta")]
    assert choose(spec(node="beta"), nodes) == Choice("c:2", "")


def test_named_node_ignores_mode() -> None:
    assert choose(spec(GPU, node="c:1"), [gpu("g:1"), cpu("c:1")]) == Choice("c:1", "")


def test_unknown_named_node_is_not_found_and_lists_the_known_nodes() -> None:
    message = refused(
        spec(node="nope:1"), [cpu("c:1"), gpu("g:1")], grpc.StatusCode.NOT_FOUND, "placement.node"
    )
    assert "'nope:1'" in message
    assert "c:1" in message and "g:1" in message


@pytest.mark.parametrize("allow_fallback", [True, False], ids=["fallback", "no-fallback"])
def test_named_node_that_is_busy_is_waited_for(allow_fallback: bool) -> None:
    """Busy is not down: the job waits for the node it named, even when others are free."""
    nodes = [cpu("c:1", used=1), cpu("c:2")]
    reason = waits(spec(node="c:1", allow_fallback=allow_fallback), nodes)
    assert "free slot on node c:1" in reason


@pytest.mark.parametrize(
    "health", [NodeHealth.UNREACHABLE, NodeHealth.NOT_SERVING, NodeHealth.UNKNOWN]
)
def test_named_node_down_falls_back_visibly_when_allowed(health: NodeHealth) -> None:
    nodes = [cpu("c:1", health=health, detail="probe failed"), cpu("c:2")]
    choice = choose(spec(node="c:1"), nodes)
    assert isinstance(choice, Choice), choice
    assert choice.address == "c:2"
    assert "c:1" in choice.note
    assert health.value in choice.note
    assert "probe failed" in choice.note
    assert "falling back" in choice.note


def test_named_node_down_without_fallback_waits_for_it_with_the_reason() -> None:
    """Down is not gone: it may come back, so the job waits for the node it named."""
    nodes = [down("c:1"), cpu("c:2")]
    reason = waits(spec(node="c:1", allow_fallback=False), nodes)
    assert "c:1" in reason and "unreachable" in reason
    assert "does not allow fallback" in reason


def test_named_node_never_probed_without_fallback_and_require_gpu_waits_for_it() -> None:
    """Its device is unknown until it answers GetInfo, so it may still be a GPU node."""
    never = NodeStatus(
        address="g:1",
        source="static",
        health=NodeHealth.UNREACHABLE,
        info=None,
        slots_used=0,
        last_check=1.0,
        latency_ms=1.0,
        detail="no SERVING health answer within 1.0s",
    )
    reason = waits(spec(node="g:1", require_gpu=True, allow_fallback=False), [never])
    assert "g:1 is unreachable" in reason


def test_named_node_down_falls_back_but_waits_when_the_rest_are_busy() -> None:
    reason = waits(spec(node="c:1"), [down("c:1"), cpu("c:2", used=1)])
    assert "c:2" in reason and "busy" in reason


def test_named_node_down_and_nothing_else_serving_waits() -> None:
    reason = waits(spec(node="c:1"), [down("c:1"), down("c:2")])
    assert "c:1: unreachable" in reason and "c:2: unreachable" in reason


def test_named_node_draining_falls_back_and_says_it_is_draining() -> None:
    # The registry reports a draining trainer as NOT_SERVING with detail "draining".
    draining = cpu("c:1", health=NodeHealth.NOT_SERVING, detail="draining", draining=True)
    choice = choose(spec(node="c:1"), [draining, cpu("c:2")])
    assert isinstance(choice, Choice) and choice.address == "c:2"
    assert "draining" in choice.note


def test_named_gpu_node_with_require_gpu_is_chosen() -> None:
    assert choose(spec(node="g:1", require_gpu=True), [cpu("c:1"), gpu("g:1")]) == Choice("g:1")


def test_named_cpu_node_with_require_gpu_falls_back_to_a_gpu_node() -> None:
    choice = choose(spec(node="c:1", require_gpu=True), [cpu("c:1"), gpu("g:1")])
    assert isinstance(choice, Choice) and choice.address == "g:1"
    assert "c:1 has no GPU" in choice.note and "falling back" in choice.note


def test_named_cpu_node_with_require_gpu_and_no_fallback_is_refused() -> None:
    message = refused(
        spec(node="c:1", require_gpu=True, allow_fallback=False),
        [cpu("c:1"), gpu("g:1")],
        grpc.StatusCode.FAILED_PRECONDITION,
        "placement.node",
    )
    assert "c:1 has no GPU" in message


def test_named_cpu_node_with_require_gpu_and_no_gpu_anywhere_is_refused() -> None:
    refused(
        spec(node="c:1", require_gpu=True),
        [cpu("c:1"), cpu("c:2")],
        grpc.StatusCode.FAILED_PRECONDITION,
        "placement.require_gpu",
    )


# -- require_gpu -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "nodes",
    [
        [cpu("c:1"), cpu("c:2", slots=4)],
        [cpu("c:1"), down("c:2")],
    ],
    ids=["cpu-only", "cpu-and-a-down-cpu"],
)
@pytest.mark.parametrize("mode", [AUTO, CPU, GPU])
def test_require_gpu_without_any_known_gpu_node_is_a_clear_error(
    nodes: list[NodeStatus], mode: PlacementMode
) -> None:
    message = refused(
        spec(mode, require_gpu=True),
        nodes,
        grpc.StatusCode.FAILED_PRECONDITION,
        "placement.require_gpu",
    )
    assert "requires a GPU" in message
    assert "no known node has one" in message
    for n in nodes:  # the summary shows every node and why it does not qualify
        assert n.address in message
    assert "placement.require_gpu" in message  # and how to get past it


@pytest.mark.parametrize(
    "nodes",
    [
        [cpu("c:1"), down("g:1", DeviceKind.CUDA)],
        [cpu("c:1"), gpu("g:1", health=NodeHealth.NOT_SERVING, detail="draining", draining=True)],
    ],
    ids=["gpu-unreachable", "gpu-draining"],
)
@pytest.mark.parametrize("mode", [AUTO, CPU, GPU])
def test_require_gpu_with_a_gpu_node_that_is_out_waits_for_it(
    nodes: list[NodeStatus], mode: PlacementMode
) -> None:
    reason = waits(spec(mode, require_gpu=True), nodes)
    assert "no GPU node is serving" in reason
    assert "g:1" in reason


def test_require_gpu_never_runs_on_cpu_it_waits_for_a_busy_gpu() -> None:
    reason = waits(spec(require_gpu=True), [gpu("g:1", used=1), cpu("c:1", slots=8)])
    assert "busy on g:1" in reason and "c:1" not in reason


def test_require_gpu_beats_cpu_mode() -> None:
    assert choose(spec(CPU, require_gpu=True), [cpu("c:1"), gpu("g:1")]) == Choice("g:1")


@pytest.mark.parametrize("kind", [DeviceKind.CUDA, DeviceKind.MPS])
def test_require_gpu_accepts_cuda_and_mps(kind: DeviceKind) -> None:
    assert choose(spec(require_gpu=True), [cpu("c:1"), node("x:1", kind)]) == Choice("x:1")


# -- GPU / CPU mode ----------------------------------------------------------------------------


def test_gpu_mode_prefers_a_gpu_over_a_less_loaded_cpu() -> None:
    assert choose(spec(GPU), [cpu("c:1", slots=8), gpu("g:1")]) == Choice("g:1")


def test_gpu_mode_without_gpu_falls_back_to_cpu_visibly() -> None:
    choice = choose(spec(GPU), [cpu("c:1")])
    assert isinstance(choice, Choice) and choice.address == "c:1"
    assert "falling back to CPU" in choice.note


def test_gpu_mode_with_busy_gpus_falls_back_to_cpu_visibly() -> None:
    choice = choose(spec(GPU), [gpu("g:1", used=1), cpu("c:1")])
    assert isinstance(choice, Choice) and choice.address == "c:1"
    assert "GPU" in choice.note and "falling back" in choice.note


def test_gpu_mode_without_gpu_and_without_fallback_is_refused() -> None:
    message = refused(
        spec(GPU, allow_fallback=False),
        [cpu("c:1")],
        grpc.StatusCode.FAILED_PRECONDITION,
        "placement.mode",
    )
    assert "GPU" in message and "c:1" in message


def test_gpu_mode_without_fallback_waits_for_a_busy_gpu() -> None:
    reason = waits(spec(GPU, allow_fallback=False), [gpu("g:1", used=1), cpu("c:1")])
    assert "busy on g:1" in reason


def test_gpu_mode_without_fallback_waits_for_a_gpu_node_that_is_down() -> None:
    reason = waits(spec(GPU, allow_fallback=False), [down("g:1", DeviceKind.CUDA), cpu("c:1")])
    assert "no GPU node is serving" in reason and "g:1: unreachable cuda" in reason


def test_cpu_mode_prefers_a_cpu_over_a_free_gpu() -> None:
    assert choose(spec(CPU), [gpu("g:1", slots=8), cpu("c:1")]) == Choice("c:1")


@pytest.mark.parametrize(
    "nodes", [[gpu("g:1")], [cpu("c:1", used=1), gpu("g:1")]], ids=["no-cpu", "cpu-busy"]
)
def test_cpu_mode_falls_back_to_gpu_visibly(nodes: list[NodeStatus]) -> None:
    choice = choose(spec(CPU), nodes)
    assert isinstance(choice, Choice) and choice.address == "g:1"
    assert "CPU" in choice.note and "falling back" in choice.note


def test_cpu_mode_without_cpu_and_without_fallback_is_refused() -> None:
    message = refused(
        spec(CPU, allow_fallback=False),
        [gpu("g:1")],
        grpc.StatusCode.FAILED_PRECONDITION,
        "placement.mode",
    )
    assert "CPU" in message and "g:1" in message


def test_cpu_mode_without_fallback_waits_for_a_busy_cpu() -> None:
    reason = waits(spec(CPU, allow_fallback=False), [cpu("c:1", used=1), gpu("g:1")])
    assert "busy on c:1" in reason


# -- AUTO --------------------------------------------------------------------------------------


def test_auto_prefers_a_gpu_with_a_free_slot_over_a_less_loaded_cpu() -> None:
    assert choose(spec(), [cpu("c:1", slots=16), gpu("g:1", slots=2, used=1)]) == Choice("g:1")


def test_auto_takes_a_cpu_when_every_gpu_is_busy_and_that_is_no_fallback() -> None:
    assert choose(spec(), [gpu("g:1", used=1), cpu("c:1")]) == Choice("c:1", "")


def test_auto_counts_mps_as_a_gpu() -> None:
    assert choose(spec(), [cpu("c:1"), node("m:1", DeviceKind.MPS)]) == Choice("m:1")


def test_auto_takes_the_least_loaded_node_of_a_kind() -> None:
    nodes = [cpu("c:1", slots=4, used=3), cpu("c:2", slots=4, used=1), cpu("c:3", slots=2)]
    assert choose(spec(), nodes) == Choice("c:2")


@pytest.mark.parametrize("mode", [AUTO, CPU, GPU])
def test_every_slot_busy_means_wait(mode: PlacementMode) -> None:
    nodes = [gpu("g:1", used=1), cpu("c:1", slots=2, used=2)]
    reason = waits(spec(mode), nodes)
    assert "every slot is busy on" in reason and "g:1" in reason and "c:1" in reason


# -- health ------------------------------------------------------------------------------------


def test_unhealthy_and_draining_nodes_are_never_chosen() -> None:
    unhealthy = [
        gpu("g:unknown", health=NodeHealth.UNKNOWN, detail="not probed yet", slots=8),
        gpu("g:down", health=NodeHealth.UNREACHABLE, detail="GetInfo failed", slots=8),
        gpu("g:drain", health=NodeHealth.NOT_SERVING, detail="draining", draining=True, slots=8),
    ]
    # The only serving node is busy: wait, rather than take an unhealthy one.
    for mode in (AUTO, CPU, GPU):
        assert isinstance(choose(spec(mode), [*unhealthy, cpu("c:1", used=1)]), Wait)
        assert choose(spec(mode), [*unhealthy, cpu("c:1")]) == Choice(
            "c:1", "" if mode is not GPU else "no serving GPU node; falling back to CPU"
        )


def test_nothing_serving_waits_and_summarises_every_node() -> None:
    nodes = [down("c:1"), gpu("g:1", health=NodeHealth.NOT_SERVING, detail="draining")]
    reason = waits(spec(), nodes)
    assert "no trainer node is serving" in reason
    assert "c:1: unreachable cpu" in reason
    assert "g:1: not_serving cuda (draining)" in reason


def test_the_node_summary_in_a_message_is_bounded() -> None:
    """A thousand nodes (or one registered with a huge detail) never make a huge message."""
    nodes = [down(f"node-{i:04d}.example:50052") for i in range(1000)]
    reason = waits(spec(), nodes)
    assert f"and {1000 - SUMMARY_NODES} more" in reason
    assert "node-0000.example:50052" in reason and "node-0999" not in reason
    assert len(reason) < 2000
    message = refused(spec(node="nope:1"), nodes, grpc.StatusCode.NOT_FOUND, "placement.node")
    assert f"and {1000 - SUMMARY_NODES} more" in message and len(message) < 2000
    message = refused(
        spec(require_gpu=True), nodes, grpc.StatusCode.FAILED_PRECONDITION, "placement.require_gpu"
    )
    assert f"and {1000 - SUMMARY_NODES} more" in message and len(message) < 2000


# -- ties --------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", list(itertools.permutations(["c:1", "c:2", "c:3"])))
def test_ties_go_to_the_first_listed_node_every_time(order: tuple[str, ...]) -> None:
    nodes = [cpu(a, slots=2) for a in order]
    picks = {choose(spec(), nodes) for _ in range(5)}
    assert picks == {Choice(order[0])}


def test_ties_between_gpus_go_to_the_first_listed_gpu() -> None:
    nodes = [cpu("c:1", slots=4), gpu("g:2"), gpu("g:1")]
    assert choose(spec(), nodes) == Choice("g:2")
