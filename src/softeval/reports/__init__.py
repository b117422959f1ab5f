"""reports: the one plotting and HTML toolkit every softeval report draws with.

Owns how a report looks, not what it says: `plots` makes matplotlib figures and turns them into PNG bytes
(the prompt-length axis, a log y when values span decades, loss error bars that never cross zero), and `page`
turns values into escaped HTML (numbers, tables, embedded images, the page frame and its CSS). It renders the
data it is given and knows nothing of sweeps, grids or benchmarks; it may import `softeval.store`,
`softeval.config` and `softeval.errors` only, and the instruments (`distance`, `bench`, `compare`) import it.
"""
