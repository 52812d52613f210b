"""The trusted side re-checks every probe reply's shape before a grader reads it (``autograder/graders/replies.py``)."""

import pytest

from autograder.graders.replies import MalformedReply, validated

TRAIN = {"layers": {"layer1": "nn.Linear(1000, 2000)", "layer2": "nn.Linear(2000, 1000)"}, "not_loaded": [],
         "losses": [0.5, 1, "'Tensor'"], "final": "final-1.npz", "outputs": "train_outputs-2.npz", "forwards": 4,
         "grad_devices": {"layer1.weight": "cuda:0"}, "tensor_losses": 0, "steps": 4, "held": ["layer1.weight"],
         "grads_at_step": True}


def test_a_well_formed_reply_passes_with_its_numbers_as_floats():
    reply = validated("train", TRAIN)
    assert reply == TRAIN and [type(x) for x in reply["losses"]] == [float, float, str]
    assert validated("train", {**TRAIN, "losses": "'generator'"})["losses"] == "'generator'"


@pytest.mark.parametrize(("change", "where"), [
    ({"losses": [True]}, "train['losses']"),  # bool is never a number
    ({"losses": [[0.5]]}, "train['losses']"),
    ({"forwards": 4.0}, "train['forwards']"),
    ({"grad_devices": {"layer1.weight": 0}}, "train['grad_devices']['layer1.weight']"),
    ({"extra": 1}, "train has keys"),
])
def test_anything_else_is_refused_with_where_it_was(change, where):
    with pytest.raises(MalformedReply, match=f"^{where.replace('[', '.').replace(']', '.')}"):
        validated("train", {**TRAIN, **change})


def test_a_missing_key_is_refused_unless_it_may_be_absent():
    with pytest.raises(MalformedReply, match="expected"):
        validated("train", {k: v for k, v in TRAIN.items() if k != "final"})
    built = {"params": {}, "layers": {}, "not_loaded": [], "device0": "d0", "device1": "d1"}
    assert validated("build", built) == built  # output_device only comes with forward_batch


def test_an_unknown_probe_is_refused():
    with pytest.raises(MalformedReply, match="no reply shape"):
        validated("steal_results", {})
