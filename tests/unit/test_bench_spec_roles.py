"""Each data file of a task is keyed by its role, never by its file name alone (issue 29, defect 5): two files
of the same name in two folders are two keys with two hashes, so editing either changes the identity."""

import json
from pathlib import Path

from softeval.bench.tasks import resolve_task
from softeval.store.identity import result_identity
from tests.conftest import write_jsonl

ITEM = {"q": "What is 1 + 1?", "options": ["1", "2", "3"], "gold": "B"}


def _folders(tmp_path):
    for split in ("train", "test"):
        (tmp_path / split).mkdir()
        write_jsonl(tmp_path / split / "data.jsonl", [ITEM | {"q": f"{split} question"}])
    (tmp_path / "spec").mkdir()
    return tmp_path / "train" / "data.jsonl", tmp_path / "test" / "data.jsonl"


def test_spec_files_of_one_name_in_two_folders_keep_two_hashes(tmp_path):
    train, test = _folders(tmp_path)
    spec = tmp_path / "spec" / "quiz.yaml"
    spec.write_text(json.dumps({"task": "quiz", "kind": "multiple_choice",
                                "files": {"train": "../train/data.jsonl", "test": "../test/data.jsonl"},
                                "fields": {"question": "q", "choices": "options", "answer": "gold"}}))
    task = resolve_task(str(spec))
    before = result_identity("bench", {}, data_files=task.data_files)["data"]
    # editing the training file (the test file unchanged) is another result
    write_jsonl(train, [ITEM | {"q": "another train question"}])
    after = result_identity("bench", {}, data_files=resolve_task(str(spec)).data_files)["data"]
    assert before != after
    assert [k for k in before if before[k] != after.get(k)] == ["task:quiz:spec.files.train"]
    assert {k: Path(v).resolve() for k, v in task.data_files.items()} == {
        "task:quiz:spec": spec.resolve(), "task:quiz:spec.files.train": train.resolve(),
        "task:quiz:spec.files.test": test.resolve()}


def test_lm_eval_yaml_data_files_of_one_name_keep_two_hashes(tmp_path):
    train, test = _folders(tmp_path)
    yaml_file = tmp_path / "spec" / "quiz_task.yaml"
    yaml_file.write_text(json.dumps({
        "task": "quiz_yaml", "dataset_path": "json", "output_type": "generate_until",
        "dataset_kwargs": {"data_files": {"train": str(train), "test": [str(test)]}},
        "test_split": "test", "doc_to_text": "{{q}}", "doc_to_target": "{{gold}}"}))
    task = resolve_task(str(yaml_file))
    assert task.data_files == {"task:quiz_yaml:quiz_task.yaml": str(yaml_file),
                               "task:quiz_yaml:data_files.train": str(train),
                               "task:quiz_yaml:data_files.test": str(test)}


def test_data_dir_files_are_keyed_by_their_place_in_the_layout(tmp_path):
    """A --data-dir made of links to files elsewhere keeps the layout's paths as keys (moving the targets or
    the folder changes no key)."""
    store = tmp_path / "elsewhere"
    store.mkdir()
    train, test = _folders(store)
    root = tmp_path / "data"
    (root / "arc" / "ARC-Easy").mkdir(parents=True)
    (root / "arc" / "ARC-Easy" / "ARC-Easy-Train.jsonl").symlink_to(train)
    (root / "arc" / "ARC-Easy" / "ARC-Easy-Test.jsonl").symlink_to(test)
    task = resolve_task("arc_easy", root)
    local = {k: v for k, v in task.data_files.items() if not k.endswith(".yaml")}
    assert sorted(local) == ["task:arc_easy:arc/ARC-Easy/ARC-Easy-Test.jsonl",
                             "task:arc_easy:arc/ARC-Easy/ARC-Easy-Train.jsonl"]
