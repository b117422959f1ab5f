"""Chess and pathfinding through the real CLI on the embedded models (a few steps each; ~1-2 min)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from softeval.cli import main

from conftest import SHARED_DATA

SHARED_DATA = Path(os.environ.get("SOFTEVAL_SHARED_DATA", SHARED_DATA))
LICHESS = SHARED_DATA / "chess" / "lichess_magnus"

pytestmark = pytest.mark.integration


@pytest.mark.skipif(not LICHESS.is_dir(), reason="shared chess data not present")
def test_chess_train_on_smollm2_reports_legal_moves_and_baseline(tmp_path, capsys):
    pytest.importorskip("chess")
    out = tmp_path / "chess"
    code = main(["-q", "train", "--model", "smollm2-135m-instruct", "--task", "chess", "--data", str(LICHESS),
                 "--tokens", "2", "--steps", "2", "--num-train", "8", "--num-eval", "2", "--eval-every", "0",
                 "--out", str(out), "task.options.max_plies=6", "task.options.positions_per_game=2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "task metrics:" in printed and "legal_move_rate" in printed
    results = json.loads((out / "results.json").read_text())
    m = results["task_metrics"]
    assert m["probed_positions"] == 4 and 0 <= m["legal_move_rate"] <= 1
    assert m["games_skipped_broken"] == 0 and m["games_accepted"] >= 10
    # First 6 plies of the held-out games 1 and 11 of DannyTheDonkey's file: log(#legal) summed over the
    # 12 positions, per SmolLM2 move token. Fixed by the data and the tokenizer, not by training.
    assert m["random_legal_baseline_loss"] == pytest.approx(1.3763, abs=1e-3)
    assert m["random_legal_loss_per_move"] == pytest.approx(3.2113, abs=1e-3)
    # The metrics score in fp32; training's eval may run under bf16 autocast ("auto" precision on a bf16 CPU).
    assert math.isfinite(m["loss_per_move_token"])
    assert m["loss_per_move_token"] == pytest.approx(results["final_eval"]["loss"], abs=0.05)

    # A conditional prompt cannot become a PEFT adapter: one clear line, exit code 2.
    assert main(["-q", "export-peft", "--prompt", str(out), "--out", str(tmp_path / "adapter")]) == 2
    assert "conditional" in capsys.readouterr().err and not (tmp_path / "adapter").exists()


def test_pathfinding_train_and_generate_on_gemma(tmp_path, capsys):
    out = tmp_path / "paths"
    code = main(["-q", "train", "--model", "gemma3-270m", "--task", "pathfinding", "--tokens", "2", "--steps", "2",
                 "--num-train", "8", "--num-eval", "2", "--eval-every", "0", "--conditional", "mlp",
                 "--out", str(out), "task.options.grid_size=4", "task.options.probe_extras=[0]"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    m = results["task_metrics"]
    assert 0 <= m["valid_move_rate"] <= 1 and 0 <= m["goal_reached_rate"] <= 1
    assert m["by_condition"][0]["condition"] == [0.0, 0.0]
    capsys.readouterr()
    board = "Grid:\n.S..\n.#..\n....\n...G\nPath:"
    assert main(["-q", "generate", "--prompt", str(out), "--text", board, "--condition", "0,0",
                 "--max-new-tokens", "4"]) == 0
    printed = capsys.readouterr().out
    # The continuation must be the prompt's own: recompute it without the KV cache (full forward per token).
    from softeval.engine.generate import generate_ids
    from softeval.engine.models import load_model
    from softeval.engine.prompt import load_prompt

    lm = load_model("gemma3-270m", device="auto", dtype="auto", show_progress=False)  # as the CLI does
    prompt, meta = load_prompt(out, lm.info)
    new = generate_ids(lm.model, prompt, [lm.tokenizer(board, add_special_tokens=False).input_ids],
                       bos_id=lm.info.bos_token_id, pad_id=lm.info.pad_token_id, eos_id=lm.info.eos_token_id,
                       placement=meta.placement, max_new_tokens=4, conditions=[[0.0, 0.0]], use_cache=False)[0]
    assert new and printed == f"{board}\u2502{lm.tokenizer.decode(new, skip_special_tokens=True)}\n"
    assert main(["-q", "generate", "--prompt", str(out), "--text", board]) == 2
    assert "pass --condition with 2" in capsys.readouterr().err
