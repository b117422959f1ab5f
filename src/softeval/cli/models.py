"""softeval models list | fetch NAME | info MODEL"""

from __future__ import annotations

import argparse

import json

from softeval.cli.common import progress_enabled
from softeval.engine.models import DEFAULT_MODEL, fetch_embedded, list_models, load_model


def register(sub) -> None:
    p = sub.add_parser("models", help="list, fetch and inspect models",
                       epilog='examples:\n  softeval models list\n  softeval models fetch gemma3-270m\n  softeval models info smollm2-135m-instruct\n',
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    msub.add_parser("list", help="embedded models and whether they are cached").set_defaults(handler=cmd_list)
    f = msub.add_parser("fetch", help="download, verify and dequantize an embedded model")
    f.add_argument("name", nargs="?", default=DEFAULT_MODEL)
    f.set_defaults(handler=cmd_fetch)
    i = msub.add_parser("info", help="load a model and print its facts (dims, BOS, hashes)")
    i.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    i.add_argument("--device", default="auto")
    i.add_argument("--dtype", default="auto")
    i.set_defaults(handler=cmd_info)
    register_tasks(sub)


def cmd_list(args) -> int:
    for m in list_models():
        state = "cached" if m["fetched"] else "not fetched"
        print(f"{m['name']:<24} {state:<12} {m['description']}")
    print("\nAlso accepted by --model: a Hugging Face id (org/name), a local model folder, or a .gguf file.")
    return 0


def cmd_fetch(args) -> int:
    path = fetch_embedded(args.name, show_progress=progress_enabled(args))
    print(path)
    return 0


def cmd_info(args) -> int:
    lm = load_model(args.model, args.device, args.dtype, show_progress=progress_enabled(args))
    print(json.dumps(lm.info.to_dict(), indent=2))
    return 0


def register_tasks(sub) -> None:
    p = sub.add_parser("tasks", help="list the built-in tasks",
                       epilog='examples:\n  softeval tasks\n  softeval train --task repetition --repeat-text " hello" --tokens 16\n',
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler=cmd_tasks)


def cmd_tasks(args) -> int:
    from softeval.tasks import TASKS, available_tasks

    for name in available_tasks():
        doc = (TASKS[name].__doc__ or "").strip().splitlines()
        print(f"{name:<16} {doc[0] if doc else ''}")
    return 0
