"""Reproduce the chess and pathfinding numbers of issue #4 on a CPU in minutes.

    python examples/chess_and_paths.py --task chess --model smollm2-135m-instruct \\
        --data ../shared/data/chess/lichess_magnus --tokens 4,16 --steps 60
    python examples/chess_and_paths.py --task pathfinding --model smollm2-135m-instruct --tokens 8 --steps 80

n = 0 is the plain model; every n > 0 is a conditional prompt trained in the same loop as the
others (one lane per n, one forward pass per step). For each n the script prints the held-out loss
and the task metrics (chess: legal-move and exact-match rates and the random-legal baseline;
pathfinding: valid / goal / optimal rates and measured extra moves per requested extra) and writes
everything to <out>/summary.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import yaml
from dataclasses import replace
from pathlib import Path

from softeval.engine.evaluate import evaluate_prompt
from softeval.engine.models import load_model
from softeval.config import build_config
from softeval.engine.loop import loop_context, make_lane, new_prompt, train_lanes
from softeval.store import RunFolder, atomic_write_json
from softeval.tasks import TaskConfig, build_task
from softeval.train import TrainConfig, finalize_lane

CHESS_OPTIONS = {"max_plies": 16, "moves": "san", "positions_per_game": 2, "max_metric_games": 32}
PATH_OPTIONS = {"grid_size": 5, "obstacle_density": 0.15, "detour_prob": 0.7, "invalid_prob": 0.0,
                "max_extra": 8, "max_invalid": 0, "probe_extras": [0, 4, 8], "max_metric_boards": 32}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=["chess", "pathfinding"], required=True)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--data", default=None, help="chess: PGN file/folder")
    p.add_argument("--tokens", default="4,16", help="comma-separated prompt lengths (n = 0 is always measured)")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--conditional", default="linear", choices=["linear", "mlp"])
    p.add_argument("--num-train", type=int, default=256)
    p.add_argument("--num-eval", type=int, default=32)
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="task option override, e.g. max_plies=10 or probe_extras=[0,8] (YAML values)")
    p.add_argument("--out", default="runs/example")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname).1s %(name)s: %(message)s")
    for noisy in ("transformers", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    # --- setup
    t0 = time.time()
    lm = load_model(args.model, device="cpu", dtype="float32", show_progress=False)
    options = dict(CHESS_OPTIONS if args.task == "chess" else PATH_OPTIONS)
    options.update({k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.option)})
    task_cfg = TaskConfig(name=args.task, data=args.data, num_train=args.num_train, num_eval=args.num_eval,
                          options=options)
    task = build_task(task_cfg, lm.tokenizer)
    out = Path(args.out)
    base = build_config(TrainConfig, flags=dict(
        model=args.model, task=task_cfg, max_steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        warmup_steps=args.warmup_steps, eval_every=0, checkpoint_every=0, conditional=args.conditional,
        precision="fp32", show_progress=True))
    ctx = loop_context(lm, base.precision, base.prompt.placement)
    lengths = [int(n) for n in args.tokens.split(",") if n.strip()]
    lanes = []
    for n in lengths:
        cfg = replace(base, num_virtual_tokens=n, out=str(out / f"n{n}"))
        prompt = new_prompt(lm, cfg.prompt, n, cfg.seed, task.condition_dim)
        lanes.append(make_lane(f"n{n}", prompt, task, cfg.lane_config(), RunFolder(cfg.out)))

    # --- n = 0, then the loop
    rows = {}
    plain = evaluate_prompt(lm.model, None, task.eval, bos_id=lm.info.bos_token_id, pad_id=lm.info.pad_token_id)
    rows[0] = {"eval_loss": plain.loss, **task.metrics(lm, None, task.eval, placement=ctx.placement)}
    train_lanes(ctx, lanes, show_progress=True)

    # --- save and measure
    for n, lane in zip(lengths, lanes):
        finalize_lane(lm, lane, task, base.prompt, ctx.precision)
        lane.prompt.eval()
        rows[n] = {"eval_loss": lane.last_eval["loss"], **task.metrics(lm, lane.prompt, task.eval,
                                                                        placement=ctx.placement)}
    summary = {"model": args.model, "task": args.task, "steps": args.steps, "batch_size": args.batch_size,
               "lr": args.lr, "conditional": args.conditional, "task_spec": task.spec, "options": options,
               "seconds": round(time.time() - t0), "by_n": rows}
    atomic_write_json(out / "summary.json", summary)

    # --- print
    print(f"\n{args.task} on {args.model}, {args.steps} steps × batch {args.batch_size} ({summary['seconds']} s)")
    for n, row in rows.items():
        flat = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not k.startswith("games_")}
        print(f"n={n:<3d} " + "  ".join(f"{k} {v:.3f}" for k, v in flat.items()))
        for c in row.get("by_condition", []) if args.task == "pathfinding" else []:
            print(f"        requested extra {c['condition'][0]:g}: measured extra {c['measured_extra']:.2f}, "
                  f"goal reached {c['goal_reached_rate']:.2f}, valid moves {c['valid_move_rate']:.2f}")
    print(f"summary: {out / 'summary.json'}")
    print(json.dumps({n: {k: round(v, 4) for k, v in r.items() if isinstance(v, float)} for n, r in rows.items()}))


if __name__ == "__main__":
    main()
