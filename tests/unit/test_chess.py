"""Chess task: streaming PGN (plain and .zst), filters, skip counts, encoding and mask, metrics."""

from __future__ import annotations

import io
import math
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("chess")
import chess  # noqa: E402

from softeval.engine.batching import IGNORE, collate  # noqa: E402
from softeval.errors import ConfigError, DataError  # noqa: E402
from softeval.tasks import TaskConfig, build_task  # noqa: E402
from softeval.tasks.chess import (ChessOptions, _collect, encode_game, first_move, pgn_files, read_games,  # noqa: E402
                                  time_category)

from conftest import SHARED_DATA  # noqa: E402

# A worktree sits one level deeper than the main checkout; let SOFTEVAL_SHARED_DATA point at the data then.
SHARED_DATA = Path(os.environ.get("SOFTEVAL_SHARED_DATA", SHARED_DATA))


def game(white_elo="1800", black_elo="1700", tc="180+2", moves="1. e4 e5 2. Nf3 Nc6 3. Bb5 a6 4. Ba4 Nf6 1-0"):
    headers = ['[Event "t"]', '[Result "1-0"]']
    if white_elo is not None:
        headers.append(f'[WhiteElo "{white_elo}"]')
    if black_elo is not None:
        headers.append(f'[BlackElo "{black_elo}"]')
    if tc is not None:
        headers.append(f'[TimeControl "{tc}"]')
    return "\n".join(headers) + "\n\n" + moves + "\n\n"


GAMES = [
    game(),
    game(moves="1. e4 e5 2. Ke3 Nc6 1-0"),               # illegal king move: broken
    game(white_elo="?"),                                # no Elo
    game(white_elo="2500", black_elo="2400", tc="60+0", moves="1. d4 d5 2. c4 e6 3. Nc3 Nf6 1-0"),
    game(black_elo="", tc="600+0"),                     # empty Elo, rapid
    game(moves="1. e4 1-0"),                            # too short
    game(white_elo="1200", black_elo="1300", tc="-", moves="1. c4 e5 2. Nc3 Nf6 3. g3 d5 1-0"),
]


@pytest.fixture()
def pgn_path(tmp_path):
    p = tmp_path / "games.pgn"
    p.write_text("".join(GAMES))
    return p


@pytest.fixture()
def zst_path(tmp_path, pgn_path):
    zstandard = pytest.importorskip("zstandard")
    p = tmp_path / "games.pgn.zst"
    p.write_bytes(zstandard.ZstdCompressor().compress(pgn_path.read_bytes()))
    return p


def read(path, **opts):
    stats = Counter()
    return list(read_games(pgn_files(str(path)), ChessOptions(**opts), stats)), stats


def test_plain_and_zst_read_the_same_games_and_count_skips(pgn_path, zst_path):
    plain, stats = read(pgn_path)
    packed, zstats = read(zst_path)
    assert [g.moves for g in plain] == [g.moves for g in packed] and stats == zstats
    assert len(plain) == 3
    assert stats["skipped_broken"] == 1 and stats["skipped_no_elo"] == 2 and stats["skipped_short"] == 1
    assert stats["scanned"] == 7 and stats["accepted"] == 3


def test_zst_made_of_several_frames_reads_every_frame(tmp_path, pgn_path):
    """zstd files may be concatenated frames (pzstd, `cat a.zst b.zst`); each frame holds some of the games."""
    zstandard = pytest.importorskip("zstandard")
    p = tmp_path / "frames.pgn.zst"
    first, second = "".join(GAMES[:4]), "".join(GAMES[4:])
    p.write_bytes(zstandard.ZstdCompressor().compress(first.encode()) + zstandard.ZstdCompressor().compress(second.encode()))
    plain, stats = read(pgn_path)
    packed, zstats = read(p)
    assert zstats["scanned"] == len(GAMES) and zstats == stats
    assert [g.moves for g in packed] == [g.moves for g in plain]


def test_zst_reader_asks_for_every_frame(tmp_path, pgn_path, monkeypatch):
    """zstandard documents stream_reader as stopping at the first frame unless read_across_frames=True (some
    versions/backends do, others read on); emulate the documented default so the test holds on every version."""
    zstandard = pytest.importorskip("zstandard")
    real = zstandard.ZstdDecompressor.stream_reader

    def documented(self, source, read_size=131075, read_across_frames=False, closefd=True):
        if read_across_frames:
            return real(self, source, read_size=read_size, read_across_frames=True, closefd=closefd)
        first = zstandard.ZstdDecompressor().decompressobj().decompress(source.read())  # first frame only
        if closefd:
            source.close()
        return io.BytesIO(first)

    monkeypatch.setattr(zstandard.ZstdDecompressor, "stream_reader", documented)
    p = tmp_path / "frames.pgn.zst"
    half = len(GAMES) // 2
    p.write_bytes(b"".join(zstandard.ZstdCompressor().compress("".join(part).encode())
                           for part in (GAMES[:half], GAMES[half:])))
    packed, zstats = read(p)
    assert zstats == read(pgn_path)[1] and zstats["scanned"] == len(GAMES)


def test_latin1_pgn_still_reads_and_a_corrupt_zst_frame_is_one_line(tmp_path, pgn_path):
    """PGN's historical encoding is Latin-1: such a file is text, not binary, and keeps its games."""
    latin = tmp_path / "latin.pgn"
    latin.write_bytes(pgn_path.read_text().replace('[Event "t"]', '[Event "M\u00fcller"]').encode("latin-1"))
    assert [g.moves for g in read(latin)[0]] == [g.moves for g in read(pgn_path)[0]]
    zstandard = pytest.importorskip("zstandard")
    bad = tmp_path / "bad.pgn.zst"  # a good frame, then bytes that are not a zstd frame
    bad.write_bytes(zstandard.ZstdCompressor().compress(pgn_path.read_bytes() * 100) + b"not a zstd frame" * 8)
    with pytest.raises(DataError, match="bad.pgn.zst: cannot read on after game"):
        read(bad)


def test_task_hash_covers_every_pgn_file(tmp_path, pgn_path, tiny_lm):
    folder = tmp_path / "games"
    folder.mkdir()
    (folder / "a.pgn").write_bytes(pgn_path.read_bytes())
    (folder / "b.pgn").write_text("".join(GAMES[:2]))
    kw = dict(name="chess", num_train=1, num_eval=1)
    task = build_task(TaskConfig(data=str(folder), **kw), tiny_lm.tokenizer)
    assert task.data_files == {"data.0": folder / "a.pgn", "data.1": folder / "b.pgn"}
    assert set(task.spec["data_sha256"]) == {"data.0", "data.1"}
    # b.pgn is never read (enough games in a.pgn) but changing it changes what the task offers.
    (folder / "b.pgn").write_text("".join(GAMES[:3]))
    assert build_task(TaskConfig(data=str(folder), **kw), tiny_lm.tokenizer).spec_hash != task.spec_hash
    single = build_task(TaskConfig(data=str(pgn_path), **kw), tiny_lm.tokenizer)
    assert single.data_files == {"data": pgn_path}


def test_missing_elo_default_and_filters(pgn_path):
    games, stats = read(pgn_path, missing_elo="default", default_elo=1500)
    assert stats["default_elo_used"] == 2 and len(games) == 5
    assert (games[1].white_elo, games[1].black_elo) == (1500.0, 1700.0)
    games, stats = read(pgn_path, min_elo=1600, max_elo=2000)
    assert len(games) == 1 and stats["skipped_elo_range"] == 2
    games, _ = read(pgn_path, time_control="bullet")
    assert [g.time_control for g in games] == ["60+0"]
    games, _ = read(pgn_path, time_control="180+2,correspondence")
    assert [g.time_control for g in games] == ["180+2", "-"]
    assert time_category("180+2") == "blitz" and time_category("?") == "unknown"
    with pytest.raises(ConfigError, match="neither a TimeControl"):
        ChessOptions(time_control="fast")


def test_reading_stops_when_enough_games_are_accepted(pgn_path, tiny_lm):
    task = build_task(TaskConfig(name="chess", data=str(pgn_path), num_train=1, num_eval=1), tiny_lm.tokenizer)
    assert len(task.train) == 1 and len(task.eval) == 1
    stats = Counter()
    train, held_out = _collect(pgn_files(str(pgn_path)), ChessOptions(), stats, take=1, eval_take=1, stride=10)
    assert stats["scanned"] == 4 < len(GAMES)  # the rest of the file was never parsed
    assert [g.source for g in held_out + train] == ["games.pgn:1", "games.pgn:4"]


@pytest.mark.parametrize("notation,expected", [("san", " e4 e5 Nf3 Nc6"), ("uci", " e2e4 e7e5 g1f3 b8c6")])
def test_encoding_scores_move_tokens_only(tiny_lm, pgn_path, notation, expected):
    tok = tiny_lm.tokenizer
    opts = ChessOptions(moves=notation, max_plies=4, header="Game:\n")
    record = read(pgn_path, max_plies=4)[0][0]
    ex = encode_game(record, opts, tok)
    numbered = {"san": " e4 e5 2. Nf3 Nc6", "uci": " e2e4 e7e5 2. g1f3 b8c6"}[notation]
    assert tok.decode(ex.input_ids) == "Game:\n1." + numbered
    scored = [t for t in ex.labels if t != IGNORE]
    assert tok.decode(scored) == expected
    assert ex.condition == pytest.approx([(1800 - 1500) / 500, (1700 - 1500) / 500])
    assert ex.meta["log_legal"][0] == pytest.approx(math.log(20))  # 20 legal first moves
    for n in (0, 3):  # any prompt length scores the same tokens
        assert collate([ex], n, tiny_lm.info.bos_token_id, tiny_lm.info.pad_token_id).target_ids.tolist() == scored


def test_first_move_parser():
    board = chess.Board()
    assert first_move(" e4 e5 2. Nf3", board, "san") == chess.Move.from_uci("e2e4")
    assert first_move(" 1. d4", board, "san") == chess.Move.from_uci("d2d4")
    assert first_move(" Ke2", board, "san") is None  # illegal
    assert first_move(" hello", board, "san") is None
    assert first_move(" g1f3 b8c6", board, "uci") == chess.Move.from_uci("g1f3")
    assert first_move(" e2e5", board, "uci") is None
    board.push_uci("e2e4")
    assert first_move(" 1... c5", board, "san") == chess.Move.from_uci("c7c5")


def test_metrics_and_baseline(tiny_lm, pgn_path):
    task = build_task(TaskConfig(name="chess", data=str(pgn_path), num_train=1, num_eval=2, eval_fraction=0.5,
                                 options={"missing_elo": "default"}), tiny_lm.tokenizer)
    assert len(task.eval) == 2
    m = task.metrics(tiny_lm, None, task.eval)
    assert 0 <= m["legal_move_rate"] <= 1 and 0 <= m["exact_match_rate"] <= m["legal_move_rate"]
    moves = sum(len(e.meta["moves"]) for e in task.eval)
    tokens = sum(e.num_targets for e in task.eval)
    nats = sum(sum(e.meta["log_legal"]) for e in task.eval)
    assert m["random_legal_loss_per_move"] == pytest.approx(nats / moves)
    assert m["random_legal_baseline_loss"] == pytest.approx(nats / tokens)
    assert m["loss_per_move"] == pytest.approx(m["loss_per_move_token"] * tokens / moves)
    assert m["probed_positions"] == 4 and m["games_skipped_broken"] == 1 and m["games_skipped_time_control"] == 0
    assert all(len(row["condition"]) == 2 for row in m["by_condition"])
    # per game, in eval order: the counts that turn example_losses into nats per move across tokenizers
    assert m["per_example"] == {"moves": [len(e.meta["moves"]) for e in task.eval],
                                "move_tokens": [e.num_targets for e in task.eval]}


def test_elo_condition_check_scores_each_half_under_both_conditions(tiny_lm, pgn_path):
    """The check's numbers are the held-out loss under the swapped conditions; a condition-blind prompt gives 0."""
    import torch

    from softeval.engine.evaluate import evaluate_prompt
    from softeval.engine.prompt import ConditionalPrompt

    task = build_task(TaskConfig(name="chess", data=str(pgn_path), num_train=0, num_eval=3, eval_fraction=0.5,
                                 options={"missing_elo": "default"}), tiny_lm.tokenizer)
    averages = sorted(sum(e.meta["elo"]) / 2 for e in task.eval)
    assert averages[0] < averages[-1]  # the games differ in Elo, so there is a high and a low half
    d = tiny_lm.model.get_input_embeddings().weight.shape[1]
    prompt = ConditionalPrompt(torch.randn(2, d, generator=torch.Generator().manual_seed(0)), condition_dim=2)

    blind = task.metrics(tiny_lm, prompt, task.eval)  # map starts at zero: every condition, the same prompt
    assert blind["elo_effect_high_games"] == pytest.approx(0, abs=1e-9)
    assert blind["elo_effect_low_games"] == pytest.approx(0, abs=1e-9)
    assert blind["elo_effect_high_games_lo90"] == pytest.approx(0, abs=1e-9)  # no effect in any resample
    assert blind["elo_effect_high_games_hi90"] == pytest.approx(0, abs=1e-9)

    with torch.no_grad():
        prompt.map.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(1))
    m = task.metrics(tiny_lm, prompt, task.eval)
    median = m["elo_check_median_elo"]
    high = [e for e in task.eval if sum(e.meta["elo"]) / 2 >= median]
    low = [e for e in task.eval if sum(e.meta["elo"]) / 2 < median]
    assert high and low

    def mean_condition(games):
        return [sum(g.condition[k] for g in games) / len(games) for k in range(2)]

    def loss(games, condition):
        swapped = [type(g)(g.input_ids, g.labels, list(condition), g.meta) for g in games]
        return evaluate_prompt(tiny_lm.model, prompt, swapped, bos_id=tiny_lm.info.bos_token_id,
                               pad_id=tiny_lm.info.pad_token_id).loss

    hi_c, lo_c = mean_condition(high), mean_condition(low)
    assert m["elo_check_high_games_loss_high_condition"] == pytest.approx(loss(high, hi_c))
    assert m["elo_check_high_games_loss_low_condition"] == pytest.approx(loss(high, lo_c))
    assert m["elo_check_low_games_loss_low_condition"] == pytest.approx(loss(low, lo_c))
    assert m["elo_effect_high_games"] == pytest.approx(loss(high, lo_c) - loss(high, hi_c))
    assert m["elo_effect_low_games"] == pytest.approx(loss(low, hi_c) - loss(low, lo_c))
    assert abs(m["elo_effect_high_games"]) > 1e-6  # the condition now moves the prompt
    for half in ("high", "low"):  # the interval is over the half's games and holds the point estimate
        lo, hi = m[f"elo_effect_{half}_games_lo90"], m[f"elo_effect_{half}_games_hi90"]
        assert lo - 1e-9 <= m[f"elo_effect_{half}_games"] <= hi + 1e-9
    if len(low) == 1:  # one game: every resample is that game
        assert m["elo_effect_low_games_lo90"] == pytest.approx(m["elo_effect_low_games_hi90"])
    assert m["elo_check_high_half_mean_elo"] > m["elo_check_low_half_mean_elo"]
    assert "elo_effect_high_games" not in task.metrics(tiny_lm, None, task.eval)  # n = 0 has no condition


def test_bad_inputs_fail_clearly(tmp_path, pgn_path, tiny_lm, monkeypatch):
    with pytest.raises(DataError, match="does not exist"):
        build_task(TaskConfig(name="chess", data=str(tmp_path / "nope.pgn")), tiny_lm.tokenizer)
    with pytest.raises(ConfigError, match="needs PGN games"):
        build_task(TaskConfig(name="chess"), tiny_lm.tokenizer)
    with pytest.raises(DataError, match="passed the filters .*skipped_elo_range"):
        build_task(TaskConfig(name="chess", data=str(pgn_path), options={"min_elo": 3000}), tiny_lm.tokenizer)
    with pytest.raises(ConfigError, match="moves must be 'san' or 'uci'"):
        ChessOptions(moves="lan")
    monkeypatch.setitem(sys.modules, "chess", None)  # as if python-chess were not installed
    with pytest.raises(ConfigError, match=r"pip install 'softeval\[chess\]'"):
        build_task(TaskConfig(name="chess", data=str(pgn_path)), tiny_lm.tokenizer)


@pytest.mark.skipif(not (SHARED_DATA / "chess").is_dir(), reason="shared chess data not present")
def test_real_lichess_and_otb_games_parse():
    lichess, stats = read(SHARED_DATA / "chess" / "lichess_magnus", max_games_scanned=60)
    assert len(lichess) == 60 and stats["skipped_broken"] == 0
    otb, stats = read(SHARED_DATA / "chess" / "otb_pgnmentor_style" / "Carlsen.pgn", max_games_scanned=60)
    assert stats["skipped_broken"] == 0 and stats["skipped_no_elo"] + len(otb) + stats["skipped_short"] == 60


def test_eval_cli_prints_task_metrics_on_request(tiny_model_dir, pgn_path, capsys):
    """`softeval eval --task-metrics` gives a finished prompt's chess metrics without retraining; on a task
    without metrics it is one line and exit 2."""
    import json

    from softeval.cli import main

    base = ["-q", "eval", "--prompt", "none", "--model", str(tiny_model_dir), "--device", "cpu"]
    chess_task = ["--task", "chess", "--data", str(pgn_path), "task.num_train=0", "task.num_eval=3",
                  "task.eval_fraction=0.5", "task.options.missing_elo=default"]
    capsys.readouterr()
    assert main([*base, *chess_task, "--task-metrics", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["task_metrics"]["loss_per_move_token"] == pytest.approx(out["loss"])
    assert 0 <= out["task_metrics"]["legal_move_rate"] <= 1 and out["condition_metrics"]
    per_game = out["per_example"]  # paired with example_losses: their weighted sum is the loss per move
    assert len(per_game["moves"]) == len(out["example_losses"]) == out["num_examples"]
    assert sum(per_game["move_tokens"]) == out["num_targets"]
    nats = sum(loss * t for loss, t in zip(out["example_losses"], per_game["move_tokens"]))
    assert nats / sum(per_game["moves"]) == pytest.approx(out["task_metrics"]["loss_per_move"])
    assert main([*base, *chess_task]) == 0 and "legal_move_rate" not in capsys.readouterr().out  # opt-in
    assert main([*base, "--task", "repetition", "--repeat-text", " fox", "task.num_eval=2",
                 "task.context_tokens=4", "task.target_tokens=4", "--task-metrics"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no task metrics" in err[0]
