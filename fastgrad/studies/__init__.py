"""Studies on fastgrad: the experiments behind ``fastgrad demo``, the remedies and the isometry studies.

They sit above the library and use only its public API: the names ``fastgrad`` exports and
its public modules (``fastgrad.plot``, ``stats``, ``theory``, ``data``, ``analysis``, ``report``,
``warmup``); ``tests/test_layers.py`` holds them to it. So they are also worked examples of
that API: :mod:`fastgrad.studies.demo` (``fastgrad demo``), :mod:`fastgrad.studies.remedies`
(training with and without the cures), :mod:`fastgrad.studies.isometry` (Jacobian spectra at
the edge of chaos).
"""
