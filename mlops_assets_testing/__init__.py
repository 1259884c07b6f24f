"""What the tests and the benchmarks both use to run the real thing: the code location wired
to temporary state (:mod:`.pipeline`), real processes (``dagster dev``, the CLI; in
:mod:`.processes`), the production topology on 127.0.0.1 (:mod:`.topology`) and sample
contributions (:mod:`.data`). Shipped with the ``dev`` extra; never imported by the product."""
