"""Behaviour suites: the elicitation gap of many behaviours, towards and away, against a shuffled-label control.

config.py  SuiteConfig and which behaviour files a suite reads
run.py     softeval suite: one distance sweep per (behaviour, direction), resumable, into one folder
gap.py     the statistics: hierarchical bootstrap over statements and seeds, the gap rule, the ranking
summary.py results.json from the cell files alone
report.py  the HTML report
"""

from softeval.distance.suite.config import SuiteConfig, find_behaviours
from softeval.distance.suite.run import SuiteResult, run
from softeval.distance.suite.summary import format_table, summarize_suite

__all__ = ["SuiteConfig", "SuiteResult", "find_behaviours", "format_table", "run", "summarize_suite"]
