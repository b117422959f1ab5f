"""Conditional soft prompts end to end: shapes, training, checkpoint/resume, save/load, generation, PEFT refusal."""

from __future__ import annotations

import json

import pytest
import torch

from softeval.config import build_config
from softeval.engine.batching import Example, collate
from softeval.errors import ConfigError, SoftevalError
from softeval.engine.forward import assemble_prompt_rows
from softeval.engine.generate import generate_ids
from softeval.engine.prompt import ConditionalPrompt, SoftPrompt, load_prompt
from softeval.tasks import TaskConfig
from softeval.store import RunFolder, read_checkpoint
from softeval.train import TrainConfig, run

PATH_TASK = TaskConfig(name="pathfinding", num_train=16, num_eval=4,
                       options={"grid_size": 4, "min_distance": 2, "probe_extras": [0, 4], "max_extra": 4})


def _randomised(prompt: ConditionalPrompt, seed: int = 0) -> ConditionalPrompt:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in prompt.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return prompt


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_conditional_prompt_maps_each_row_from_its_condition(kind):
    prompt = ConditionalPrompt(torch.randn(3, 8), condition_dim=2, kind=kind, hidden=16)
    conds = torch.tensor([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
    out = prompt(3, conds)
    assert out.shape == (3, 3, 8)
    assert torch.allclose(out, prompt.embeddings.expand(3, -1, -1))  # zero-initialised map: same prompt for all
    _randomised(prompt)
    out = prompt(3, conds)
    assert not torch.allclose(out[0], out[1])
    for r in range(3):  # batched rows equal one-at-a-time rows
        assert torch.allclose(out[r], prompt(1, conds[r:r + 1])[0], atol=1e-6)
    with pytest.raises(SoftevalError, match="conditional"):
        prompt(3, None)


def test_mlp_map_init_is_a_function_of_the_seed_alone():
    from softeval.engine.prompt import build_prompt

    base = torch.zeros(2, 8)
    torch.manual_seed(123)
    a = build_prompt(base, condition_dim=2, kind="mlp", hidden=32, seed=7).tensors()
    torch.manual_seed(999)
    torch.rand(1000)  # a different global RNG state must not change the prompt
    state = torch.get_rng_state()
    b = build_prompt(base, condition_dim=2, kind="mlp", hidden=32, seed=7).tensors()
    assert torch.equal(torch.get_rng_state(), state)  # and building it draws nothing from the global RNG
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert a["map.0.weight"].shape == (32, 2)  # the hidden width is the caller's
    assert a["map.0.weight"].abs().max() <= 2 ** -0.5 and a["map.0.weight"].std() > 0.1  # nn.Linear's scale
    c = build_prompt(base, condition_dim=2, kind="mlp", hidden=32, seed=8).tensors()
    assert not torch.equal(a["map.0.weight"], c["map.0.weight"])


def test_conditional_hidden_width_is_saved_and_loaded(tiny_lm, tmp_path):
    cfg = _cfg(tmp_path, max_steps=1, conditional_hidden=24)  # prompt.conditional_hidden
    result = run(cfg, lm=tiny_lm)
    prompt, meta = load_prompt(result.prompt_path, tiny_lm.info)
    assert meta.extra["hidden"] == 24 and prompt.map[0].weight.shape == (24, 2)


def test_mixed_lanes_route_conditions_to_the_conditional_prompt():
    cond_prompt = _randomised(ConditionalPrompt(torch.zeros(2, 4), condition_dim=1, kind="linear"))
    plain = SoftPrompt(torch.randn(3, 4))
    examples = [Example([5, 6], [5, 6], condition=[float(i)]) for i in range(4)]
    batch = collate(examples, [2, 3, 2, 3], bos_id=1, pad_id=0, lanes=[0, 1, 0, 1])
    rows = assemble_prompt_rows([cond_prompt, plain], batch, 4)  # (4, 3, 4)
    assert torch.allclose(rows[0, :2], cond_prompt(1, torch.tensor([[0.0]]))[0])
    assert torch.allclose(rows[2, :2], cond_prompt(1, torch.tensor([[2.0]]))[0])
    assert torch.allclose(rows[1], plain.embeddings) and torch.allclose(rows[3], plain.embeddings)


def _cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(model="unused", task=PATH_TASK, num_virtual_tokens=2, max_steps=4, batch_size=4, lr=0.05,
                warmup_steps=1, eval_every=0, checkpoint_every=2, keep_checkpoints=3, conditional="mlp",
                precision="fp32", out=str(tmp_path / "run"), show_progress=False)
    base.update(kw)
    return build_config(TrainConfig, flags=base)


def test_train_save_load_and_task_metrics(tiny_lm, tmp_path):
    result = run(_cfg(tmp_path), lm=tiny_lm)
    results = json.loads((result.run_dir / "results.json").read_text())
    metrics = results["task_metrics"]
    assert {"valid_move_rate", "goal_reached_rate", "optimal_path_rate", "condition_error"} <= set(metrics)
    assert [c["condition"] for c in metrics["by_condition"]] == [[0.0, 0.0], [4.0, 0.0]]
    assert result.task_metrics["goal_reached_rate"] == metrics["goal_reached_rate"]
    prompt, meta = load_prompt(result.prompt_path, tiny_lm.info)
    assert isinstance(prompt, ConditionalPrompt) and meta.kind == "mlp" and meta.condition_dim == 2
    assert any(p.abs().sum() > 0 for p in prompt.map[-1].parameters())  # the map was trained
    conds = torch.tensor([[0.0, 0.0], [2.0, 1.0]])
    tensors, _ = read_checkpoint(RunFolder(result.run_dir).checkpoints()[-1][1])
    saved = {k.removeprefix("prompt."): v for k, v in tensors.items() if k.startswith("prompt.")}
    live = ConditionalPrompt(saved["embeddings"], 2, "mlp")
    live.load_state_dict(saved)
    assert torch.equal(prompt(2, conds), live(2, conds))


def test_resume_of_a_conditional_run_is_exact(tiny_lm, tmp_path):
    full = run(_cfg(tmp_path), lm=tiny_lm)
    first, _ = load_prompt(full.prompt_path)
    # Simulate an interruption after step 2: drop everything written later, then resume.
    for step, path in RunFolder(full.run_dir).checkpoints():
        if step > 2:
            path.unlink()
    full.prompt_path.unlink()
    resumed = run(_cfg(tmp_path), resume=True, lm=tiny_lm)
    second, _ = load_prompt(resumed.prompt_path)
    for (k, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), k


def test_generation_with_conditions_is_per_row_and_cache_consistent(tiny_lm):
    hidden = tiny_lm.info.hidden_size
    prompt = _randomised(ConditionalPrompt(torch.zeros(3, hidden), condition_dim=2, kind="linear"), seed=1)
    kw = dict(bos_id=tiny_lm.info.bos_token_id, pad_id=tiny_lm.info.pad_token_id, max_new_tokens=6)
    ctx = tiny_lm.tokenizer("the quick brown", add_special_tokens=False).input_ids
    conds = [[0.0, 0.0], [3.0, -3.0]]
    both = generate_ids(tiny_lm.model, prompt, [ctx, ctx], conditions=conds, **kw)
    assert both == generate_ids(tiny_lm.model, prompt, [ctx, ctx], conditions=conds, use_cache=False, **kw)
    assert both[0] == generate_ids(tiny_lm.model, prompt, [ctx], conditions=conds[:1], **kw)[0]
    assert both[1] == generate_ids(tiny_lm.model, prompt, [ctx], conditions=conds[1:], **kw)[0]
    with pytest.raises(SoftevalError, match="conditional"):
        generate_ids(tiny_lm.model, prompt, [ctx], **kw)


def test_peft_export_refuses_conditional_prompts(tiny_lm, tmp_path):
    from softeval.engine.peft_io import export_peft

    result = run(_cfg(tmp_path, max_steps=1, checkpoint_every=0), lm=tiny_lm)
    with pytest.raises(SoftevalError, match="conditional .* cannot be exported"):
        export_peft(result.prompt_path, tmp_path / "adapter")
    assert not (tmp_path / "adapter").exists()


def test_bad_conditional_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="conditional' must be one of linear, mlp"):
        build_config(TrainConfig, flags={"conditional": "transformer"})


def test_cli_condition_parsing():
    from softeval.cli.prompts import _parse_conditions

    assert _parse_conditions(["0,1"], 2, 2) == [[0.0, 1.0], [0.0, 1.0]]
    assert _parse_conditions(None, 1, 0) is None
    with pytest.raises(ConfigError, match="pass --condition with 2"):
        _parse_conditions(None, 1, 2)
    with pytest.raises(ConfigError, match="needs 2 values"):
        _parse_conditions(["1"], 1, 2)
    with pytest.raises(ConfigError, match="only for conditional"):
        _parse_conditions(["1"], 1, 0)


def test_shipped_chess_and_pathfinding_configs_validate():
    from pathlib import Path

    from softeval.config import build_config, load_yaml
    from softeval.tasks.chess import ChessOptions
    from softeval.tasks.pathfinding import PathfindingOptions

    root = Path(__file__).resolve().parents[2] / "configs"
    files = sorted(root.glob("chess*.yaml")) + sorted(root.glob("pathfinding*.yaml"))
    assert len(files) >= 4
    files.sort(key=lambda p: "distance" in p.name)  # train configs first: distance may not be installed
    for path in files:
        assert load_yaml(path) and path.read_text().startswith("#")  # header comment with the command
        if "distance" in path.name:
            distance = pytest.importorskip("softeval.distance")
            cfg = build_config(distance.DistanceConfig, str(path))
        else:
            cfg = build_config(TrainConfig, str(path))
        options = ChessOptions if cfg.task.name == "chess" else PathfindingOptions
        options(**cfg.task.options)
