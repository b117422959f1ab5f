from softeval.cli import run_main

run_main()
